package wake

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Weighted waiters
//
// A semaphore's waiters ask for different amounts, and a read-write lock's
// readers share: a release may let in several waiters of one process at
// once. Such waiters join with a Weight, and the scripts of their lock report
// the State they observed (in their replies, and in the release's wake-up
// message). From a State, admit wakes the waiters that can now be admitted,
// in FIFO order from the head, and stops at the first that cannot, as
// golang.org/x/sync/semaphore's notifyWaiters does: a large request is not
// overtaken by later small ones, and no waiter is woken only to be refused.
//
// The count is only a hint: each woken waiter still makes its own attempt,
// which Redis decides. A waiter whose attempt is in flight may or may not be
// in a State already, so States (a release's, and each attempt's) that come
// while attempts of the queue are in flight are kept, and the walk runs
// when the last of those attempts ends, with the latest of the States: then
// no waiter is counted twice or missed. States are ordered by Seq, the slot's
// fence counter when they were observed, which every acquisition raises;
// between two acquisitions holds only go, so of two States with the same
// Seq the less crowded is the later (or, for a read-write lock, whose claim
// a refused writer may set meanwhile, the safe one to act on: it may wake a
// reader in vain, never keep one waiting). Meanwhile a release's State
// wakes at once the waiters that fit even if every attempt in flight
// succeeds.

// Kinds of weighted waiters.
const (
	KindSem   byte = 's' // a semaphore's waiter: Units of its Limit
	KindRead  byte = 'r' // a read-write lock's reader
	KindWrite byte = 'w' // a read-write lock's writer
)

// Weight is what a weighted waiter asks for.
type Weight struct {
	Kind  byte
	Units int64 // KindSem: the units wanted
	Limit int64 // KindSem: the waiter's limit
}

// State is what a script of a weighted lock observed. Kind 0 means unknown
// (the request failed).
type State struct {
	Kind   byte  // KindSem, or KindRead for any read-write lock state
	Used   int64 // semaphore: the units held; read-write lock: the read holds
	Writer bool  // read-write lock: a write hold exists
	Claim  bool  // read-write lock: a waiting writer's claim exists
	Seq    int64 // the slot's fence counter when observed
}

// SemState is a semaphore's state with used units held, at fence counter
// seq.
func SemState(used, seq int64) State { return State{Kind: KindSem, Used: used, Seq: seq} }

// RWState decodes a read-write lock script's state code (readers*4 + 2 if a
// write hold + 1 if a claim) at fence counter seq.
func RWState(code, seq int64) State {
	return State{Kind: KindRead, Used: code >> 2, Writer: code&2 != 0, Claim: code&1 != 0, Seq: seq}
}

// parseState decodes the state a release script appends to its wake-up
// message ("<fence>:<token>:s<used>.<seq>" or ":r<code>.<seq>"). It returns
// the message without it, which Expect recorded.
func parseState(payload string) (string, State) {
	i := strings.LastIndexByte(payload, ':')
	if i < 0 || i+2 > len(payload) {
		return payload, State{}
	}
	a, b, ok := strings.Cut(payload[i+2:], ".")
	n, err1 := strconv.ParseInt(a, 10, 64)
	seq, err2 := strconv.ParseInt(b, 10, 64)
	if !ok || err1 != nil || err2 != nil || n < 0 || seq < 0 {
		return payload, State{}
	}
	switch payload[i+1] {
	case KindSem:
		return payload[:i], SemState(n, seq)
	case KindRead:
		return payload[:i], RWState(n, seq)
	}
	return payload, State{}
}

// JoinWeighted is Join for a weighted waiter: besides at the head, it is
// woken wherever it stands when a State says it can be admitted.
func JoinWeighted(ctx context.Context, client redis.UniversalClient, channel string, shard int, wt Weight) *Waiter {
	return join(ctx, client, channel, shard, wt)
}

// Begin is called by a weighted waiter before each attempt; it consumes a
// pending wake-up, which the attempt answers.
func (w *Waiter) Begin() {
	w.h.mu.Lock()
	defer w.h.mu.Unlock()
	select {
	case <-w.wake:
	default:
	}
	if !w.trying && !w.removed {
		w.trying = true
		w.q.trying++
	}
}

// Tried reports the end of an attempt begun with Begin and the State its
// reply gave (Kind 0 if none). An acquired waiter leaves its queue, as
// Leave(true) does; the waiters behind it are then woken if st says they
// fit.
func (w *Waiter) Tried(st State, acquired bool) {
	w.h.mu.Lock()
	defer w.h.mu.Unlock()
	if w.removed {
		return
	}
	w.q.merge(st)
	w.endTry()
	if acquired {
		w.leaveLocked(true) // calls left, which admits the pending state
		return
	}
	w.q.flush()
}

// Observed tells the waiters of channel what a release observed: those
// that can now be admitted are woken (once no attempt is in flight).
func Observed(client redis.UniversalClient, channel string, st State) {
	h := lookup(client)
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if q := h.queues[channel]; q != nil {
		q.observed(st)
	}
}

// observed handles a release's state: the waiters that fit even if every
// attempt in flight succeeds are woken at once; the others once the last
// attempt ends.
func (q *queue) observed(st State) {
	q.merge(st)
	if q.trying > 0 {
		q.admit(st, true)
	}
	q.flush()
}

func (w *Waiter) endTry() {
	if w.trying {
		w.trying = false
		w.q.trying--
	}
}

// left is called by leaveLocked for a weighted waiter. One that gives up
// may have been counted as admitted by the last State: whoever it kept out
// is looked at again.
func (w *Waiter) left(acquired bool) {
	q := w.q
	w.endTry()
	if !acquired && q.last.Kind != 0 {
		q.merge(q.last)
	}
	q.flush()
	if len(q.waiters) == 0 {
		q.last, q.pending, q.retryAt = State{}, State{}, time.Time{}
	}
}

// RetryAt returns when the earliest hold of the lock expires, as the last
// refused attempt of w's queue that knew reported it (zero if none did). A
// waiter that reaches the head after its predecessor acquired, and never
// attempted itself, retries then at the latest: the acquisition says nothing
// of other processes' holds, which may expire without a release to wake
// anyone.
func (w *Waiter) RetryAt() time.Time {
	w.h.mu.Lock()
	defer w.h.mu.Unlock()
	return w.q.retryAt
}

// SetRetryAt records what a refused attempt of w's queue learnt (see
// RetryAt).
func (w *Waiter) SetRetryAt(t time.Time) {
	w.h.mu.Lock()
	defer w.h.mu.Unlock()
	if !w.removed {
		w.q.retryAt = t
	}
}

// merge adds st to the pending report, keeping the latest state (see the
// comment at the top).
func (q *queue) merge(st State) {
	p := &q.pending
	switch {
	case st.Kind == 0:
	case p.Kind != st.Kind || st.Seq > p.Seq:
		*p = st
	case st.Seq == p.Seq:
		p.Used = min(p.Used, st.Used)
		p.Writer = p.Writer && st.Writer
		p.Claim = p.Claim && st.Claim
	}
}

// flush admits by the pending report once no attempt is in flight.
func (q *queue) flush() {
	if q.trying > 0 || q.pending.Kind == 0 {
		return
	}
	st := q.pending
	q.pending = State{}
	q.admit(st, false)
}

// admit wakes, from the head, the waiters that st says fit, and stops at the
// first that does not (see the comment at the top). With early set,
// attempts are in flight and their waiters are taken to be not yet in st:
// each is counted as admitted, and not woken; such a walk may wake fewer
// than fit (the one that follows the last attempt wakes the rest), never
// too many. h.mu must be held.
func (q *queue) admit(st State, early bool) {
	if st.Kind == 0 {
		return
	}
	if !early {
		q.last = st
	}
	var units, readers int64 // admitted by this walk
	writer := false
	for i, w := range q.waiters {
		k := w.weight.Kind
		if k == 0 || (k == KindSem) != (st.Kind == KindSem) {
			// Another primitive of the same name: serve it as before.
			if i == 0 {
				w.signal()
			}
			return
		}
		if early && w.trying {
			switch k {
			case KindSem:
				units += w.weight.Units
			case KindRead:
				readers++
			case KindWrite:
				writer = true
			}
			continue
		}
		var fit, pass bool // pass: not admitted, but not in the way either
		switch k {
		case KindSem:
			fit = st.Used+units+w.weight.Units <= w.weight.Limit
			if fit && !w.trying {
				units += w.weight.Units
			}
		case KindRead:
			fit = !st.Writer && !st.Claim && !writer
			// Kept out only by a claim: a writer behind may be its owner.
			pass = st.Claim && !st.Writer && !writer
			if fit && !w.trying {
				readers++
			}
		case KindWrite:
			fit = !st.Writer && st.Used == 0 && readers == 0 && !writer
			writer = writer || fit
		}
		switch {
		case fit:
			w.signal()
		case w.trying || pass:
		default:
			return
		}
	}
}
