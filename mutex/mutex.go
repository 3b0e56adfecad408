// Package mutex is a distributed lock on one Redis key, context-first.
//
// Lock waits until the lock is acquired or ctx is done; TryLock tries once.
// Both return a *lease.Lease: its Lost channel closes when the lock may no
// longer be yours, it renews itself until Release, and its Fence is strictly
// larger than that of every earlier acquisition of the name.
//
// Waiting does not poll: a release publishes a wake-up on a channel derived
// from the key (when a waiter's attempt marked the hold), waiters of one process share one subscription and are served
// in arrival order, and a backoff (see WithBackoff) only covers missed
// wake-ups and expiries. When the only waiters are in the releasing process,
// the release script hands the lock to the next of them directly, with its
// own token and a new fence: one round trip from release to next holder.
//
// Every operation is one Lua script call (one round trip), safe to run twice:
// a request whose reply was lost may have run, and go-redis may resend it.
// The lock key is prefix+"{"+name+"}" and holds "<fence>:<gen>:<token>"
// while held ("<fence>:<gen>w:<token>" once a waiter tried it, so that its
// release publishes the wake-up); fences come from one counter per hash slot
// (prefix+"fence" on a single Redis), so no key of a name remains after its
// last release. The
// package works on a single Redis, behind Sentinel and on Redis Cluster,
// through a *redis.Client or *redis.ClusterClient; a *redis.Ring is refused.
package mutex

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/core"
	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/observe"
)

// Mutex is a named lock in Redis. It holds no state between calls and is
// safe for concurrent use; each Lock or TryLock that succeeds returns its own
// Lease. Several Mutex values (in any number of processes) with the same
// name and key prefix are the same lock.
type Mutex struct {
	spec *core.Spec // resolved once; shared read-only by every acquisition and lease
	name string
	one  core.Single // spec's storage
}

// New returns a Mutex for name. It fails, with an error wrapping ErrInvalid
// that names the value and the rule, on a nil client, a *redis.Ring, an empty
// name, a name or prefix whose key has no usable hash tag, or an invalid
// option.
func New(client redis.UniversalClient, name string, opts ...Option) (*Mutex, error) {
	m := &Mutex{name: name}
	spec, err := core.InitSingle(&m.one, "mutex", observe.KindMutex, publicErrors{}, client, name, opts)
	if err != nil {
		return nil, fmt.Errorf("mutex.New(%q): %w: %v", name, ErrInvalid, err)
	}
	m.spec = spec
	return m, nil
}

// Name returns the lock name.
func (m *Mutex) Name() string { return m.name }

// Lock waits until the lock is acquired or ctx is done; ctx bounds the wait
// only, not the lease. On success the lease holds the key until Release (or
// loss). When ctx ends first, the error satisfies errors.Is(err,
// ctx.Err()); a ctx already done on entry returns at once without contacting
// Redis. The error also wraps the last reason for
// failing (ErrLocked or a Redis error, which are retried with backoff
// meanwhile), and nothing stays held in Redis (a custom-token attempt whose
// reply was lost excepted: see WithToken).
func (m *Mutex) Lock(ctx context.Context) (*lease.Lease, error) {
	if ctx == nil {
		return nil, fmt.Errorf("mutex: lock %q: %w: context is nil", m.name, ErrInvalid)
	}
	ctx, start := m.spec.LockStart(ctx)
	l, err := lease.Obtain(ctx, m.spec)
	m.spec.LockEnd(ctx, start, err, ErrLocked)
	if err != nil {
		return nil, err
	}
	return l, nil
}

// TryLock makes one attempt. If another owner holds the lock the error is a
// *LockedError (errors.Is(err, ErrLocked)); on a Redis error nothing stays
// held (a custom-token attempt whose reply was lost excepted: see WithToken).
// A ctx already done returns an error wrapping ctx.Err() without contacting
// Redis.
func (m *Mutex) TryLock(ctx context.Context) (*lease.Lease, error) {
	if ctx == nil {
		return nil, fmt.Errorf("mutex: trylock %q: %w: context is nil", m.name, ErrInvalid)
	}
	start := m.spec.TryStart()
	l, err := lease.Try(ctx, m.spec)
	m.spec.TryEnd(ctx, start, err, ErrLocked)
	if err == nil {
		return l, nil
	}
	var le *LockedError
	if errors.As(err, &le) {
		return nil, le
	}
	return nil, fmt.Errorf("mutex: trylock %q: %w", m.name, err)
}

// Locked reports whether anyone holds the lock (redis-py locked).
func (m *Mutex) Locked(ctx context.Context) (bool, error) {
	if ctx == nil {
		return false, fmt.Errorf("mutex: locked %q: %w: context is nil", m.name, ErrInvalid)
	}
	n, err := m.spec.Client.Exists(ctx, m.spec.Groups[0].LockKeys()[0]).Result()
	if err != nil {
		return false, fmt.Errorf("mutex: locked %q: %w", m.name, err)
	}
	return n == 1, nil
}
