package wake

import (
	"testing"
)

func TestParseState(t *testing.T) {
	for _, c := range []struct {
		in, base string
		st       State
	}{
		{"7:abc", "7:abc", State{}},
		{"7:abc:s3", "7:abc", State{Kind: KindSem, Used: 3}},
		{"7:abc:r9", "7:abc", State{Kind: KindRead, Used: 2, Claim: true}},
		{"7:abc:r2", "7:abc", State{Kind: KindRead, Writer: true}},
		{":abc:s0", ":abc", State{Kind: KindSem}},
		{"7:a:b", "7:a:b", State{}},         // a custom token with a colon
		{"7:abc:s-1", "7:abc:s-1", State{}}, // never negative
		{"7:abc:s", "7:abc:s", State{}},
	} {
		base, st := parseState(c.in)
		if base != c.base || st != c.st {
			t.Errorf("parseState(%q) = %q, %+v; want %q, %+v", c.in, base, st, c.base, c.st)
		}
	}
}

// queueOf builds a queue of waiters with the given weights, none trying.
func queueOf(ws ...Weight) *queue {
	q := &queue{}
	h := &hub{}
	for _, wt := range ws {
		q.waiters = append(q.waiters, &Waiter{h: h, q: q, wake: make(chan struct{}, 1), weight: wt})
	}
	return q
}

func woken(q *queue) []bool {
	out := make([]bool, len(q.waiters))
	for i, w := range q.waiters {
		out[i] = len(w.wake) > 0
	}
	return out
}

func sem(n int64) Weight { return Weight{Kind: KindSem, Units: n, Limit: 4} }

var (
	rd = Weight{Kind: KindRead}
	wr = Weight{Kind: KindWrite}
)

func TestAdmit(t *testing.T) {
	for _, c := range []struct {
		name   string
		ws     []Weight
		trying []int
		st     State
		want   []bool
	}{
		{"fifo stops at the first that does not fit", []Weight{sem(1), sem(1), sem(3), sem(1)}, nil, SemState(0), []bool{true, true, false, false}},
		{"nothing free", []Weight{sem(1), sem(1)}, nil, SemState(4), []bool{false, false}},
		{"large first", []Weight{sem(3), sem(1), sem(1)}, nil, SemState(0), []bool{true, true, false}},
		{"trying counted as already in", []Weight{sem(2), sem(2), sem(1)}, []int{0}, SemState(2), []bool{true, true, false}},
		{"trying that does not fit is no obstacle", []Weight{sem(3), sem(1)}, []int{0}, SemState(3), []bool{false, true}},
		{"readers up to the first writer", []Weight{rd, rd, wr, rd}, nil, RWState(0), []bool{true, true, false, false}},
		{"writer first, alone", []Weight{wr, rd, wr}, nil, RWState(0), []bool{true, false, false}},
		{"readers held: writer waits", []Weight{wr, rd}, nil, RWState(8), []bool{false, false}},
		{"write held: nobody", []Weight{rd, wr}, nil, RWState(2), []bool{false, false}},
		{"claim: readers pass, the writer behind them is woken", []Weight{rd, rd, wr, rd}, nil, RWState(1), []bool{false, false, true, false}},
		{"claim and readers held: nobody", []Weight{rd, wr}, nil, RWState(5), []bool{false, false}},
		{"another primitive at the head: head only", []Weight{{}, sem(1)}, nil, SemState(0), []bool{true, false}},
		{"a semaphore state on a read-write queue: head only", []Weight{rd, rd}, nil, SemState(0), []bool{true, false}},
	} {
		t.Run(c.name, func(t *testing.T) {
			q := queueOf(c.ws...)
			for _, i := range c.trying {
				q.waiters[i].trying = true
				q.trying++
			}
			q.admit(c.st)
			got := woken(q)
			for i := range got {
				if got[i] != c.want[i] {
					t.Fatalf("woken %v, want %v", got, c.want)
				}
			}
		})
	}
}

// TestPendingUntilLastAttempt: attempts that end while others are in flight
// admit only when the last one ends, by the most crowded of their states.
func TestPendingUntilLastAttempt(t *testing.T) {
	q := queueOf(sem(1), sem(1), sem(2))
	a, b := q.waiters[0], q.waiters[1]
	for _, w := range []*Waiter{a, b} {
		w.trying = true
		q.trying++
	}
	q.merge(SemState(1)) // a got in; b still in flight
	a.endTry()
	q.flush()
	if got := woken(q); got[2] {
		t.Fatalf("woken %v while an attempt is in flight", got)
	}
	q.merge(SemState(2)) // b got in
	b.endTry()
	q.waiters = q.waiters[2:]
	q.flush()
	if got := woken(q); !got[0] {
		t.Fatalf("woken %v after the last attempt (2 of 4 held), want the 2 woken", got)
	}
}
