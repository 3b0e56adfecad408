package core

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"

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
	if err := ctx.Err(); err != nil {
		return Grant{}, s.waitErr(err, nil) // done on entry: nothing sent
	}
	first := s.Groups[0].Keys[0]
	var last error
	if !wake.Queued(s.Client, first.Wake) {
		g, err := s.Try(ctx)
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
