// Package core holds what mutex, multilock and lease share: the sentinel
// errors that cross package lines, the description of a held set of keys,
// one acquisition attempt, the waiting loop and the hook through which the
// lease package builds a Lease.
package core

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/keys"
)

// Errors re-exported by the public packages under their own names.
var (
	ErrInvalid = errors.New("redlease: invalid argument")
	ErrLocked  = errors.New("mutex: locked")
)

// Margin is subtracted from every local validity deadline on top of the
// drift allowance: Redis stores expiry with 1 ms precision and the local
// timer fires a little after its time.
const Margin = 5 * time.Millisecond

// MinTTL is the shortest TTL a lock accepts.
const MinTTL = 10 * time.Millisecond

// Group is a set of lock keys in one hash slot, taken, renewed and released
// by one script call. Build it with NewGroup; it is read-only afterwards and
// shared by every acquisition of its lock.
type Group struct {
	Keys []keys.Key

	lock     []string // KEYS of release, renew, extend, refresh, inspect
	acquire  []string // KEYS of acquire and handoff: lock keys, then the slot's fence counter
	wakeArgs []any    // ARGV[2..] of release
}

// NewGroup precomputes the script arguments of ks, whose fence counter is
// fence (see keys.FenceKey).
func NewGroup(ks []keys.Key, fence string) Group {
	g := Group{Keys: ks, lock: make([]string, len(ks)), acquire: make([]string, 0, len(ks)+1), wakeArgs: make([]any, len(ks))}
	for i, k := range ks {
		g.lock[i] = k.Lock
		g.wakeArgs[i] = k.Wake
	}
	g.acquire = append(g.acquire, g.lock...)
	g.acquire = append(g.acquire, fence)
	return g
}

// LockKeys returns the lock keys of g. The slice must not be modified.
func (g Group) LockKeys() []string { return g.lock }

func (g Group) acquireKeys() []string { return g.acquire }

// ReleaseArgs returns the release script's ARGV for g: token, the fence of
// each key's hold (nil: any fence, for an attempt's cleanup), the channels.
func (g Group) ReleaseArgs(token any, fences []int64) []any {
	out := make([]any, 0, 1+2*len(g.wakeArgs))
	out = append(out, token)
	for i := range g.Keys {
		if fences == nil {
			out = append(out, "")
		} else {
			out = append(out, fences[i])
		}
	}
	return append(out, g.wakeArgs...)
}

// WakePayload is what a release publishes for the hold fence:token.
func WakePayload(fence int64, token string) string {
	return strconv.FormatInt(fence, 10) + ":" + token
}

// Spec is what an acquisition takes: the groups in acquisition order, the
// custom token if any, the TTL and the lease options that follow a success.
type Spec struct {
	Client        redis.UniversalClient
	Groups        []Group
	Token         string        // the custom token; "" for a fresh token per attempt
	TTL           time.Duration // whole milliseconds: what Redis receives
	RenewInterval time.Duration
	AutoRenew     bool
	Drift         float64
	NewBackoff    func() backoff.BackOff

	TTLArg any // TTL in ms, boxed once for script calls

	Replicas       int           // WAIT for this many replicas after acquiring; 0: don't
	ReplicaTimeout time.Duration // WAIT's timeout
}

// Names returns the lock names of s in acquisition order.
func (s *Spec) Names() []string {
	var out []string
	for _, g := range s.Groups {
		for _, k := range g.Keys {
			out = append(out, k.Name)
		}
	}
	return out
}

// Label names the lock(s) of s in error messages.
func (s *Spec) Label() string {
	names := s.Names()
	if len(names) == 1 {
		return fmt.Sprintf("%q", names[0])
	}
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return "[" + strings.Join(q, " ") + "]"
}

// Grant is a successful acquisition, what NewLease turns into a Lease.
type Grant struct {
	Spec   *Spec
	Token  string    // the token the keys hold
	Fences []int64   // one per name, in acquisition order
	SentAt time.Time // when the first acquire request was sent
	PTTL   time.Duration
}

// NewLease is set by package lease in its init; it returns a *lease.Lease.
// The indirection keeps the constructor out of lease's public API.
var NewLease func(Grant) any

// LockedError reports a lock key held by another owner.
type LockedError struct {
	Name string        // the lock name that is held
	PTTL time.Duration // its remaining TTL when last seen; <0 if unknown
	key  keys.Key
}

func (e *LockedError) Error() string {
	if e.PTTL >= 0 {
		return fmt.Sprintf("mutex: %q is locked by another owner (expires in %v)", e.Name, e.PTTL)
	}
	return fmt.Sprintf("mutex: %q is locked by another owner", e.Name)
}

// Is makes errors.Is(err, ErrLocked) hold.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// Validity returns the local deadline of a key set with TTL ttl by a request
// sent at sentAt: the key cannot expire in Redis before it, given a clock
// drift rate of at most drift.
func Validity(sentAt time.Time, ttl time.Duration, drift float64) time.Time {
	return sentAt.Add(ttl - time.Duration(float64(ttl)*drift) - Margin)
}

// Holds reports whether v, the value of a lock key, is a hold of token:
// "<fence>:<gen>:<token>" (see protocol.go).
func Holds(v, token string) bool {
	_, ok := holdOf(v, token)
	return ok
}

// HoldsFence reports whether v is the hold of token with fence.
func HoldsFence(v, token string, fence int64) bool {
	f, ok := holdOf(v, token)
	return ok && f == strconv.FormatInt(fence, 10)
}

func holdOf(v, token string) (fence string, ok bool) {
	f, rest, ok := strings.Cut(v, ":")
	if !ok || !digits(f) {
		return "", false
	}
	g, t, ok := strings.Cut(rest, ":")
	return f, ok && digits(g) && t == token
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
