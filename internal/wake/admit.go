package wake

import (
	"context"
	"strconv"
	"strings"

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
// in a State already, so admit assumes it is (and wakes it again if it fits,
// in case its attempt ran before the release): with attempts in flight it
// may wake too many, never too few. Attempts that end while others of the
// queue are still in flight report to admit only when the last one ends,
// with the most crowded of their States, so that no State counts an
// admitted waiter twice.

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
}

// SemState is a semaphore's state with used units held.
func SemState(used int64) State { return State{Kind: KindSem, Used: used} }

// RWState decodes a read-write lock script's state code: readers*4 +
// 2 (a write hold) + 1 (a claim).
func RWState(code int64) State {
	return State{Kind: KindRead, Used: code >> 2, Writer: code&2 != 0, Claim: code&1 != 0}
}

// parseState decodes the state a release script appends to its wake-up
// message ("<fence>:<token>:s<used>" or ":r<code>"). It returns the message
// without it, which Expect recorded.
func parseState(payload string) (string, State) {
	i := strings.LastIndexByte(payload, ':')
	if i < 0 || i+2 > len(payload) {
		return payload, State{}
	}
	n, err := strconv.ParseInt(payload[i+2:], 10, 64)
	if err != nil || n < 0 {
		return payload, State{}
	}
	switch payload[i+1] {
	case KindSem:
		return payload[:i], SemState(n)
	case KindRead:
		return payload[:i], RWState(n)
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
// that can now be admitted are woken.
func Observed(client redis.UniversalClient, channel string, st State) {
	h := lookup(client)
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if q := h.queues[channel]; q != nil {
		q.admit(st)
	}
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
		q.last, q.pending = State{}, State{}
	}
}

// merge adds st to the pending report, keeping the most crowded state.
func (q *queue) merge(st State) {
	switch {
	case st.Kind == 0:
	case q.pending.Kind != st.Kind:
		q.pending = st
	default:
		q.pending.Used = max(q.pending.Used, st.Used)
		q.pending.Writer = q.pending.Writer || st.Writer
		q.pending.Claim = q.pending.Claim || st.Claim
	}
}

// flush admits by the pending report once no attempt is in flight.
func (q *queue) flush() {
	if q.trying > 0 || q.pending.Kind == 0 {
		return
	}
	st := q.pending
	q.pending = State{}
	q.admit(st)
}

// admit wakes, from the head, the waiters that st says fit, and stops at the
// first that does not (see the comment at the top). h.mu must be held.
func (q *queue) admit(st State) {
	if st.Kind == 0 {
		return
	}
	q.last = st
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
