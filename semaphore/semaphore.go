package semaphore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/core"
	"github.com/redlease/redlease/internal/scripts"
	"github.com/redlease/redlease/internal/wake"
	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
	"github.com/redlease/redlease/observe"
)

// cleanupTimeout bounds the release of an acquisition whose reply was lost
// or came too late; what it cannot reach expires with its TTL.
const cleanupTimeout = 500 * time.Millisecond

// Semaphore is a named counting semaphore in Redis. It holds no state
// between calls and is safe for concurrent use; each successful Acquire or
// TryAcquire returns its own Lease. Semaphore values with the same name and
// key prefix, in any number of processes, are the same semaphore.
type Semaphore struct {
	spec    *core.Spec // resolved once; shared read-only by every lease
	hold    *hold
	name    string
	limit   int64
	acqKeys []string // KEYS of sem_acquire: the hash, the fence counter
}

// New returns the semaphore name admitting at most limit units. It fails,
// with an error wrapping ErrInvalid that names the value and the rule, on a
// nil client, a *redis.Ring, an empty name, a name or prefix whose key has no
// usable hash tag, limit <= 0, an invalid option, and mutex.WithToken or
// mutex.WithReplicas (each acquisition needs its own token; replica
// acknowledgement is not supported).
func New(client redis.UniversalClient, name string, limit int64, opts ...mutex.Option) (*Semaphore, error) {
	fail := func(err error) (*Semaphore, error) {
		return nil, fmt.Errorf("semaphore.New(%q): %w: %v", name, ErrInvalid, err)
	}
	if err := core.CheckClient(client); err != nil {
		return fail(err)
	}
	if limit <= 0 {
		return fail(fmt.Errorf("limit %d: must be positive", limit))
	}
	hl, err := core.ResolveHash(client, name, "semaphore", ":sem", opts)
	if err != nil {
		return fail(err)
	}
	cfg, k, g, fence := hl.Config, hl.Key, hl.Group, hl.Fence
	h := &hold{client: client, key: k.Lock, keys: []string{k.Lock}, relKeys: []string{k.Lock, fence}, wake: k.Wake}
	spec := core.NewSpec("semaphore", observe.KindSemaphore, publicErrors{}, client, cfg, []core.Group{g})
	spec.Hold = h
	return &Semaphore{spec: spec, hold: h, name: name, limit: limit, acqKeys: []string{k.Lock, fence}}, nil
}

// Name returns the semaphore's name.
func (s *Semaphore) Name() string { return s.name }

// checkN refuses a nil ctx and n outside [1, limit].
func (s *Semaphore) checkN(ctx context.Context, op string, n int64) error {
	if ctx == nil {
		return fmt.Errorf("semaphore: %s %q: %w: context is nil", op, s.name, ErrInvalid)
	}
	if n <= 0 || n > s.limit {
		return fmt.Errorf("semaphore: %s %q: %w: n %d: must be in [1, limit %d]", op, s.name, ErrInvalid, n, s.limit)
	}
	return nil
}

// TryAcquire makes one attempt to take n units. If fewer are free the error
// is a *NoPermitsError (errors.Is(err, ErrNoPermits)) with the free count; on
// a Redis error nothing stays held (an attempt whose reply was lost is
// released by its token, or expires with its TTL if Redis stays unreachable).
// Like golang.org/x/sync/semaphore, it does not overtake waiters of this
// process: while an Acquire of the name waits here, TryAcquire fails with a
// *NoPermitsError without trying (its Free, read from Redis, may then be n or
// more), so a large waiting request is not starved by small tries.
func (s *Semaphore) TryAcquire(ctx context.Context, n int64) (*lease.Lease, error) {
	if err := s.checkN(ctx, "tryacquire", n); err != nil {
		return nil, err
	}
	start := s.spec.TryStart()
	l, err := s.tryAcquire(ctx, n)
	s.spec.TryEnd(ctx, start, err, ErrNoPermits)
	return l, err
}

// tryAcquire is TryAcquire after the argument checks, observed by its caller.
func (s *Semaphore) tryAcquire(ctx context.Context, n int64) (*lease.Lease, error) {
	if wake.Queued(s.spec.Client, s.hold.wake) {
		free, err := s.Available(ctx)
		if err != nil {
			return nil, fmt.Errorf("semaphore: tryacquire %q: %w", s.name, err)
		}
		return nil, &NoPermitsError{Name: s.name, Free: free, retryIn: -1}
	}
	g, _, err := s.try(ctx, n)
	var ne *NoPermitsError
	if errors.As(err, &ne) {
		return nil, ne
	}
	if err != nil {
		return nil, fmt.Errorf("semaphore: tryacquire %q: %w", s.name, err)
	}
	return lease.New(g), nil
}

// Acquire waits until n units are taken or ctx is done; ctx bounds the wait
// only, not the lease. On success the lease holds the units until Release (or
// loss). When ctx ends first — also when it is already done on entry — the
// error satisfies errors.Is(err, ctx.Err()), also wraps the last reason for
// failing (ErrNoPermits or a Redis error, retried with backoff meanwhile),
// and nothing stays held in Redis.
//
// A first attempt goes out at once unless waiters of this process already
// queue for the name; they are served first, in arrival order. A release
// (or an acquisition that leaves units free) wakes the queued waiters that
// fit, from the head, up to the first that does not. The head also retries
// when its predecessor gave up, and when the backoff elapses (never later
// than the earliest hold's expiry).
func (s *Semaphore) Acquire(ctx context.Context, n int64) (*lease.Lease, error) {
	if err := s.checkN(ctx, "acquire", n); err != nil {
		return nil, err
	}
	ctx, start := s.spec.LockStart(ctx)
	l, err := s.acquire(ctx, n)
	s.spec.LockEnd(ctx, start, err, ErrNoPermits)
	return l, err
}

// acquire is Acquire after the argument checks, observed by its caller.
func (s *Semaphore) acquire(ctx context.Context, n int64) (*lease.Lease, error) {
	k := s.spec.Groups[0].Keys[0]
	g, last, err := core.HashWait{
		Spec:    s.spec,
		Client:  s.spec.Client,
		Key:     k,
		Weight:  wake.Weight{Kind: wake.KindSem, Units: n, Limit: s.limit},
		Try:     func(ctx context.Context) (core.Grant, wake.State, error) { return s.try(ctx, n) },
		Sleep:   retrySleep,
		Backoff: s.spec.NewBackoff(),
	}.Run(ctx)
	switch {
	case err == nil:
		return lease.New(g), nil
	case errors.Is(err, core.ErrBackoffStop):
		return nil, fmt.Errorf("semaphore: acquire %q: backoff gave up: %w", s.name, last)
	default:
		return nil, s.waitErr(err, last)
	}
}

// retrySleep caps a waiter's fallback delay at the earliest hold's expiry,
// which its last failure reported.
func retrySleep(last error, d time.Duration) time.Duration {
	var ne *NoPermitsError
	if errors.As(last, &ne) && ne.retryIn >= 0 && ne.retryIn < d {
		return ne.retryIn + time.Millisecond
	}
	return d
}

// Available returns how many units are free under this caller's limit. The
// answer may be stale by the time it arrives.
func (s *Semaphore) Available(ctx context.Context) (int64, error) {
	if ctx == nil {
		return 0, fmt.Errorf("semaphore: available %q: %w: context is nil", s.name, ErrInvalid)
	}
	n, err := scripts.SemAvailable.Run(ctx, s.spec.Client, s.hold.keys, s.limit).Int64()
	if err != nil {
		return 0, fmt.Errorf("semaphore: available %q: %w", s.name, err)
	}
	return n, nil
}

// try makes one attempt under a token made for it alone, and returns the
// state its reply gave (Kind 0 if none). A failed call may still have run:
// its hold is released by that token (any fence), so nothing another request
// created is touched. A reply that arrives after the validity it would grant
// is released too (see core.ErrSlowReply).
func (s *Semaphore) try(ctx context.Context, n int64) (core.Grant, wake.State, error) {
	token := core.NewToken()
	sentAt := time.Now()
	reply, err := scripts.SemAcquire.Run(ctx, s.spec.Client, s.acqKeys, token, s.spec.TTLArg, n, s.limit).Result()
	var fence, free, wait, used, seq int64
	if err == nil {
		fence, free, wait, used, seq, err = parseAcquire(reply)
	}
	if err != nil {
		s.cleanup(ctx, token, 0)
		return core.Grant{}, wake.State{}, err
	}
	st := wake.SemState(used, seq)
	if fence == 0 {
		return core.Grant{}, st, &NoPermitsError{Name: s.name, Free: free, retryIn: time.Duration(wait) * time.Millisecond}
	}
	g := core.Grant{Spec: s.spec, Token: token, Fences: []int64{fence}, SentAt: sentAt, PTTL: s.spec.TTL}
	if !g.Valid() {
		s.cleanup(ctx, token, fence)
		return core.Grant{}, wake.State{}, fmt.Errorf("%w (TTL %v)", core.ErrSlowReply, s.spec.TTL)
	}
	return g, st, nil
}

// cleanup releases the hold of token (fence 0: any fence), even when ctx is
// done, bounded by its own timeout.
func (s *Semaphore) cleanup(ctx context.Context, token string, fence int64) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_, _ = s.hold.release(cctx, token, fence)
}

// parseAcquire decodes sem_acquire's reply: {1, fence, used, seq} gives
// fence > 0, {0, free, ms, used, seq} gives fence 0.
func parseAcquire(reply any) (fence, free, wait, used, seq int64, err error) {
	if v, err := core.ParseInts(reply, 4); err == nil && v[0] == 1 && v[1] > 0 && v[2] >= 0 {
		return v[1], 0, 0, v[2], v[3], nil
	}
	if v, err := core.ParseInts(reply, 5); err == nil && v[0] == 0 && v[1] >= 0 && v[3] >= 0 {
		return 0, v[1], v[2], v[3], v[4], nil
	}
	return 0, 0, 0, 0, 0, fmt.Errorf("%w: sem_acquire returned %T %v", core.ErrReply, reply, reply)
}

func (s *Semaphore) waitErr(ctxErr, last error) error {
	if last == nil {
		return fmt.Errorf("semaphore: acquire %q: %w", s.name, ctxErr)
	}
	return fmt.Errorf("semaphore: acquire %q: %w (last attempt: %w)", s.name, ctxErr, last)
}
