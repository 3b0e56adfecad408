//go:build faults

package faults

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/multilock"
	"github.com/redlease/redlease/mutex"
)

var (
	nemesisNames = []string{"n0", "n1", "n2", "n3"}
	nemesisSets  = [][]string{{"n0", "n1"}, {"n1", "n2"}, {"n0", "n2", "n3"}, {"n2", "n3"}, {"n3", "n0"}}
	nemesisTTLs  = []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second}
	shorterTTLs  = []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond}
	longerTTLs   = []time.Duration{time.Second, 2 * time.Second}
	extendBy     = []time.Duration{100 * time.Millisecond, 300 * time.Millisecond, 500 * time.Millisecond}
	lockWaits    = []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 300 * time.Millisecond, time.Second}
	opWaits      = []time.Duration{50 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond}
)

// maxKeyLife bounds the TTL any operation gives a lock key: WithTTL and
// Refresh go up to 2s, and Extend (at most 500ms) is only used on a lease
// with under 1s left.
const maxKeyLife = 2 * time.Second

// worker is one goroutine doing random lock operations through one client.
type worker struct {
	n      *nemesis
	who    string
	c      *redis.Client
	r      *rand.Rand
	token  string       // custom token (mutex.WithToken), or "" for random ones
	shared *mutex.Mutex // the handoff group's Mutex: every acquisition goes through it
	sem    bool         // a semaphore worker (acquireSem)
	rw     bool         // an rwmutex worker (acquireRW)
	cur    *holding

	recent  *opLog    // the worker's last operations, for violation reports
	attempt string    // the acquisition being attempted, copied into the lease's log
	tried   time.Time // when it began
}

// begin notes that the worker starts an operation, in its own log and the
// current lease's.
func (w *worker) begin(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	w.recent.add(msg)
	if w.cur != nil {
		w.cur.log.add(msg)
	}
}

// opLog keeps the last few operations of a worker or a lease, with times,
// for violation reports; a lease's log also keeps its first entry, the
// acquisition. Safe for concurrent use.
type opLog struct {
	mu    sync.Mutex
	max   int
	first int // entries never dropped: 0 or 1
	ents  []string
}

func newOpLog(max int, keepFirst bool) *opLog {
	o := &opLog{max: max}
	if keepFirst {
		o.first = 1
	}
	return o
}

func (o *opLog) add(msg string) { o.addAt(time.Now(), msg) }

func (o *opLog) addAt(t time.Time, msg string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.ents) == o.max {
		o.ents = append(o.ents[:o.first], o.ents[o.first+1:]...)
	}
	o.ents = append(o.ents, t.Format("15:04:05.000000")+" "+msg)
}

// String returns the entries, oldest first.
func (o *opLog) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return strings.Join(o.ents, "; ")
}

type holding struct {
	l    *lease.Lease
	end  func() // ends the recorded critical sections
	auto bool
	rw   string // an rwmutex lease: "r" (read hold) or "w" (write hold)
	log  *opLog // what the worker did with the lease
}

// step is one step's random choices, all drawn up front whatever the state,
// so that a seed replays the same sequence of choices.
type step struct {
	op, name, set int
	ttl           time.Duration
	auto          bool
	lockWait      time.Duration
	opWait        time.Duration
	shorter       time.Duration
	longer        time.Duration
	extend        time.Duration
	hold          time.Duration
	pause         time.Duration
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func (w *worker) draw() step {
	r := w.r
	return step{
		op: r.IntN(100), name: r.IntN(len(nemesisNames)), set: r.IntN(len(nemesisSets)),
		ttl: pick(r, nemesisTTLs), auto: r.IntN(2) == 0,
		lockWait: pick(r, lockWaits), opWait: pick(r, opWaits),
		shorter: pick(r, shorterTTLs), longer: pick(r, longerTTLs), extend: pick(r, extendBy),
		hold:  time.Duration(10+r.IntN(290)) * time.Millisecond,
		pause: time.Duration(r.IntN(20)) * time.Millisecond,
	}
}

func (w *worker) run(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			if w.cur != nil {
				w.release("release-at-end")
			}
			return
		default:
		}
		s := w.draw()
		w.n.steps.Add(1)
		if w.cur != nil && w.cur.l.Err() != nil {
			err := w.cur.l.Err()
			switch {
			case errors.Is(err, lease.ErrExpired):
				w.n.ops.add("lost-expired")
			case errors.Is(err, lease.ErrNotHeld):
				w.n.ops.add("lost-notheld")
			default:
				w.n.ops.add("lost-other")
			}
			w.release("release-lost")
		}
		if w.cur == nil {
			w.acquire(s)
		} else {
			w.act(s)
		}
		time.Sleep(s.pause)
	}
}

func (w *worker) opts(s step) []mutex.Option {
	o := []mutex.Option{mutex.WithTTL(s.ttl), mutex.WithAutoRenew(s.auto)}
	if w.token != "" {
		o = append(o, mutex.WithToken(w.token))
	}
	return o
}

func (w *worker) acquire(s step) {
	type locker interface {
		Lock(context.Context) (*lease.Lease, error)
		TryLock(context.Context) (*lease.Lease, error)
	}
	var lk locker
	var names []string
	kind := "lock"
	auto := s.auto
	switch {
	case w.sem:
		w.acquireSem(s)
		return
	case w.rw:
		w.acquireRW(s)
		return
	case w.shared != nil:
		lk, names, auto = w.shared, []string{w.shared.Name()}, true
		s.ttl = sharedTTL
	case s.op < 70:
		m, err := mutex.New(w.c, nemesisNames[s.name], w.opts(s)...)
		if err != nil {
			w.n.t.Errorf("mutex.New: %v", err)
			return
		}
		lk, names = m, []string{m.Name()}
	default:
		ml, err := multilock.New(w.c, nemesisSets[s.set], w.opts(s)...)
		if err != nil {
			w.n.t.Errorf("multilock.New: %v", err)
			return
		}
		lk, names, kind = ml, ml.Names(), "multilock"
	}
	try := s.op >= 45 && s.op < 70 || s.op >= 88 // the rest wait with Lock
	if w.token != "" {
		w.n.reg.attempting(names, w.token)
	}
	var l *lease.Lease
	var err error
	if try {
		kind += "-try"
		w.attempt, w.tried = fmt.Sprintf("%s %v ttl=%v auto=%v", kind, names, s.ttl, auto), time.Now()
		w.begin("%s", w.attempt)
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		l, err = lk.TryLock(ctx)
		cancel()
	} else {
		w.attempt, w.tried = fmt.Sprintf("%s %v ttl=%v auto=%v wait=%v", kind, names, s.ttl, auto, s.lockWait), time.Now()
		w.begin("%s", w.attempt)
		ctx, cancel := context.WithTimeout(context.Background(), s.lockWait)
		l, err = lk.Lock(ctx)
		cancel()
	}
	w.n.ops.add(kind)
	if err != nil {
		if errors.Is(err, mutex.ErrLocked) {
			w.n.ops.add(kind + "-locked")
			w.n.noteLocked(names)
		} else {
			w.n.ops.add(kind + "-error")
		}
		return
	}
	w.n.ops.add(kind + "-ok")
	h := &holding{l: l, auto: auto, log: newOpLog(12, true)}
	h.log.addAt(w.tried, w.attempt)
	w.cur = h
	w.begin("%s ok: fence %d, token %q, valid for %v", kind, l.Fence(), l.Token(), time.Until(l.ValidUntil()).Round(time.Millisecond))
	w.n.reg.add(live{l: l, w: w, names: l.Names(), log: h.log})
	h.end = w.n.track(w, l, h.log)
}

func (w *worker) act(s step) {
	h := w.cur
	ctx, cancel := context.WithTimeout(context.Background(), s.opWait)
	defer cancel()
	op := s.op
	if op >= 30 && op < 40 && time.Until(h.l.ValidUntil()) >= time.Second {
		op = 0 // Extend only a lease with under 1s left, so keys stay within maxKeyLife
	}
	if op < 30 && (w.sem || h.rw == "r") {
		op = 60 // Guard refuses a semaphore lease and a read hold: hold instead
	}
	switch {
	case op < 30:
		w.begin("guard (ctx %v)", s.opWait)
		w.guard(ctx, h.l)
	case op < 40:
		w.begin("extend %v (ctx %v)", s.extend, s.opWait)
		w.n.ops.add("extend")
		w.count("extend", h.l.Extend(ctx, s.extend))
	case op < 50:
		w.begin("refresh %v (ctx %v)", s.shorter, s.opWait)
		w.n.ops.add("refresh-shorter")
		w.count("refresh-shorter", h.l.Refresh(ctx, s.shorter))
	case op < 58:
		w.begin("refresh %v (ctx %v)", s.longer, s.opWait)
		w.n.ops.add("refresh-longer")
		w.count("refresh-longer", h.l.Refresh(ctx, s.longer))
	case op < 65:
		w.begin("hold %v", s.hold)
		w.n.ops.add("hold")
		select {
		case <-time.After(s.hold):
		case <-h.l.Lost():
		}
	case op < 70 && !h.auto && w.token == "":
		// Never released: the lease expires on its own. It stays live (and
		// checked) until Lost closes. Not with a custom token: the worker's
		// next attempt would be a second holder with the same token, which
		// Redis cannot tell apart (see mutex.WithToken).
		w.begin("abandon")
		w.n.ops.add("abandon")
		l := h.l
		lctx, _ := l.Context(context.Background()) // canceled by the lease when it ends
		context.AfterFunc(lctx, func() { w.n.reg.remove(l) })
		w.cur = nil
	default:
		w.release("release")
	}
}

// count tallies an operation's outcome: ok, refused because the lease ended,
// or another (network, timeout) error.
func (w *worker) count(op string, err error) {
	switch {
	case err != nil:
		w.begin("  → %v", err)
	case w.cur != nil:
		w.begin("  → ok, valid for %v", time.Until(w.cur.l.ValidUntil()).Round(time.Millisecond))
	default:
		w.begin("  → ok")
	}
	switch {
	case err == nil:
		w.n.ops.add(op + "-ok")
	case errors.Is(err, lease.ErrNotHeld) || errors.Is(err, lease.ErrExpired):
		w.n.ops.add(op + "-ended")
	default:
		w.n.ops.add(op + "-error")
	}
}

// guard increments every name's counter under Guard and records whether the
// write was acknowledged, refused, or may or may not have been applied.
func (w *worker) guard(ctx context.Context, l *lease.Lease) {
	names := l.Names()
	err := l.Guard(ctx, func(p redis.Pipeliner) error {
		for _, name := range names {
			p.Incr(ctx, guardKey(name))
		}
		return nil
	})
	w.n.ops.add("guard")
	w.count("guard", err)
	w.n.guardDone(names, err)
}

func (w *worker) release(op string) {
	h := w.cur
	h.end()
	w.begin("%s (lease err %v)", op, h.l.Err())
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	err := h.l.Release(ctx)
	cancel()
	w.n.reg.remove(h.l)
	w.n.ops.add(op)
	if op == "release" {
		w.count(op, err)
	}
	w.cur = nil
}
