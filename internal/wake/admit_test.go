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
		{"7:abc:s3.12", "7:abc", State{Kind: KindSem, Used: 3, Seq: 12}},
		{"7:abc:r9.5", "7:abc", State{Kind: KindRead, Used: 2, Claim: true, Seq: 5}},
		{"7:abc:r2.0", "7:abc", State{Kind: KindRead, Writer: true}},
		{":abc:s0.1", ":abc", State{Kind: KindSem, Seq: 1}},
		{"7:a:b", "7:a:b", State{}},             // a custom token with a colon
		{"7:abc:s3", "7:abc:s3", State{}},       // no seq
		{"7:abc:s-1.2", "7:abc:s-1.2", State{}}, // never negative
		{"7:abc:s.2", "7:abc:s.2", State{}},
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
		{"fifo stops at the first that does not fit", []Weight{sem(1), sem(1), sem(3), sem(1)}, nil, SemState(0, 0), []bool{true, true, false, false}},
		{"nothing free", []Weight{sem(1), sem(1)}, nil, SemState(4, 0), []bool{false, false}},
		{"large first", []Weight{sem(3), sem(1), sem(1)}, nil, SemState(0, 0), []bool{true, true, false}},
		{"trying counted as already in", []Weight{sem(2), sem(2), sem(1)}, []int{0}, SemState(2, 0), []bool{true, true, false}},
		{"trying that does not fit is no obstacle", []Weight{sem(3), sem(1)}, []int{0}, SemState(3, 0), []bool{false, true}},
		{"readers up to the first writer", []Weight{rd, rd, wr, rd}, nil, RWState(0, 0), []bool{true, true, false, false}},
		{"writer first, alone", []Weight{wr, rd, wr}, nil, RWState(0, 0), []bool{true, false, false}},
		{"readers held: writer waits", []Weight{wr, rd}, nil, RWState(8, 0), []bool{false, false}},
		{"write held: nobody", []Weight{rd, wr}, nil, RWState(2, 0), []bool{false, false}},
		{"claim: readers pass, the writer behind them is woken", []Weight{rd, rd, wr, rd}, nil, RWState(1, 0), []bool{false, false, true, false}},
		{"claim and readers held: nobody", []Weight{rd, wr}, nil, RWState(5, 0), []bool{false, false}},
		{"another primitive at the head: head only", []Weight{{}, sem(1)}, nil, SemState(0, 0), []bool{true, false}},
		{"a semaphore state on a read-write queue: head only", []Weight{rd, rd}, nil, SemState(0, 0), []bool{true, false}},
	} {
		t.Run(c.name, func(t *testing.T) {
			q := queueOf(c.ws...)
			for _, i := range c.trying {
				q.waiters[i].trying = true
				q.trying++
			}
			q.admit(c.st, false)
			got := woken(q)
			for i := range got {
				if got[i] != c.want[i] {
					t.Fatalf("woken %v, want %v", got, c.want)
				}
			}
		})
	}
}

// TestPendingUntilLastAttempt: states that come while attempts are in
// flight wait for the last attempt to end; the walk then uses the latest of
// them (highest fence counter; of equal ones, the least crowded).
func TestPendingUntilLastAttempt(t *testing.T) {
	q := queueOf(sem(1), sem(1), sem(2))
	a, b := q.waiters[0], q.waiters[1]
	for _, w := range []*Waiter{a, b} {
		w.trying = true
		q.trying++
	}
	q.merge(SemState(2, 11)) // b got in (fence 11)
	q.merge(SemState(4, 10)) // a's reply, older: another holder was still in
	a.endTry()
	q.flush()
	if got := woken(q); got[2] {
		t.Fatalf("woken %v while an attempt is in flight", got)
	}
	q.merge(SemState(1, 11)) // a release after b got in
	b.endTry()
	q.waiters = q.waiters[2:]
	q.flush()
	if got := woken(q); !got[0] {
		t.Fatalf("woken %v after the last attempt (1 of 4 held), want the 2 woken", got)
	}
}

func TestLatest(t *testing.T) {
	q := &queue{}
	for _, st := range []State{SemState(3, 7), SemState(1, 6), SemState(2, 7), SemState(4, 7)} {
		q.merge(st)
	}
	if want := SemState(2, 7); q.pending != want {
		t.Fatalf("pending %+v, want %+v", q.pending, want)
	}
	q = &queue{}
	q.merge(RWState(4+2+1, 3)) // a reader, a writer, a claim
	q.merge(RWState(1, 3))     // same seq: the writer and the reader went
	if want := RWState(1, 3); q.pending != want {
		t.Fatalf("pending %+v, want %+v", q.pending, want)
	}
}

// TestEarlyWalk: a release's state that comes while attempts are in flight
// wakes at once only the waiters that fit even if those attempts succeed.
func TestEarlyWalk(t *testing.T) {
	for _, c := range []struct {
		name string
		ws   []Weight
		st   State
		want []bool
	}{
		{"fits beside the attempt", []Weight{sem(1), sem(1), sem(3)}, SemState(1, 0), []bool{false, true, false}},
		{"would fit only if the attempt failed", []Weight{sem(2), sem(2)}, SemState(1, 0), []bool{false, false}},
		{"readers beside a reader's attempt", []Weight{rd, rd, wr}, RWState(0, 0), []bool{false, true, false}},
		{"nobody beside a writer's attempt", []Weight{wr, rd}, RWState(0, 0), []bool{false, false}},
	} {
		t.Run(c.name, func(t *testing.T) {
			q := queueOf(c.ws...)
			q.waiters[0].trying = true
			q.trying++
			q.observed(c.st)
			got := woken(q)
			for i := range got {
				if got[i] != c.want[i] {
					t.Fatalf("woken %v, want %v", got, c.want)
				}
			}
			if q.pending != c.st {
				t.Fatalf("pending %+v, want %+v kept for the end of the attempt", q.pending, c.st)
			}
		})
	}
}
