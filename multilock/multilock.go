// Package multilock takes several Redis locks as one: all of them or none,
// in one global order, without deadlock.
//
// Names that share a hash slot — all of them on a single Redis or behind
// Sentinel; on Redis Cluster those with the same slot, e.g. by a common hash
// tag — are taken by ONE script call: all keys or none, one round trip
// whatever their number. On Redis Cluster the names are grouped by slot and
// the groups taken in ascending slot order, each atomically; a group that is
// held by someone else makes the attempt release the groups it took before
// it waits, so no waiter holds keys while it sleeps and two MultiLocks over
// {A,B} and {B,A} cannot deadlock.
//
// A MultiLock uses the same keys and scripts as mutex.Mutex: a name held by a
// Mutex blocks a MultiLock that includes it, and the other way round.
package multilock

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/core"
	"github.com/redlease/redlease/internal/keys"
	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
	"github.com/redlease/redlease/observe"
)

// MultiLock is a set of named locks taken together. It is safe for
// concurrent use and holds no state between calls.
type MultiLock struct {
	spec  *core.Spec // resolved once; shared read-only by every acquisition and lease
	names []string
}

// New returns a MultiLock over names with the options of a mutex. Duplicate
// names are merged (a name is held once). It fails with an error wrapping
// mutex.ErrInvalid on a nil client, a *redis.Ring, an empty list, an empty
// name or an invalid option.
func New(client redis.UniversalClient, names []string, opts ...mutex.Option) (*MultiLock, error) {
	if err := core.CheckClient(client); err != nil {
		return nil, fmt.Errorf("multilock.New: %w: %v", mutex.ErrInvalid, err)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("multilock.New: %w: names %q: need at least one name", mutex.ErrInvalid, names)
	}
	cfg, err := core.Resolve(opts)
	if err != nil {
		return nil, fmt.Errorf("multilock.New: %w: %v", mutex.ErrInvalid, err)
	}
	seen := map[string]bool{}
	var ks []keys.Key
	for _, n := range names {
		if seen[n] {
			continue
		}
		seen[n] = true
		k, err := cfg.Key(n)
		if err != nil {
			return nil, fmt.Errorf("multilock.New: %w: %v", mutex.ErrInvalid, err)
		}
		ks = append(ks, k)
	}
	_, cluster := client.(*redis.ClusterClient)
	var groups []core.Group
	for _, gk := range group(ks, cluster) {
		g, err := cfg.Group(client, gk)
		if err != nil {
			return nil, fmt.Errorf("multilock.New: %w: %v", mutex.ErrInvalid, err)
		}
		groups = append(groups, g)
	}
	ml := &MultiLock{spec: core.NewSpec("multilock", observe.KindMultilock, lockErrors{}, client, cfg, groups)}
	ml.names = ml.spec.Names()
	return ml, nil
}

// group orders keys for acquisition: by hash slot, then by name. With
// bySlot (Redis Cluster) each slot is its own group; otherwise all keys form
// one group, taken atomically.
func group(ks []keys.Key, bySlot bool) [][]keys.Key {
	sorted := append([]keys.Key(nil), ks...)
	sort.Slice(sorted, func(i, j int) bool {
		if bySlot && sorted[i].Slot != sorted[j].Slot {
			return sorted[i].Slot < sorted[j].Slot
		}
		return sorted[i].Name < sorted[j].Name
	})
	if !bySlot {
		return [][]keys.Key{sorted}
	}
	var groups [][]keys.Key
	start := 0
	for i := 1; i <= len(sorted); i++ {
		if i == len(sorted) || sorted[i].Slot != sorted[start].Slot {
			groups = append(groups, sorted[start:i:i])
			start = i
		}
	}
	return groups
}

// Names returns the names in acquisition order (merged, sorted by slot and
// name).
func (ml *MultiLock) Names() []string { return append([]string(nil), ml.names...) }

// Lock waits until every name is held or ctx is done; ctx bounds the wait
// only. Releases of any key it waits for wake it. On success one Lease holds
// all names: one renewer, Lost closing when any key is lost (Err
// names it), Release, Extend and Refresh applying to all, and FenceOf giving
// each name's fence. When ctx ends first the error satisfies
// errors.Is(err, ctx.Err()) and none of the keys stays held.
func (ml *MultiLock) Lock(ctx context.Context) (*lease.Lease, error) {
	if ctx == nil {
		return nil, fmt.Errorf("multilock: lock %s: %w: context is nil", ml.spec.Label(), mutex.ErrInvalid)
	}
	ctx, start := ml.spec.LockStart(ctx)
	l, err := lease.Obtain(ctx, ml.spec)
	ml.spec.LockEnd(ctx, start, err, mutex.ErrLocked)
	if err != nil {
		return nil, err
	}
	return l, nil
}

// TryLock makes one attempt. If a name is held by another owner the error
// wraps a *mutex.LockedError naming it (errors.Is(err, mutex.ErrLocked));
// whatever fails, none of the keys stays held.
func (ml *MultiLock) TryLock(ctx context.Context) (*lease.Lease, error) {
	if ctx == nil {
		return nil, fmt.Errorf("multilock: trylock %s: %w: context is nil", ml.spec.Label(), mutex.ErrInvalid)
	}
	start := ml.spec.TryStart()
	l, err := lease.Try(ctx, ml.spec)
	ml.spec.TryEnd(ctx, start, err, mutex.ErrLocked)
	if err != nil {
		return nil, fmt.Errorf("multilock: trylock %s: %w", ml.spec.Label(), err)
	}
	return l, nil
}

// lockErrors builds mutex's errors for core (see core.Errors).
type lockErrors struct{}

var _ core.Errors = lockErrors{}

func (lockErrors) Locked(name string, pttl time.Duration) error {
	return &mutex.LockedError{Name: name, PTTL: pttl}
}

func (lockErrors) NotReplicated(acks int64, want int) error {
	return fmt.Errorf("%w: %d of %d replicas acknowledged", mutex.ErrNotReplicated, acks, want)
}
