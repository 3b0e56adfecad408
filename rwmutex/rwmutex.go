package rwmutex

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
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
// or came too late, and of a claim left by a writer that gave up; what it
// cannot reach expires with its TTL.
const cleanupTimeout = 500 * time.Millisecond

// RWMutex is a named read-write lock in Redis. It holds no state between
// calls and is safe for concurrent use; each successful acquisition returns
// its own Lease. RWMutex values with the same name and key prefix, in any
// number of processes, are the same lock.
type RWMutex struct {
	read, write side
	name        string
	acqKeys     []string     // KEYS of rw_acquire: the hash, the fence counter
	writers     atomic.Int32 // writers of this RWMutex waiting in Lock
}

// side is what acquisitions of one kind share.
type side struct {
	spec *core.Spec // resolved once; shared read-only by every lease
	hold *hold
	mode string // rw_acquire's ARGV[3]
	kind byte   // its waiters' wake.Weight kind
}

// New returns the read-write lock name. It fails, with an error wrapping
// ErrInvalid that names the value and the rule, on a nil client, a
// *redis.Ring, an empty name, a name or prefix whose key has no usable hash
// tag, an invalid option, and mutex.WithToken or mutex.WithReplicas (each
// acquisition needs its own token; replica acknowledgement is not supported).
func New(client redis.UniversalClient, name string, opts ...mutex.Option) (*RWMutex, error) {
	fail := func(err error) (*RWMutex, error) {
		return nil, fmt.Errorf("rwmutex.New(%q): %w: %v", name, ErrInvalid, err)
	}
	hl, err := core.ResolveHash(client, name, "rwmutex", ":rw", opts)
	if err != nil {
		return fail(err)
	}
	cfg, k, g, fence := hl.Config, hl.Key, hl.Group, hl.Fence
	mk := func(kind, mode string, obsKind observe.Kind) side {
		h := &hold{client: client, key: k.Lock, keys: []string{k.Lock}, relKeys: []string{k.Lock, fence}, wake: k.Wake, kind: kind}
		spec := core.NewSpec("rwmutex", obsKind, publicErrors{}, client, cfg, []core.Group{g})
		spec.Hold = h
		if kind == "w" {
			spec.Hold = writeHold{h}
		}
		wk := wake.KindRead
		if kind == "w" {
			wk = wake.KindWrite
		}
		return side{spec: spec, hold: h, mode: mode, kind: wk}
	}
	return &RWMutex{read: mk("r", "read", observe.KindRWMutexRead), write: mk("w", "write", observe.KindRWMutexWrite), name: name, acqKeys: []string{k.Lock, fence}}, nil
}

// Name returns the lock's name.
func (m *RWMutex) Name() string { return m.name }

// TryLock makes one attempt to take the write hold. If a reader or another
// writer holds, the error is a *LockedError (errors.Is(err, ErrLocked)) and
// no claim is left: TryLock does not keep readers out. On a Redis error
// nothing stays held (an attempt whose reply was lost is released by its
// token, or expires with its TTL if Redis stays unreachable). A ctx already
// done returns its error without contacting Redis.
func (m *RWMutex) TryLock(ctx context.Context) (*lease.Lease, error) {
	return m.tryOnce(ctx, "trylock", &m.write)
}

// TryRLock makes one attempt to take a read hold. If a writer holds, or a
// writer waits in Lock (its claim keeps new readers out), the error is a
// *LockedError. Failures leave nothing held, as for TryLock.
func (m *RWMutex) TryRLock(ctx context.Context) (*lease.Lease, error) {
	return m.tryOnce(ctx, "tryrlock", &m.read)
}

// Lock waits until the write hold is taken or ctx is done; ctx bounds the
// wait only, not the lease. While it waits it keeps a claim in Redis that
// refuses new readers, so it is admitted once the current readers are gone.
// When ctx ends first — also when it is already done on entry — the error
// satisfies errors.Is(err, ctx.Err()), also wraps the last reason for failing
// (ErrLocked or a Redis error, retried with backoff meanwhile), and nothing
// stays held: the claim is deleted (or expires with its TTL if Redis cannot
// be reached).
func (m *RWMutex) Lock(ctx context.Context) (*lease.Lease, error) {
	return m.wait(ctx, "lock", &m.write)
}

// RLock waits until a read hold is taken or ctx is done, as Lock does. It
// waits while a writer holds or waits. Waiters of this process are served in
// arrival order; a release wakes every queued reader it admits, up to the
// first queued writer.
func (m *RWMutex) RLock(ctx context.Context) (*lease.Lease, error) {
	return m.wait(ctx, "rlock", &m.read)
}

func (m *RWMutex) tryOnce(ctx context.Context, op string, s *side) (*lease.Lease, error) {
	if ctx == nil {
		return nil, fmt.Errorf("rwmutex: %s %q: %w: context is nil", op, m.name, ErrInvalid)
	}
	start := s.spec.TryStart()
	l, err := m.doTryOnce(ctx, op, s)
	s.spec.TryEnd(ctx, start, err, ErrLocked)
	return l, err
}

// doTryOnce is tryOnce after the nil check, observed by its caller.
func (m *RWMutex) doTryOnce(ctx context.Context, op string, s *side) (*lease.Lease, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("rwmutex: %s %q: %w", op, m.name, err)
	}
	g, _, err := m.try(ctx, s, "")
	var le *LockedError
	if errors.As(err, &le) {
		return nil, le
	}
	if err != nil {
		return nil, fmt.Errorf("rwmutex: %s %q: %w", op, m.name, err)
	}
	return lease.New(g), nil
}

func (m *RWMutex) wait(ctx context.Context, op string, s *side) (*lease.Lease, error) {
	if ctx == nil {
		return nil, fmt.Errorf("rwmutex: %s %q: %w: context is nil", op, m.name, ErrInvalid)
	}
	ctx, start := s.spec.LockStart(ctx)
	l, err := m.doWait(ctx, op, s)
	s.spec.LockEnd(ctx, start, err, ErrLocked)
	return l, err
}

// doWait is wait after the nil check, observed by its caller.
func (m *RWMutex) doWait(ctx context.Context, op string, s *side) (l *lease.Lease, err error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("rwmutex: %s %q: %w", op, m.name, err)
	}
	var claim string
	if s.mode == "write" {
		m.writers.Add(1)
		defer m.writers.Add(-1)
		claim = core.NewToken()
		defer func() {
			if err != nil {
				m.dropClaim(ctx, claim)
			}
		}()
	}
	g, last, err := core.HashWait{
		Spec:   s.spec,
		Client: s.spec.Client,
		Key:    s.spec.Groups[0].Keys[0],
		Weight: wake.Weight{Kind: s.kind},
		// A writer tries on reaching the head even after its predecessor
		// acquired: the attempt sets its claim, which keeps new readers out
		// while it waits.
		Eager: s.mode == "write",
		Try: func(ctx context.Context) (core.Grant, wake.State, error) {
			return m.try(ctx, s, claim)
		},
		Sleep: func(last error, d time.Duration) time.Duration {
			var le *LockedError
			if errors.As(last, &le) && le.PTTL >= 0 && le.PTTL < d {
				d = le.PTTL + time.Millisecond
			}
			// A waiting writer renews its claim well before it expires.
			if claim != "" && d > s.spec.TTL/3 {
				d = s.spec.TTL / 3
			}
			return d
		},
		Requeue: func(err error) bool {
			// A reader is only ever kept out by a writer or a waiting
			// writer's claim. Only the head of the local queue retries on
			// its timer, so a reader at the head would keep a writer of this
			// RWMutex queued behind it from ever trying (and renewing its
			// claim) until the claim expired: pass the turn and queue again
			// at the tail.
			var busy *LockedError
			return s.mode == "read" && errors.As(err, &busy) && m.writers.Load() > 0
		},
		Backoff: s.spec.NewBackoff(),
	}.Run(ctx)
	switch {
	case err == nil:
		return lease.New(g), nil
	case errors.Is(err, core.ErrBackoffStop):
		return nil, fmt.Errorf("rwmutex: %s %q: backoff gave up: %w", op, m.name, last)
	default:
		return nil, m.waitErr(op, err, last)
	}
}

// try makes one attempt under a token made for it alone; claim is the
// waiting writer's claim id (empty for none). It returns the state its reply
// gave (Kind 0 if none). A failed call may still have run: its hold is
// released by that token (any fence), so nothing another request created is
// touched. A reply that arrives after the validity it would grant is
// released too (see core.ErrSlowReply).
func (m *RWMutex) try(ctx context.Context, s *side, claim string) (core.Grant, wake.State, error) {
	token := core.NewToken()
	sentAt := time.Now()
	reply, err := scripts.RWAcquire.Run(ctx, s.spec.Client, m.acqKeys, token, s.spec.TTLArg, s.mode, claim).Result()
	var v []int64
	if err == nil {
		v, err = core.ParseInts(reply, 4)
		if err == nil && (v[0] < 0 || v[0] > 1 || (v[0] == 1 && v[1] <= 0) || v[2] < 0) {
			err = fmt.Errorf("%w: rw_acquire returned %v", core.ErrReply, reply)
		}
	}
	if err != nil {
		m.cleanup(ctx, s.hold, token, 0)
		return core.Grant{}, wake.State{}, err
	}
	ok, n, st := v[0], v[1], wake.RWState(v[2], v[3])
	if ok == 0 {
		pttl := time.Duration(-1)
		if n >= 0 {
			pttl = time.Duration(n) * time.Millisecond
		}
		return core.Grant{}, st, &LockedError{Name: m.name, PTTL: pttl}
	}
	g := core.Grant{Spec: s.spec, Token: token, Fences: []int64{n}, SentAt: sentAt, PTTL: s.spec.TTL}
	if !g.Valid() {
		m.cleanup(ctx, s.hold, token, n)
		return core.Grant{}, wake.State{}, fmt.Errorf("%w (TTL %v)", core.ErrSlowReply, s.spec.TTL)
	}
	return g, st, nil
}

// cleanup releases the hold of token (fence 0: any fence), even when ctx is
// done, bounded by its own timeout.
func (m *RWMutex) cleanup(ctx context.Context, h *hold, token string, fence int64) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_, _ = h.release(cctx, token, fence, "")
}

// dropClaim deletes the claim of a writer that gave up, so readers need not
// wait for it to expire.
func (m *RWMutex) dropClaim(ctx context.Context, claim string) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_, _ = m.write.hold.release(cctx, claim, 0, claim)
}

func (m *RWMutex) waitErr(op string, ctxErr, last error) error {
	if last == nil {
		return fmt.Errorf("rwmutex: %s %q: %w", op, m.name, ctxErr)
	}
	return fmt.Errorf("rwmutex: %s %q: %w (last attempt: %w)", op, m.name, ctxErr, last)
}
