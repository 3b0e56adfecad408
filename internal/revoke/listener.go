package revoke

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/wake"
)

// Linger is how long a listener stays subscribed after its last watch ended:
// a process that takes and releases locks in a loop keeps its subscription.
const Linger = 200 * time.Millisecond

// checkTimeout bounds one tombstone check; a check that fails is retried
// every checkRetry while the listener lives.
const (
	checkTimeout = 2 * time.Second
	checkRetry   = 500 * time.Millisecond
)

// rememberFor and rememberMax bound the notices kept for holds that no watch
// names (yet): revocations are operator actions, so a few suffice.
const (
	rememberFor = time.Minute
	rememberMax = 256
)

// The registry: one listener per redis client and channel in this process,
// created by the first Watch and forgotten by drop once Linger passed
// without watches.
var (
	registryMu sync.Mutex
	registry   = map[listenerKey]*listener{}
)

type listenerKey struct {
	client  redis.UniversalClient
	channel string
}

// A listener receives its channel through an interest in the wake hub's
// subscription (wake.Listen), whose reading goroutine calls Message,
// Confirmed and Lost. It owns run, the goroutine that reads tombstones; drop
// stops the interest, signals run (quit) and waits for done.
type listener struct {
	key      listenerKey
	interest *wake.Interest // set before the listener is shared
	quit     chan struct{}  // closed by drop
	ctx      context.Context
	cancel   context.CancelFunc // called by drop: aborts a check in flight
	kick     chan struct{}      // capacity 1: a tombstone check is due
	done     chan struct{}      // closed when run returned

	mu       sync.Mutex
	watches  map[Hold]*node // each hold's watches, linked through their nodes
	n        int            // watches not stopped
	live     bool           // subscription confirmed and no failure seen since
	liveFrom time.Time      // when live last became true
	failed   bool           // a failure since the last confirmation: any watch may have missed a notice
	pending  bool           // a tombstone check is due
	idle     *time.Timer    // runs drop; armed while n == 0 (idleSet)
	idleSet  bool
	recent   map[Hold]time.Time // notices that named no watch
	order    []noticed
}

var _ wake.Handler = (*listener)(nil)

type noticed struct {
	h  Hold
	at time.Time
}

// Target is told when one of its holds was revoked: Revoked(i) for
// holds[i] of its Watch call.
type Target interface {
	Revoked(i int)
}

// Watcher is one lease's registration: its holds and whom to tell when one is
// revoked. Its zero value is ready for Holds and Watch; it is meant to be
// embedded in the lease it watches for (a single-hold watch then allocates
// nothing), and must not be copied once Watch was called.
type Watcher struct {
	l       *listener
	holds   []Hold
	nodes   []node // nodes[i] links holds[i] into l.watches
	target  Target
	covered bool // a notice for it cannot have been missed (see confirmed)
	check   bool // in the next tombstone check
	fired   bool // revoked was called, or Watch reported it
	stopped bool

	one     [1]Hold // storage of a single hold
	oneNode [1]node
}

// node is one hold of a Watcher in its listener's list of the watches of
// that hold.
type node struct {
	w    *Watcher
	next *node
}

// Holds returns a slice of n holds for the caller to fill and pass to Watch:
// w's own storage when n is 1, so a single-hold watch allocates nothing.
func (w *Watcher) Holds(n int) []Hold {
	if n == 1 {
		return w.one[:]
	}
	return make([]Hold, n)
}

// Watch starts w watching holds for revocation notices on channel, received
// through client (w is a zero Watcher, used once; holds may come from
// w.Holds). target.Revoked(i) is called at most once, when holds[i] is
// found revoked, from the listener's goroutine or the wake hub's reading
// goroutine, with no lock of either package held; it must not block. sent is
// when the request that created the holds was sent: if the subscription was
// confirmed only after that, a notice may have been published to no one,
// and the holds' tombstones are read once. If a notice for one of the holds
// arrived before the call, Watch returns its index as already (Revoked is then never
// called); otherwise already is -1. Watch never sends anything
// itself: the first watch of a client and channel starts their subscription
// in the background. The caller must call Stop when it no longer needs the
// watch.
func Watch(w *Watcher, client redis.UniversalClient, channel string, holds []Hold, sent time.Time, target Target) (already int) {
	k := listenerKey{client, channel}
	registryMu.Lock()
	l := registry[k]
	if l == nil {
		l = &listener{key: k, quit: make(chan struct{}), kick: make(chan struct{}, 1), done: make(chan struct{}), watches: map[Hold]*node{}}
		l.ctx, l.cancel = context.WithCancel(context.Background())
		// Under registryMu but not l.mu: the hub calls l's methods without
		// its own lock, so l.mu is never taken inside the hub's.
		l.interest = wake.Listen(client, channel, l)
		registry[k] = l
		go l.run()
	}
	l.mu.Lock() // before registryMu is released, so drop cannot forget l in between
	registryMu.Unlock()
	defer l.mu.Unlock()
	if l.idleSet {
		l.idle.Stop() // a drop already under way sees n > 0 and returns
		l.idleSet = false
	}
	// Covered only if the subscription was live before the holds were
	// created: a revocation in between published its notice to no one.
	w.l, w.holds, w.target = l, holds, target
	w.covered = l.live && l.liveFrom.Before(sent)
	w.nodes = w.oneNode[:]
	if len(holds) != 1 {
		w.nodes = make([]node, len(holds))
	}
	if l.live && !w.covered {
		w.check, l.pending = true, true
		select { // run reads the tombstones
		case l.kick <- struct{}{}:
		default:
		}
	}
	l.n++
	already = -1
	for i, h := range holds {
		n := &w.nodes[i]
		n.w, n.next = w, l.watches[h]
		l.watches[h] = n
		if _, ok := l.recent[h]; ok && already < 0 {
			already = i
			w.fired = true
		}
	}
	return already
}

// Stop ends the watch; the subscription closes Linger after the last one.
// Stop is idempotent, does nothing on a Watcher that Watch never started,
// and never waits for the network.
func (w *Watcher) Stop() {
	l := w.l
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if w.stopped {
		return
	}
	w.stopped = true
	for i, h := range w.holds {
		own := &w.nodes[i]
		head := l.watches[h]
		if head == own {
			if own.next == nil {
				delete(l.watches, h)
			} else {
				l.watches[h] = own.next
			}
		} else {
			for n := head; n != nil; n = n.next {
				if n.next == own {
					n.next = own.next
					break
				}
			}
		}
		own.next = nil
	}
	l.n--
	if l.n == 0 && !l.idleSet {
		if l.idle == nil {
			l.idle = time.AfterFunc(Linger, l.drop)
		} else {
			l.idle.Reset(Linger)
		}
		l.idleSet = true
	}
}

// drop closes a listener that stayed without watches for Linger.
func (l *listener) drop() {
	registryMu.Lock()
	l.mu.Lock()
	if l.n > 0 || registry[l.key] != l {
		l.mu.Unlock()
		registryMu.Unlock()
		return
	}
	delete(registry, l.key)
	l.idleSet = false
	l.mu.Unlock()
	registryMu.Unlock()
	l.interest.Stop() // no more calls of l's methods after it returns
	close(l.quit)
	l.cancel()
	<-l.done
}

// run reads the tombstones of the watches that may have missed a notice,
// when a confirmation asks for it (see confirmed) and again every checkRetry
// while a read failed, until drop.
func (l *listener) run() {
	defer close(l.done)
	retry := time.NewTimer(checkRetry)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-l.quit:
			return
		case <-l.kick:
		case <-retry.C:
		}
		l.check()
		if l.checkDue() {
			retry.Reset(checkRetry)
		}
	}
}

func (l *listener) checkDue() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pending
}

// Message handles a notice (wake.Handler).
func (l *listener) Message(payload string) { l.deliver(payload) }

// Confirmed handles a (re)confirmed subscription (wake.Handler): the
// watches that may have missed a notice are checked.
func (l *listener) Confirmed() {
	l.confirmed()
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// Lost handles a failed connection (wake.Handler).
func (l *listener) Lost() { l.lost() }

// lost records a failure of the subscription: notices may be missed until
// it is confirmed again.
func (l *listener) lost() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.live, l.failed = false, true
}

// confirmed records a (re)confirmed subscription and marks for a tombstone
// check every watch that may have missed a notice: those that started before
// the subscription was live, and after a failure all of them.
func (l *listener) confirmed() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, head := range l.watches {
		for n := head; n != nil; n = n.next {
			if w := n.w; l.failed || !w.covered {
				w.check = true
				l.pending = true
			}
		}
	}
	l.live, l.failed, l.liveFrom = true, false, time.Now()
}

// check reads the tombstones of the watches marked by confirmed (GETs in one
// pipeline, read-only) and reports those that were revoked. Watches whose
// read failed stay marked and are checked again after checkRetry.
func (l *listener) check() {
	l.mu.Lock()
	var ws []*Watcher
	seen := map[*Watcher]bool{}
	for _, head := range l.watches {
		for n := head; n != nil; n = n.next {
			if w := n.w; w.check && !seen[w] {
				seen[w] = true
				ws = append(ws, w)
			}
		}
	}
	if len(ws) == 0 {
		l.pending = false
	}
	l.mu.Unlock()
	if len(ws) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(l.ctx, checkTimeout)
	defer cancel()
	pipe := l.key.client.Pipeline()
	cmds := make([][]*redis.StringCmd, len(ws))
	for j, w := range ws {
		for _, h := range w.holds {
			cmds[j] = append(cmds[j], pipe.Get(ctx, Tombstone(h.Key, h.Token)))
		}
	}
	_, _ = pipe.Exec(ctx) // each command's error is read below (redis.Nil: no tombstone)

	type call struct {
		t Target
		i int
	}
	var fire []call
	l.mu.Lock()
	l.pending = false
	for j, w := range ws {
		failed, hit := false, -1
		for i, cmd := range cmds[j] {
			v, err := cmd.Result()
			switch {
			case err == redis.Nil:
			case err != nil:
				failed = true
			case v == strconv.FormatInt(w.holds[i].Fence, 10) && hit < 0:
				hit = i
			}
		}
		if hit >= 0 && !w.fired && !w.stopped {
			w.fired = true
			fire = append(fire, call{w.target, hit})
		}
		if failed && hit < 0 {
			l.pending = true
			continue
		}
		w.check, w.covered = false, true
	}
	l.mu.Unlock()
	for _, c := range fire {
		c.t.Revoked(c.i)
	}
}

// deliver handles a notice: the watch of the hold it names is told, or the
// notice is remembered for a watch that starts soon (its acquisition's reply
// may still be on its way).
func (l *listener) deliver(payload string) {
	h, ok := parse(payload)
	if !ok {
		return
	}
	type call struct {
		t Target
		i int
	}
	var fire []call
	l.mu.Lock()
	head := l.watches[h]
	for n := head; n != nil; n = n.next {
		w := n.w
		if w.fired || w.stopped {
			continue
		}
		w.fired = true
		for i, x := range w.holds {
			if x == h {
				fire = append(fire, call{w.target, i})
				break
			}
		}
	}
	if head == nil {
		l.remember(h)
	}
	l.mu.Unlock()
	for _, c := range fire {
		c.t.Revoked(c.i)
	}
}

// remember records a notice that named no watch. l.mu must be held.
func (l *listener) remember(h Hold) {
	now := time.Now()
	for len(l.order) > 0 && (len(l.order) >= rememberMax || now.Sub(l.order[0].at) > rememberFor) {
		e := l.order[0]
		if at, ok := l.recent[e.h]; ok && at.Equal(e.at) {
			delete(l.recent, e.h)
		}
		l.order = l.order[1:]
	}
	if l.recent == nil {
		l.recent = map[Hold]time.Time{}
	}
	l.recent[h] = now
	l.order = append(l.order, noticed{h, now})
}

// Listening reports whether this process has a listener for client and
// channel (for tests).
func Listening(client redis.UniversalClient, channel string) bool {
	registryMu.Lock()
	defer registryMu.Unlock()
	return registry[listenerKey{client, channel}] != nil
}
