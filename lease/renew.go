package lease

import (
	"context"
	"time"
)

// renewRound is one renewal, run by the lease's renewal timer in the
// timer's goroutine: it resets the TTL, retrying failures with backoff until
// the validity deadline, then re-arms the timer. Between rounds a lease owns
// no goroutine; Release stops the timer and waits for a round in flight.
func (l *Lease) renewRound() {
	l.mu.Lock()
	if l.err != nil {
		l.mu.Unlock()
		return
	}
	l.renewing.Add(1) // under l.mu, before any Release can Wait
	l.mu.Unlock()
	defer l.renewing.Done()

	// base is canceled when the lease ends, so a renewal in flight stops
	// waiting as far as the client honours cancellation.
	base, cancelBase := context.WithCancelCause(context.Background())
	defer cancelBase(nil)
	defer l.onLost(cancelBase)()
	b := l.spec.NewBackoff()
	b.Reset()
	for {
		ctx, cancel := context.WithDeadline(base, l.ValidUntil())
		err := l.prolongAll(ctx, prolongOp{name: "renew", ms: l.spec.TTL.Milliseconds()})
		cancel()
		lerr := l.Err()
		if err != nil && lerr != ErrReleased {
			l.reportRenewFailed(err)
		}
		if err == nil || lerr != nil {
			break
		}
		d := b.NextBackOff()
		if d < 0 || d > l.spec.RenewInterval {
			d = l.spec.RenewInterval / 4
		}
		if rem := time.Until(l.ValidUntil()); d > rem {
			d = rem
		}
		r := time.NewTimer(d)
		select {
		case <-l.done:
			r.Stop()
			return
		case <-r.C:
		}
	}
	l.mu.Lock()
	if l.err == nil {
		l.renewTimer.Reset(l.spec.RenewInterval)
	}
	l.mu.Unlock()
}
