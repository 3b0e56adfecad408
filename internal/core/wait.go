package core

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/keys"
	"github.com/redlease/redlease/internal/wake"
)

// Obtain waits until s is acquired or ctx is done.
//
// A first attempt goes out at once unless waiters of this process already
// queue for the lock (they are served first). After a failure the caller
// joins the FIFO queue of the blocking key's wake-up channel; only the head
// of a queue makes attempts: when a release wakes it, when the fallback
// backoff elapses (never later than the holder's remaining TTL), or at once
// when it reaches the head because its predecessor gave up.
//
// When ctx ends, the error satisfies errors.Is(err, ctx.Err()) and carries the
// last reason the lock was not obtained (ErrLocked or a Redis error); no key
// stays held. A backoff that returns backoff.Stop ends the wait the same way.
func Obtain(ctx context.Context, s *Spec) (Grant, error) {
	return ObtainWith(ctx, s, nil)
}

// ObtainWith is Obtain whose first attempt uses a's storage (see TryWith),
// unless a is nil; later attempts allocate their own.
func ObtainWith(ctx context.Context, s *Spec, a *Attempt) (Grant, error) {
	if err := ctx.Err(); err != nil {
		return Grant{}, s.waitErr(err, nil) // done on entry: nothing sent
	}
	first := s.Groups[0].Keys[0]
	var last error
	if !wake.Queued(s.Client, first.Wake) {
		if a == nil {
			a = new(Attempt)
		}
		g, err := s.TryWith(ctx, a)
		if err == nil {
			return g, nil
		}
		last = keep(last, err)
		if ctx.Err() != nil {
			return Grant{}, s.waitErr(ctx.Err(), last)
		}
	}
	k := first
	var le *busyError
	if errors.As(last, &le) {
		k = le.key
	}
	w := s.join(ctx, k)
	acquired := false
	defer func() { s.leave(ctx, w, acquired) }()

	select {
	case <-w.Turn():
	case h := <-w.Granted():
		if g := s.handed(h); s.accept(ctx, g) {
			acquired = true
			s.handedOff()
			return g, nil
		}
	case <-ctx.Done():
		return Grant{}, s.waitErr(ctx.Err(), last)
	}
	b := s.NewBackoff()
	b.Reset()
	attempt := !w.PredecessorAcquired()
	for {
		if attempt {
			g, err := s.Try(ctx)
			if err == nil {
				acquired = true
				return g, nil
			}
			last = keep(last, err)
			if ctx.Err() != nil {
				return Grant{}, s.waitErr(ctx.Err(), last)
			}
			le = nil
			if errors.As(err, &le) && le.key.Wake != k.Wake {
				// Blocked by another member of a multi-key set: queue there.
				s.leave(ctx, w, false)
				k = le.key
				w = s.join(ctx, k)
				select {
				case <-w.Turn():
				case <-ctx.Done():
					return Grant{}, s.waitErr(ctx.Err(), last)
				}
			}
		}
		attempt = true
		sleep := b.NextBackOff()
		if sleep == backoff.Stop {
			return Grant{}, fmt.Errorf("%s: lock %s: backoff gave up: %w", s.Op, s.Label(), last)
		}
		le = nil
		if errors.As(last, &le) {
			switch {
			case le.pttl == -2: // the key vanished between SET and PTTL
				sleep = 0
			case le.pttl >= 0 && le.pttl < sleep:
				sleep = le.pttl + time.Millisecond
			}
		}
		t := time.NewTimer(sleep)
		select {
		case <-w.Woken():
			b.Reset()
		case h := <-w.Granted():
			t.Stop()
			if g := s.handed(h); s.accept(ctx, g) {
				acquired = true
				s.handedOff()
				return g, nil
			}
			b.Reset()
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return Grant{}, s.waitErr(ctx.Err(), last)
		}
		t.Stop()
	}
}

// join queues for k's wake-up channel. A single-key lock with random tokens
// and without replica acknowledgement offers its spec, so that a local
// release can hand the lock over directly (see handoff).
func (s *Spec) join(ctx context.Context, k keys.Key) *wake.Waiter {
	w := wake.Join(ctx, s.Client, k.Wake, k.Slot)
	if len(s.Groups) == 1 && len(s.Groups[0].Keys) == 1 && s.Replicas == 0 && s.Token == "" {
		w.SetOffer(&wake.Offer{TTL: s.TTL, Drift: s.Drift})
	}
	s.WaiterJoined()
	return w
}

// leave leaves w's queue and releases a lock handed to w that it never took.
func (s *Spec) leave(ctx context.Context, w *wake.Waiter, acquired bool) {
	s.WaiterLeft()
	if h := w.Leave(acquired); h != nil {
		s.cleanup(ctx, s.Groups, h.Token, []int64{h.Fence})
	}
}

// handed is the grant of a lock a local release handed to this waiter.
func (s *Spec) handed(h wake.Handed) Grant {
	return Grant{Spec: s, Token: h.Token, Fences: []int64{h.Fence}, SentAt: h.SentAt, PTTL: s.TTL}
}

// accept reports whether a lock handed to this waiter is still valid; one
// whose validity passed before it was taken (the waiter was busy with its
// own attempt) is released, and the waiter tries again at once.
func (s *Spec) accept(ctx context.Context, g Grant) bool {
	if g.Valid() {
		return true
	}
	s.cleanup(ctx, s.Groups, g.Token, g.Fences)
	return false
}

// keep returns the error worth reporting after an attempt failed with err:
// a context error says nothing the caller does not know, so the previous
// reason is kept.
func keep(prev, err error) error {
	if prev != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return prev
	}
	return err
}

func (s *Spec) waitErr(ctxErr, last error) error {
	if last == nil {
		return fmt.Errorf("%s: lock %s: %w", s.Op, s.Label(), ctxErr)
	}
	return fmt.Errorf("%s: lock %s: %w (last attempt: %w)", s.Op, s.Label(), ctxErr, last)
}

// ErrBackoffStop is returned by HashWait.Run when the backoff returned
// backoff.Stop.
var ErrBackoffStop = errors.New("backoff gave up")

// HashWait is how a waiter of a primitive kept in one hash (a semaphore, a
// read-write lock) waits: as one of its process's weighted waiters (see
// wake.JoinWeighted), it attempts when a release wakes it wherever it stands
// in the queue; at the head it also attempts at once on arriving (unless its
// predecessor just acquired and Eager is false) and on its fallback timer.
type HashWait struct {
	Spec   *Spec // whose probe hears the waiter join and leave the queue
	Client redis.UniversalClient
	Key    keys.Key // Wake and Slot: the wake-up channel
	Weight wake.Weight
	// Eager makes the waiter attempt on reaching the head even after its
	// predecessor acquired (a writer, whose attempt sets its claim).
	Eager bool
	// Try makes one attempt, returning the state its reply gave.
	Try func(ctx context.Context) (Grant, wake.State, error)
	// Sleep caps the backoff's next step after the last failure (nil: no
	// cap), e.g. at the earliest expiry the failure reported.
	Sleep func(last error, d time.Duration) time.Duration
	// Requeue reports, after a failed attempt at the head, whether the
	// waiter should pass the turn and queue again at the tail (nil: never).
	Requeue func(err error) bool
	// Backoff paces the head's fallback attempts; reset by each wake-up.
	Backoff backoff.BackOff
}

// Run waits until an attempt succeeds, ctx is done (ctx.Err() is returned)
// or the backoff stops (ErrBackoffStop). A first attempt goes out at once
// unless waiters of this process already queue on the channel. last is the
// reason the latest attempt failed, context errors aside (see keep).
func (h HashWait) Run(ctx context.Context) (g Grant, last error, err error) {
	var retryAt time.Time
	if !wake.Queued(h.Client, h.Key.Wake) {
		g, _, err := h.Try(ctx)
		if err == nil {
			return g, nil, nil
		}
		if ctx.Err() != nil {
			return Grant{}, err, ctx.Err()
		}
		last, retryAt = err, h.retryAt(err)
	}
	w := wake.JoinWeighted(ctx, h.Client, h.Key.Wake, h.Key.Slot, h.Weight)
	if !retryAt.IsZero() {
		w.SetRetryAt(retryAt)
	}
	h.Spec.WaiterJoined()
	defer h.Spec.WaiterLeft()
	defer func() { w.Leave(false) }() // a no-op once Tried reported the acquisition
	b := h.Backoff
	b.Reset()
	var sleep time.Duration
	next := func() error {
		if sleep = b.NextBackOff(); sleep == backoff.Stop {
			return ErrBackoffStop
		}
		if h.Sleep != nil {
			sleep = h.Sleep(last, sleep)
		}
		return nil
	}
	head := false // w heads the queue: it alone retries on a timer
	now := false  // attempt without waiting
	for {
		if !now {
			turn, timer := w.Turn(), (*time.Timer)(nil)
			var expired <-chan time.Time
			if head {
				turn, timer = nil, time.NewTimer(sleep)
				expired = timer.C
			}
			select {
			case <-turn:
				// At the head: at once unless the predecessor just acquired
				// (then a release, or the fallback timer, must come first).
				head = true
				if now = h.Eager || !w.PredecessorAcquired(); !now {
					if err := next(); err != nil {
						return Grant{}, last, err
					}
					// Knowing of no expiry itself, w retries when the hold
					// another waiter's refusal reported expires (see RetryAt).
					if at := w.RetryAt(); last == nil && !at.IsZero() {
						sleep = max(min(sleep, time.Until(at)), 0)
					}
				}
				continue
			case <-w.Woken():
				b.Reset()
			case <-expired:
			case <-ctx.Done():
				if timer != nil {
					timer.Stop()
				}
				return Grant{}, last, ctx.Err()
			}
			if timer != nil {
				timer.Stop()
			}
		}
		now = false
		w.Begin()
		g, st, err := h.Try(ctx)
		w.Tried(st, err == nil)
		if err == nil {
			return g, nil, nil
		}
		last = keep(last, err)
		if ctx.Err() != nil {
			return Grant{}, last, ctx.Err()
		}
		if at := h.retryAt(err); !at.IsZero() {
			w.SetRetryAt(at)
		}
		if head && h.Requeue != nil && h.Requeue(err) {
			w.Leave(false)
			w = wake.JoinWeighted(ctx, h.Client, h.Key.Wake, h.Key.Slot, h.Weight)
			head = false
		}
		if err := next(); err != nil {
			return Grant{}, last, err
		}
	}
}

// retryAt returns when, by the failure err, the earliest hold expires (zero
// if err does not say).
func (h HashWait) retryAt(err error) time.Time {
	const never = time.Duration(1<<63 - 1)
	if h.Sleep != nil {
		if d := h.Sleep(err, never); d < never {
			return time.Now().Add(d)
		}
	}
	return time.Time{}
}

// ReleaseReply decodes a hash hold's release reply, {n, state, seq}, and
// wakes the local waiters of channel that the state admits (decoded by
// state); on an error, when the release may or may not have run, it wakes
// the head.
func ReleaseReply(client redis.UniversalClient, channel string, reply any, err error, state func(code, seq int64) wake.State) (int64, error) {
	var v []int64
	if err == nil {
		v, err = ParseInts(reply, 3)
	}
	if err != nil {
		wake.Released(client, channel)
		return 0, err
	}
	wake.Observed(client, channel, state(v[1], v[2]))
	return v[0], nil
}
