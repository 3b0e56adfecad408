package mutex

import (
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/redlease/redlease/internal/core"
	"github.com/redlease/redlease/observe"
)

// Option configures a Mutex (and a multilock.MultiLock). Options are made
// by the With functions of this package; Apply takes a type internal to this
// module, so no other Option can exist.
type Option interface {
	Apply(*core.Config)
}

type optionFunc func(*core.Config)

// Apply sets the option's value in c.
func (f optionFunc) Apply(c *core.Config) { f(c) }

// MinTTL is the shortest TTL accepted by WithTTL and Lease.Refresh.
const MinTTL = 10 * time.Millisecond

// MinTTL must equal core.MinTTL: the index is out of range otherwise.
var _ = [1]struct{}{}[MinTTL-core.MinTTL]

// WithTTL sets how long the lock key lives in Redis without renewal. It must
// be at least MinTTL. The default is 10s.
func WithTTL(ttl time.Duration) Option {
	return optionFunc(func(c *core.Config) { c.TTL = ttl })
}

// WithAutoRenew turns the lease's renewer on or off. The renewer runs on a
// timer every renew interval (a goroutine only while a renewal is in flight)
// and retries failures with backoff until the lease's deadline. Without it the
// lease ends with ErrExpired at its deadline unless Extend or Refresh moves
// it. The default is true.
func WithAutoRenew(on bool) Option {
	return optionFunc(func(c *core.Config) { c.AutoRenew = on })
}

// WithRenewInterval sets the time between renewals; it must be positive and
// shorter than the TTL. The default is TTL/3.
func WithRenewInterval(d time.Duration) Option {
	return optionFunc(func(c *core.Config) { c.RenewInterval, c.RenewSet = d, true })
}

// WithToken sets the value stored in the lock key (redis-py's custom token),
// for every acquisition through this Mutex. It must not be empty. A custom
// token names an owner, not one request: acquiring a key that already holds
// it re-obtains the hold (another process resuming, redis-py
// acquire(token=...)) — with a fresh, larger fence, and a TTL raised but
// never shortened — and the earlier lease with that token then ends with
// ErrNotHeld at its next renewal. Because an attempt cannot tell its own
// hold from the owner's others, a custom-token attempt whose reply was lost
// never deletes a key: what it may have taken expires with its TTL or is
// re-obtained by the owner. Handoffs between waiters of one process are not
// used with a custom token. The default is a fresh 128-bit random token from
// crypto/rand per acquisition attempt.
func WithToken(token string) Option {
	return optionFunc(func(c *core.Config) { c.Token, c.TokenSet = token, true })
}

// WithBackoff sets the factory of the fallback wait policy, called once per
// Lock call and per renewal retry sequence. Waiters are woken by releases;
// the backoff only bounds how long a missed wake-up or an expiry goes
// unnoticed, and a waiter never sleeps past the holder's remaining TTL. A
// policy that returns backoff.Stop ends Lock with an error wrapping ErrLocked.
// The default is exponential: 20ms doubling to at most 1s, ±50% jitter, no
// elapsed-time limit.
func WithBackoff(newBackoff func() backoff.BackOff) Option {
	return optionFunc(func(c *core.Config) { c.NewBackoff = newBackoff })
}

// WithDriftFactor sets the fraction of the TTL assumed lost to clock drift:
// the lease counts itself valid for TTL×(1−factor) minus 5ms from when its
// request was sent. It must be in [0, 0.5). The default is 0.01.
func WithDriftFactor(f float64) Option {
	return optionFunc(func(c *core.Config) { c.Drift = f })
}

// WithKeyPrefix sets the prefix of the Redis keys: the lock key of name is
// prefix+"{"+name+"}", its fence counter that plus ":fence". The default is
// "redlease:".
func WithKeyPrefix(prefix string) Option {
	return optionFunc(func(c *core.Config) { c.Prefix = prefix })
}

// WithReplicas makes every acquisition wait, on the same connection and in
// the same round trip, for WAIT n timeout: n replicas of the key's master
// must acknowledge the lock before Lock or TryLock report it acquired. If
// fewer do within timeout, the acquisition is undone and reported with an
// error wrapping ErrNotReplicated (Lock keeps trying until its ctx ends).
// This closes most of the failover hole of asynchronous replication: a lock
// acknowledged to the caller is on n replicas, so a promoted replica has it.
// Renewals do not wait. It works with *redis.Client (single node, Sentinel
// failover clients) and *redis.ClusterClient. n must be >= 0 and the timeout
// positive and shorter than the TTL. The default is 0: no waiting, because a
// single Redis has no replicas to wait for (measured cost: see the README).
func WithReplicas(n int, timeout time.Duration) Option {
	return optionFunc(func(c *core.Config) { c.Replicas, c.ReplicaTimeout = n, timeout })
}

// WithObserver reports the lock's events — acquisitions with their wait,
// releases, leases lost, failed renewals, handoffs, waiters — to o, which is
// asked once, in the constructor, for the lock's observe.Probe. It works for
// every lock that takes a mutex.Option (mutex, multilock, semaphore,
// rwmutex). github.com/redlease/redlease/redleaseotel implements it with
// OpenTelemetry metrics and traces. A nil o observes nothing. The default
// is none: each event then costs one nil check.
func WithObserver(o observe.Observer) Option {
	return optionFunc(func(c *core.Config) { c.Observer = o })
}

// WithLogger logs the events an operator needs to l: a lease lost (Warn,
// with the lock name, its fence and the reason), a failed renewal attempt
// (Warn, with the name, fence and error) and a revoked lease (Info, with
// the name and token). Records are written from the lease's timer and
// renewal goroutines, sometimes with its internal mutex held: the handler
// must not block for long. A nil l logs nothing. The default is none:
// nothing is logged.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *core.Config) { c.Logger = l })
}
