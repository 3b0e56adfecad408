// Package history records the critical sections of lock holders during a
// test and checks the record for mutual-exclusion and fencing violations.
//
// A test wraps every critical section in Recorder.Begin and Section.End (or
// builds []Interval by hand) and passes Recorder.Intervals to CheckOverlaps,
// which reports every pair of sections of the same lock that overlapped in
// time. For fenced writes, a FencedRegister plays the part of a storage
// system that rejects stale fencing tokens, and CheckFences checks a log of
// writes for an accepted write whose token did not increase.
//
// Times are meant to come from time.Now() on one machine, so that they carry
// monotonic clock readings and are immune to wall-clock steps. Comparisons
// use time.Time.Before, which uses the monotonic readings when both values
// have one and the wall clock otherwise (as for hand-built times).
package history

import (
	"sync"
	"time"
)

// Interval is a period in which Client believed it held lock Name with
// fencing token Fence: from Start (when the acquisition returned) to End
// (the earlier of the release and the moment the client learned, or should
// have assumed, that the lock was lost). A zero End means the section never
// ended: it is treated as open until the end of time.
type Interval struct {
	Client string
	Name   string
	Fence  int64
	Start  time.Time
	End    time.Time
}

// Open reports whether the interval has no end.
func (iv Interval) Open() bool { return iv.End.IsZero() }

// Recorder collects intervals. It is safe for concurrent use; the zero value
// is ready to use. A nil *Recorder records nothing.
type Recorder struct {
	mu  sync.Mutex
	ivs []Interval
}

// Section is one critical section being recorded, returned by Begin. Its
// methods are safe for concurrent use; a nil *Section ignores them.
type Section struct {
	r *Recorder
	i int // index in r.ivs
}

// Begin records the start, at time.Now(), of a critical section in which
// client holds lock name with fencing token fence, and returns the section
// to end later. Sections never ended stay open (End zero) in Intervals.
func (r *Recorder) Begin(client, name string, fence int64) *Section {
	if r == nil {
		return nil
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ivs = append(r.ivs, Interval{Client: client, Name: name, Fence: fence, Start: now})
	return &Section{r: r, i: len(r.ivs) - 1}
}

// End ends the section now. It is the same as EndAt(time.Now()).
func (s *Section) End() { s.EndAt(time.Now()) }

// EndAt ends the section at t. The section keeps the earliest end it is
// given, so End and EndAt are idempotent and may be called once at the
// release and once at the moment the lock was found lost, in either order:
// the recorded end is the earlier of the two. A t before the start is
// recorded as the start (an empty section); a zero t is ignored.
func (s *Section) EndAt(t time.Time) {
	if s == nil || s.r == nil || t.IsZero() {
		return
	}
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	iv := &s.r.ivs[s.i]
	if t.Before(iv.Start) {
		t = iv.Start
	}
	if iv.End.IsZero() || t.Before(iv.End) {
		iv.End = t
	}
}

// Interval returns the section as recorded so far (End is zero while open).
func (s *Section) Interval() Interval {
	if s == nil || s.r == nil {
		return Interval{}
	}
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	return s.r.ivs[s.i]
}

// Intervals returns a copy of all recorded intervals, in the order Begin was
// called. Sections not yet ended have a zero End.
func (r *Recorder) Intervals() []Interval {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Interval, len(r.ivs))
	copy(out, r.ivs)
	return out
}
