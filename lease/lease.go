// Package lease is a held Redis lock: its fencing token, its validity, the
// renewer that keeps it alive and the channel that says when it ends.
//
// A Lease is obtained from mutex.Mutex, multilock.MultiLock or
// semaphore.Semaphore. It mirrors
// context.Context: Lost returns a channel that is closed the moment the lock
// may no longer be yours, and Err then says why (ErrReleased, ErrExpired,
// ErrNotHeld or ErrRevoked). Lost closes before another client could acquire the key:
// the local deadline counts from when the acquire or renew request was sent,
// minus the clock drift allowance and a small margin.
//
// What a lease cannot do: a process that is itself paused (GC, SIGSTOP, a
// slow VM) notices nothing while paused, and may act on a lock that expired
// meanwhile. Guard (for writes to Redis) and Fence (for anything else) are
// the defences for that case.
package lease

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redlease/redlease/internal/core"
	"github.com/redlease/redlease/internal/revoke"
)

// Errors returned by Err and wrapped by the methods of a lost lease.
var (
	// ErrReleased: Release was called.
	ErrReleased = errors.New("lease: released")
	// ErrExpired: the lease's validity deadline passed without a successful
	// renewal (Redis unreachable or too slow, or auto-renewal off).
	ErrExpired = errors.New("lease: expired")
	// ErrNotHeld: Redis reported the key gone or holding another token.
	ErrNotHeld = errors.New("lease: not held")
	// ErrRevoked: an operator revoked the hold (mutex.Mutex.Revoke and its
	// kin). The lease's error then matches both ErrRevoked and ErrNotHeld, so
	// code that treats ErrNotHeld as "another owner may hold it now" stays
	// right; match ErrRevoked to tell a revocation apart.
	ErrRevoked = errors.New("lease: revoked")
	// ErrInvalid: an argument is out of range; the error names the value
	// and the rule. It is one value for the whole module: mutex.ErrInvalid
	// is the same, so a caller matches either.
	ErrInvalid = errors.New("redlease: invalid argument")
)

// Lease is a lock held in Redis on one or more names. Its methods are safe
// for concurrent use. A Lease must not be copied.
type Lease struct {
	spec   *core.Spec
	token  string  // the token the keys hold
	fences []int64 // one per name, in acquisition order

	opMu sync.Mutex // orders renew/extend/refresh so deadlines follow Redis's order
	gen  int64      // generation of the last extend/refresh sent, 0 at first (under opMu; see core/protocol.go)

	mu         sync.Mutex
	done       chan struct{} // closed when the lease ends; made by the first Lost (closedCh if it had ended)
	err        error
	validUntil time.Time
	renewAt    time.Time                       // when the next renewal round is due; zero without auto-renewal and while a round runs
	timer      *time.Timer                     // runs fire at the earlier of validUntil and renewAt
	watchers   map[int]context.CancelCauseFunc // canceled with err when the lease ends
	nextWatch  int

	attempt core.Attempt // storage of Acquire's first attempt
	rel     *core.Call   // storage of Release's arguments: the attempt's, if it made the grant; else nil

	renewing sync.WaitGroup // a renewal round in flight
	watch    revoke.Watcher // revocation notices for this lease; stopped when it ends
}

// closedCh is the Lost channel of a lease that ended before anyone asked.
var closedCh = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// New returns the lease of a successful acquisition. It is for this
// module's mutex, multilock and semaphore packages: a core.Grant cannot be made
// elsewhere. The lease's validity deadline and renewal timer start at once.
//
// The lease is watched for revocation notices from then on (see
// internal/revoke): this sends nothing on the caller's path; the first lease
// of a client opens the notice subscription in the background.
func New(g core.Grant) *Lease {
	return start(new(Lease), g)
}

// Try makes one acquisition attempt of s (core.Spec.TryWith) with the
// storage of a new Lease and, on success, returns that Lease started with its
// grant as New does: one allocation for the attempt and the lease. It is for
// this module's packages; the attempt's error is returned as is.
func Try(ctx context.Context, s *core.Spec) (*Lease, error) {
	l := new(Lease)
	g, err := s.TryWith(ctx, &l.attempt)
	if err != nil {
		return nil, err
	}
	return start(l, g), nil
}

// Obtain is Try waiting until s is acquired or ctx is done (core.ObtainWith);
// its first attempt uses the new Lease's storage.
func Obtain(ctx context.Context, s *core.Spec) (*Lease, error) {
	l := new(Lease)
	g, err := core.ObtainWith(ctx, s, &l.attempt)
	if err != nil {
		return nil, err
	}
	return start(l, g), nil
}

func start(l *Lease, g core.Grant) *Lease {
	l.spec, l.token, l.fences = g.Spec, g.Token, g.Fences
	if g.Attempt == &l.attempt {
		l.rel = l.attempt.Reuse()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.validUntil = core.Validity(g.SentAt, g.PTTL, g.Spec.Drift)
	if g.Spec.AutoRenew {
		l.renewAt = time.Now().Add(g.Spec.RenewInterval)
	}
	// One timer serves expiry and renewal (see fire); it cannot fire before
	// l.mu is released.
	l.timer = time.AfterFunc(time.Until(l.next()), l.fire)
	// Under l.mu: a notice arriving at once waits in Revoked (for l.mu)
	// until Watch returned, so loseLocked always stops a started watch.
	holds := g.Spec.RevokeHolds(l.watch.Holds(len(g.Fences)), g.Token, g.Fences)
	already := revoke.Watch(&l.watch, g.Spec.Client, g.Spec.RevokeChannel, holds, g.SentAt, (*revokeTarget)(l))
	if already >= 0 {
		l.loseLocked(l.revokedErr(already))
	}
	return l
}

// revokeTarget is what the revocation watch tells (a conversion of *Lease,
// so that New allocates no closure for it).
type revokeTarget Lease

// Revoked is called by the revocation watch when the hold of key index i
// (0-based, across groups) was revoked.
func (t *revokeTarget) Revoked(i int) {
	l := (*Lease)(t)
	l.lose(l.revokedErr(i))
}

// revokedErr builds the error of a lease whose key index i was revoked: it
// matches ErrRevoked and ErrNotHeld.
func (l *Lease) revokedErr(i int) error {
	if len(l.fences) == 1 || i < 0 || i >= len(l.fences) {
		return fmt.Errorf("%w (%w)", ErrRevoked, ErrNotHeld)
	}
	return fmt.Errorf("%w: %q (%w)", ErrRevoked, l.spec.Names()[i], ErrNotHeld)
}

// next is when the timer must fire: the validity deadline, or the next
// renewal round if that is earlier. Under l.mu.
func (l *Lease) next() time.Time {
	if !l.renewAt.IsZero() && l.renewAt.Before(l.validUntil) {
		return l.renewAt
	}
	return l.validUntil
}

// Name returns the lock name; for a multi-key lease, the names in
// acquisition order joined by ",".
func (l *Lease) Name() string {
	if g := l.spec.Groups; len(g) == 1 && len(g[0].Keys) == 1 {
		return g[0].Keys[0].Name
	}
	return strings.Join(l.spec.Names(), ",")
}

// Names returns the lock names held, in acquisition order.
func (l *Lease) Names() []string { return l.spec.Names() }

// Token returns the token of this hold: the mutex's custom token, or 128
// random bits, hex-encoded, made for the request that created the hold. The
// lock key stores it as "<fence>:<gen>:<token>", or "<fence>:<gen>w:<token>"
// once a waiter tried it (a semaphore's hash uses it
// as the hold's field name).
func (l *Lease) Token() string { return l.token }

// Fence returns the fencing token of this acquisition: strictly larger than
// the fence of every earlier acquisition of the same name, as long as Redis
// keeps its data (a restart without persistence or a failover that loses the
// fence counter starts it again). Storage that records the largest fence it
// has seen and refuses smaller ones is safe against a stale holder. For a
// multi-key lease, Fence is the fence of the first name in acquisition order;
// use FenceOf for the others.
func (l *Lease) Fence() int64 { return l.fences[0] }

// FenceOf returns the fence of name, or 0 if name is not held by l.
func (l *Lease) FenceOf(name string) int64 {
	i := 0
	for _, g := range l.spec.Groups {
		for _, k := range g.Keys {
			if k.Name == name {
				return l.fences[i]
			}
			i++
		}
	}
	return 0
}

// Lost returns a channel that is closed when the lease ends: released,
// expired or taken from it. The same channel is returned on every call.
func (l *Lease) Lost() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done == nil {
		l.done = make(chan struct{})
		if l.err != nil {
			close(l.done)
		}
	}
	return l.done
}

// Err returns nil while the lease is held and, once Lost is closed, why it
// ended: ErrReleased, ErrExpired, ErrNotHeld (for a multi-key lease
// ErrNotHeld is wrapped with the name that was lost), or an error matching
// both ErrRevoked and ErrNotHeld when an operator revoked the hold. Match
// with errors.Is. The value never changes once set.
func (l *Lease) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// ValidUntil returns the local deadline: until then no other client can
// hold the key, assuming clock drift within the configured factor. It moves
// forward with each renewal, Extend and Refresh.
func (l *Lease) ValidUntil() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.validUntil
}

// Context returns a context derived from parent that is canceled when parent
// is done, when the lease ends, or when cancel is called. When the lease
// ends, context.Cause reports the lease's error. Use it for the work done
// under the lock (an errgroup, a database call).
func (l *Lease) Context(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	remove := l.onLost(cancel)
	// Forget the watcher as soon as ctx ends for any reason.
	context.AfterFunc(ctx, remove)
	return ctx, func() { cancel(context.Canceled) }
}

// onLost arranges for f to be called with the lease's error when it ends (at
// once if it already has). remove forgets f.
func (l *Lease) onLost(f context.CancelCauseFunc) (remove func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		f(l.err)
		return func() {}
	}
	if l.watchers == nil {
		l.watchers = map[int]context.CancelCauseFunc{}
	}
	id := l.nextWatch
	l.nextWatch++
	l.watchers[id] = f
	return func() {
		l.mu.Lock()
		delete(l.watchers, id)
		l.mu.Unlock()
	}
}

// lose ends the lease with err unless it already ended. It never blocks.
func (l *Lease) lose(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.loseLocked(err)
}

func (l *Lease) loseLocked(err error) {
	if l.err != nil {
		return
	}
	l.err = err
	l.timer.Stop()
	l.watch.Stop() // nothing if it never started
	if err != ErrReleased {
		l.reportLost(err) // before Lost closes: whoever sees it closed sees the report
	}
	if l.done == nil {
		l.done = closedCh
	} else {
		close(l.done)
	}
	for id, f := range l.watchers {
		f(err) // cancels a context: never calls back into l synchronously
		delete(l.watchers, id)
	}
}

// fire runs when the timer does, in a goroutine of its own: at the validity
// deadline it ends the lease; when a renewal round is due it re-arms the
// timer for the deadline (so the lease still expires on time while the
// round waits for Redis) and runs the round; otherwise (the deadline or the
// round moved after the timer was set) it re-arms the timer.
func (l *Lease) fire() {
	l.mu.Lock()
	if l.err != nil {
		l.mu.Unlock()
		return
	}
	now := time.Now()
	if !now.Before(l.validUntil) {
		l.loseLocked(ErrExpired)
		l.mu.Unlock()
		return
	}
	round := !l.renewAt.IsZero() && !now.Before(l.renewAt)
	if round {
		l.renewAt = time.Time{}
		l.renewing.Add(1) // under l.mu, before any Release can Wait
	}
	l.timer.Reset(time.Until(l.next()))
	l.mu.Unlock()
	if round {
		l.renewRound()
	}
}

// prolong records that Redis set the remaining TTL to pttl by a request
// sent at sentAt. A reply that arrives after the current deadline does not
// revive the lease: it was already treated as lost.
func (l *Lease) prolong(sentAt time.Time, pttl time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return
	}
	if !time.Now().Before(l.validUntil) {
		l.loseLocked(ErrExpired)
		return
	}
	l.setDeadlineLocked(core.Validity(sentAt, pttl, l.spec.Drift))
}

// lower moves the deadline back to what it would be if a request sent at
// sentAt set the TTL to ttl, unless it is already earlier: called before
// sending a request that may shorten the key's life, whose reply may never
// come.
func (l *Lease) lower(sentAt time.Time, ttl time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return
	}
	if v := core.Validity(sentAt, ttl, l.spec.Drift); v.Before(l.validUntil) {
		l.setDeadlineLocked(v)
	}
}

func (l *Lease) setDeadlineLocked(v time.Time) {
	l.validUntil = v
	if time.Until(l.validUntil) <= 0 {
		l.loseLocked(ErrExpired)
		return
	}
	l.timer.Reset(time.Until(l.next()))
}

// notHeld builds the error for key index i (0-based, across groups) lost.
func (l *Lease) notHeld(i int) error {
	if len(l.fences) == 1 || i < 0 || i >= len(l.fences) {
		return ErrNotHeld
	}
	return fmt.Errorf("%w: %q", ErrNotHeld, l.spec.Names()[i])
}

// lostErr wraps the lease's error for a method called after it ended.
func (l *Lease) lostErr(op string) error {
	if err := l.Err(); err != nil {
		return fmt.Errorf("lease %s: %s: %w", l.label(), op, err)
	}
	return nil
}

func (l *Lease) label() string { return l.spec.Label() }

// checkCtx refuses a nil context (go-redis would panic on it).
func checkCtx(ctx context.Context, op string) error {
	if ctx == nil {
		return fmt.Errorf("lease: %s: %w: context is nil", op, ErrInvalid)
	}
	return nil
}
