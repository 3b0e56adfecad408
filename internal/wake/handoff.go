package wake

import (
	"time"

	"github.com/redis/go-redis/v9"
)

// Offer is what a waiter accepts from a local release: the lock handed over
// directly, under a token the releaser makes, with this TTL.
type Offer struct {
	TTL   time.Duration // whole milliseconds
	Drift float64       // the waiter's clock drift factor, for the handed lock's validity
}

// Handed is a lock a local release took on a waiter's behalf: the key holds
// "<Fence>:0:<Token>" since a request sent at SentAt.
type Handed struct {
	Token  string
	Fence  int64
	SentAt time.Time
}

// SetOffer records that a local release may hand w the lock directly; nil
// means w only takes the lock itself.
func (w *Waiter) SetOffer(offer *Offer) {
	w.h.mu.Lock()
	defer w.h.mu.Unlock()
	w.offer = offer
}

// Granted delivers a lock handed to w by a local release.
func (w *Waiter) Granted() <-chan Handed { return w.grant }

// Head returns the head waiter of channel in this process and its offer, or
// nil if there is none or it made no offer.
func Head(client redis.UniversalClient, channel string) (*Waiter, *Offer) {
	h := lookup(client)
	if h == nil {
		return nil, nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	q := h.queues[channel]
	if q == nil || len(q.waiters) == 0 || q.waiters[0].offer == nil {
		return nil, nil
	}
	return q.waiters[0], q.waiters[0].offer
}

// Deliver hands w a lock taken on its behalf. It reports false if w has
// left its queue; the caller then still owns what it tried to hand over.
func (w *Waiter) Deliver(g Handed) bool {
	w.h.mu.Lock()
	defer w.h.mu.Unlock()
	if w.removed {
		return false
	}
	select {
	case w.grant <- g:
		return true
	default:
		return false // already holds one: cannot happen for a single key
	}
}
