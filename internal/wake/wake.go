// Package wake lets lock waiters sleep until a release instead of polling.
//
// A release script publishes on the lock's wake-up channel. In each process,
// waiters that use the same redis client share one hub: one subscription
// connection (one per hash slot on Redis Cluster, where SSUBSCRIBE is bound to
// a shard) and, per channel, a FIFO queue of waiters. Only the head of a queue
// is woken by a release, so a release wakes one waiter per process, and the
// waiters of one process are served in arrival order.
//
// Pub/sub is at-most-once: a message published while the subscription
// reconnects is lost. Waiters therefore also retry on a timer (see
// core.Obtain), and a re-established subscription wakes every queue head.
package wake

import (
	"context"
	"errors"
	"strings"
	"sync"
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

var (
	registryMu sync.Mutex
	registry   = map[redis.UniversalClient]*hub{}
)

type hub struct {
	client  redis.UniversalClient
	cluster bool

	mu     sync.Mutex
	queues map[string]*queue // by channel
	subs   map[int]*sub      // by shard: hash slot on Cluster, 0 elsewhere

	// Wake-ups announced by a local release: its pub/sub message is dropped
	// when it arrives (the head was woken directly). Entries whose message
	// never comes expire after ignoreTTL, oldest first.
	ignored     map[string]time.Time
	ignoreOrder []ignoreEntry
}

type ignoreEntry struct {
	key string
	at  time.Time
}

const ignoreTTL = 10 * time.Second

type queue struct {
	channel string
	shard   int
	waiters []*Waiter
	idle    *time.Timer // drops the channel once it has lingered empty
	ready   chan struct{}
}

// Waiter is a place in the FIFO queue of one wake-up channel.
type Waiter struct {
	h       *hub
	q       *queue
	turn    chan struct{} // closed when the waiter reaches the head
	wake    chan struct{} // a release arrived while at the head
	skip    bool          // promoted because the previous head acquired the lock
	removed bool
	offer   any      // what a local release may hand this waiter (see Head); nil: nothing
	grant   chan any // a handed-over lock, delivered while the waiter was queued
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
	w := &Waiter{h: h, q: q, turn: make(chan struct{}), wake: make(chan struct{}, 1), grant: make(chan any, 1)}
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
func (w *Waiter) Leave(acquired bool) (unclaimed any) {
	h := w.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if w.removed {
		return nil
	}
	w.removed = true
	select {
	case unclaimed = <-w.grant:
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
	if len(q.waiters) == 0 && q.idle == nil {
		q.idle = time.AfterFunc(Linger, func() { h.drop(q) })
	}
	return unclaimed
}

// SetOffer records what a local release may hand w directly (for example
// its token and TTL); nil means w only takes the lock itself.
func (w *Waiter) SetOffer(offer any) {
	w.h.mu.Lock()
	defer w.h.mu.Unlock()
	w.offer = offer
}

// Granted delivers a lock handed to w by a local release.
func (w *Waiter) Granted() <-chan any { return w.grant }

// Head returns the head waiter of channel in this process and its offer, or
// nil if there is none or it made no offer.
func Head(client redis.UniversalClient, channel string) (*Waiter, any) {
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
func (w *Waiter) Deliver(g any) bool {
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

func (w *Waiter) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Expect is called before a local release of channel's lock with token is
// sent: the pub/sub message it publishes will be ignored here, because
// Released wakes the local head directly. Recording it before the release
// goes out means the message cannot overtake the record.
func Expect(client redis.UniversalClient, channel, token string) {
	h := lookup(client)
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	q := h.queues[channel]
	if q == nil || len(q.waiters) == 0 {
		return // nobody to wake; a waiter joining now may get one spare wake-up
	}
	now := time.Now()
	// Drop from the front what expired or was already consumed (messages
	// mostly arrive in release order, so the queue stays short).
	for len(h.ignoreOrder) > 0 {
		e := h.ignoreOrder[0]
		at, ok := h.ignored[e.key]
		live := ok && at.Equal(e.at)
		if live && now.Sub(e.at) <= ignoreTTL {
			break
		}
		if live {
			delete(h.ignored, e.key)
		}
		h.ignoreOrder = h.ignoreOrder[1:]
	}
	key := channel + "\x00" + token
	h.ignored[key] = now
	h.ignoreOrder = append(h.ignoreOrder, ignoreEntry{key, now})
}

// Unexpect forgets a wake-up announced with Expect that will not be
// published (the release handed the lock over instead).
func Unexpect(client redis.UniversalClient, channel, token string) {
	h := lookup(client)
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.ignored, channel+"\x00"+token)
}

// Released tells the local waiters of channel that this process has just
// released the lock: the head is woken at once, without waiting for the
// pub/sub message (see Expect).
func Released(client redis.UniversalClient, channel string) {
	h := lookup(client)
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if q := h.queues[channel]; q != nil && len(q.waiters) > 0 {
		q.waiters[0].signal()
	}
}

// lookup returns client's hub, or nil if this process has none.
func lookup(client redis.UniversalClient) *hub {
	registryMu.Lock()
	defer registryMu.Unlock()
	return registry[client]
}

// lockedHub returns client's hub, creating it if needed, with h.mu held. The
// hub is locked before the registry is unlocked so drop cannot forget it
// in between.
func lockedHub(client redis.UniversalClient) *hub {
	registryMu.Lock()
	defer registryMu.Unlock()
	h := registry[client]
	if h == nil {
		_, cluster := client.(*redis.ClusterClient)
		h = &hub{client: client, cluster: cluster, queues: map[string]*queue{}, subs: map[int]*sub{}, ignored: map[string]time.Time{}}
		registry[client] = h
	}
	h.mu.Lock()
	return h
}

// deliver handles a message published on channel.
func (h *hub) deliver(channel, payload string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.ignored[channel+"\x00"+payload]; ok {
		delete(h.ignored, channel+"\x00"+payload)
		return
	}
	if q := h.queues[channel]; q != nil && len(q.waiters) > 0 {
		q.waiters[0].signal()
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

// drop unsubscribes a channel that stayed without waiters for Linger, closes
// its shard's connection when that was the last channel, and forgets the hub
// when it has nothing left.
func (h *hub) drop(q *queue) {
	h.mu.Lock()
	if len(q.waiters) > 0 || h.queues[q.channel] != q {
		h.mu.Unlock()
		return
	}
	delete(h.queues, q.channel)
	s := h.subs[q.shard]
	last := true
	for _, other := range h.queues {
		if other.shard == q.shard {
			last = false
			break
		}
	}
	if s != nil && last {
		delete(h.subs, q.shard)
		s.stop()
	}
	if s != nil && !last {
		// Queued under h.mu: a Join that re-creates this channel's queue
		// requests its subscription after this, never before.
		s.request(q.channel, false)
	}
	empty := len(h.queues) == 0
	h.mu.Unlock()

	if s != nil && last {
		<-s.done
	}
	if empty {
		registryMu.Lock()
		h.mu.Lock()
		if len(h.queues) == 0 && registry[h.client] == h {
			delete(registry, h.client)
		}
		h.mu.Unlock()
		registryMu.Unlock()
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
