package lease

import (
	"context"
	"time"
)

// renewRound is one renewal, run by fire in the timer's goroutine (which
// counted it in l.renewing): it resets the TTL, retrying failures with
// backoff until the validity deadline, then schedules the next round. Between
// rounds a lease owns no goroutine; Release stops the timer and waits for a
// round in flight.
func (l *Lease) renewRound() {
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
		case <-l.Lost():
			r.Stop()
			return
		case <-r.C:
		}
	}
	l.mu.Lock()
	if l.err == nil {
		l.renewAt = time.Now().Add(l.spec.RenewInterval)
		l.timer.Reset(time.Until(l.next()))
	}
	l.mu.Unlock()
}
