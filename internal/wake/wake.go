// Package wake lets lock waiters sleep until a release instead of polling.
//
// A release script publishes on the lock's wake-up channel (a lock's when a
// waiter's attempt marked the hold; see core's protocol.go). In each process,
// waiters that use the same redis client share one hub: one subscription
// connection (one per hash slot on Redis Cluster, where SSUBSCRIBE is bound to
// a shard) and, per channel, a FIFO queue of waiters. Only the head of a queue
// is woken by a release, so a release wakes one waiter per process, and the
// waiters of one process are served in arrival order. Weighted waiters (a
// semaphore's, a read-write lock's; see admit.go) are woken further down the
// queue too, as many as the release admits.
//
// Pub/sub is at-most-once: a message published while the subscription
// reconnects is lost. Waiters therefore also retry on a timer (see
// core.Obtain), and a re-established subscription wakes every queue head.
//
// Other packages put their own classic channels on the same connection with
// Listen (package revoke does, for revocation notices), so a process that
// holds leases and has waiters still keeps one subscription connection per
// client. The hub keeps a connection open while a queue or an Interest uses
// it; a queue lingers (Linger) after its last waiter, an Interest ends when
// it is stopped. On Redis Cluster an Interest's channel, which PUBLISH sends
// to every node, rides on a shard connection that exists when it is created,
// else on a connection of its own slot: there a process keeps one
// connection per hash slot it waits on, plus at most one.
package wake

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Linger is how long an idle channel stays subscribed, and an idle
// subscription connection open, after its last waiter left. It saves a
// SUBSCRIBE round trip when waiting resumes soon after.
const Linger = 200 * time.Millisecond

// confirmWait bounds how long Join waits for a subscription to be confirmed;
// past it the waiter relies on its fallback timer alone.
const confirmWait = time.Second

type queue struct {
	channel string
	shard   int
	waiters []*Waiter
	idle    *time.Timer // drops the channel once it has lingered empty
	ready   chan struct{}

	// Weighted waiters (see admit.go).
	trying  int       // waiters whose attempt is in flight
	pending State     // merged reports of attempts that ended while others were in flight
	last    State     // the latest state observed, for a waiter that gives up
	retryAt time.Time // see RetryAt
}

// Waiter is a place in the FIFO queue of one wake-up channel.
type Waiter struct {
	h       *hub
	q       *queue
	turn    chan struct{} // closed when the waiter reaches the head
	wake    chan struct{} // a release arrived while at the head
	skip    bool          // promoted because the previous head acquired the lock
	removed bool
	offer   *Offer      // what a local release may hand this waiter (see Head); nil: nothing
	grant   chan Handed // a handed-over lock, delivered while the waiter was queued
	weight  Weight      // Kind 0: unweighted, woken only at the head
	trying  bool        // weighted: between Begin and Tried
}

// Queued reports whether any waiter of this process waits on channel through
// client. A new locker defers to them instead of overtaking.
func Queued(client redis.UniversalClient, channel string) bool {
	h := lookup(client)
	if h == nil {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	q := h.queues[channel]
	return q != nil && len(q.waiters) > 0
}

// Join appends a waiter to channel's queue, having the channel subscribed
// first if this process does not yet listen to it. shard is the channel's
// hash slot. It waits (bounded by ctx and an internal limit) until the
// subscription is confirmed, so a release after Join returns is not missed
// while the subscription works. A failed or slow subscription is not an
// error: the waiter then depends on its fallback timer, and the subscription
// carries on in the background (ctx does not bound it).
func Join(ctx context.Context, client redis.UniversalClient, channel string, shard int) *Waiter {
	return join(ctx, client, channel, shard, Weight{})
}

func join(ctx context.Context, client redis.UniversalClient, channel string, shard int, wt Weight) *Waiter {
	h := lockedHub(client)
	q := h.queues[channel]
	fresh := q == nil
	if fresh {
		if !h.cluster {
			shard = 0
		}
		q = &queue{channel: channel, shard: shard, ready: make(chan struct{})}
		h.queues[channel] = q
	} else if q.idle != nil {
		q.idle.Stop()
		q.idle = nil
	}
	w := &Waiter{h: h, q: q, turn: make(chan struct{}), wake: make(chan struct{}, 1), grant: make(chan Handed, 1), weight: wt}
	q.waiters = append(q.waiters, w)
	if len(q.waiters) == 1 {
		close(w.turn)
	}
	if fresh {
		s := h.subs[q.shard]
		if s == nil {
			s = newSub(h, q.shard, channel)
			h.subs[q.shard] = s
		}
		s.request(channel, true)
	}
	h.mu.Unlock()

	t := time.NewTimer(confirmWait)
	defer t.Stop()
	select {
	case <-q.ready:
	case <-ctx.Done():
	case <-t.C:
	}
	return w
}

// Turn is closed when w is at the head of its queue.
func (w *Waiter) Turn() <-chan struct{} { return w.turn }

// Woken receives a value when a release was seen while w was at the head.
func (w *Waiter) Woken() <-chan struct{} { return w.wake }

// PredecessorAcquired reports whether w reached the head because the waiter
// before it acquired the lock; then an immediate attempt would only find the
// lock held, and w should wait for a wake-up first. Call it after Turn closed.
func (w *Waiter) PredecessorAcquired() bool {
	w.h.mu.Lock()
	defer w.h.mu.Unlock()
	return w.skip
}

// Leave removes w from its queue. acquired tells the next waiter whether the
// lock was just taken (so it waits for a release) or not (so it tries at once,
// inheriting any wake-up w had not consumed). It returns a lock handed to w
// (see Deliver) that w did not take from Granted: the caller must release it.
// Leave is idempotent.
func (w *Waiter) Leave(acquired bool) (unclaimed *Handed) {
	w.h.mu.Lock()
	defer w.h.mu.Unlock()
	return w.leaveLocked(acquired)
}

// leaveLocked is Leave with h.mu held.
func (w *Waiter) leaveLocked(acquired bool) (unclaimed *Handed) {
	h := w.h
	if w.removed {
		return nil
	}
	w.removed = true
	select {
	case g := <-w.grant:
		unclaimed = &g
		acquired = true // the key is held, by w's token: the next waiter must wait
	default:
	}
	q := w.q
	head := len(q.waiters) > 0 && q.waiters[0] == w
	for i, x := range q.waiters {
		if x == w {
			q.waiters = append(q.waiters[:i], q.waiters[i+1:]...)
			break
		}
	}
	if head && len(q.waiters) > 0 {
		next := q.waiters[0]
		next.skip = acquired
		close(next.turn)
		if !acquired {
			select {
			case <-w.wake:
				next.signal()
			default:
			}
		}
	}
	if w.weight.Kind != 0 {
		w.left(acquired)
	}
	if len(q.waiters) == 0 && q.idle == nil {
		q.idle = time.AfterFunc(Linger, func() { h.drop(q) })
	}
	return unclaimed
}

func (w *Waiter) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// confirmed handles a subscription confirmation. A repeated one means the
// connection was re-established and messages may have been missed, so the
// head is woken to look for itself.
func (h *hub) confirmed(channel string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	q := h.queues[channel]
	if q == nil {
		return
	}
	select {
	case <-q.ready:
		if len(q.waiters) > 0 {
			q.waiters[0].signal()
		}
	default:
		close(q.ready)
	}
}

// reconnected wakes every head of a shard after its connection failed.
func (h *hub) reconnected(shard int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, q := range h.queues {
		if q.shard == shard && len(q.waiters) > 0 {
			q.waiters[0].signal()
		}
	}
}

func isUnknownCommand(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && strings.Contains(strings.ToLower(err.Error()), "unknown command")
}

// QueueLen returns how many waiters of this process queue on channel
// through client (for tests and metrics).
func QueueLen(client redis.UniversalClient, channel string) int {
	h := lookup(client)
	if h == nil {
		return 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if q := h.queues[channel]; q != nil {
		return len(q.waiters)
	}
	return 0
}

// wants reports whether channel still has a queue that s should serve: an
// unsubscription of it was not ours.
func (h *hub) wants(s *sub, channel string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.queues[channel] != nil && h.subs[s.shard] == s
}

// channelsOf lists the channels with a queue in shard.
func (h *hub) channelsOf(shard int) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for ch, q := range h.queues {
		if q.shard == shard {
			out = append(out, ch)
		}
	}
	return out
}
