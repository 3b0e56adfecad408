package history

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC)

// at returns t0 + ms milliseconds; ms < 0 gives the zero time (open end).
func at(ms int) time.Time {
	if ms < 0 {
		return time.Time{}
	}
	return t0.Add(time.Duration(ms) * time.Millisecond)
}

func iv(client, name string, fence int64, start, end int) Interval {
	return Interval{Client: client, Name: name, Fence: fence, Start: at(start), End: at(end)}
}

// pairs renders overlap violations as "A-B" client pairs for comparison.
func pairs(vs []Violation) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.A.Client+"-"+v.B.Client)
	}
	return out
}

func TestCheckOverlaps(t *testing.T) {
	cases := []struct {
		name string
		in   []Interval
		want []string
	}{
		{"empty", nil, nil},
		{"single", []Interval{iv("a", "L", 1, 0, 10)}, nil},
		{"sequential", []Interval{iv("a", "L", 1, 0, 10), iv("b", "L", 2, 20, 30)}, nil},
		{"touching is not overlap", []Interval{iv("a", "L", 1, 0, 10), iv("b", "L", 2, 10, 20)}, nil},
		{"touching reversed input", []Interval{iv("b", "L", 2, 10, 20), iv("a", "L", 1, 0, 10)}, nil},
		{"partial overlap", []Interval{iv("a", "L", 1, 0, 10), iv("b", "L", 2, 9, 20)}, []string{"a-b"}},
		{"containment", []Interval{iv("a", "L", 1, 0, 100), iv("b", "L", 2, 10, 20)}, []string{"a-b"}},
		{"same start", []Interval{iv("a", "L", 1, 5, 10), iv("b", "L", 2, 5, 6)}, []string{"a-b"}},
		{"identical", []Interval{iv("a", "L", 1, 5, 10), iv("b", "L", 2, 5, 10)}, []string{"a-b"}},
		{"different names never conflict", []Interval{iv("a", "L", 1, 0, 10), iv("b", "M", 1, 0, 10)}, nil},
		{"same client twice", []Interval{iv("a", "L", 1, 0, 10), iv("a", "L", 2, 5, 15)}, []string{"a-a"}},
		{"open end overlaps everything later", []Interval{
			iv("a", "L", 1, 0, -1), iv("b", "L", 2, 1000, 1001), iv("c", "L", 3, 5000, -1),
		}, []string{"a-b", "a-c"}},
		{"open end after a closed one", []Interval{iv("a", "L", 1, 0, 10), iv("b", "L", 2, 10, -1)}, nil},
		{"every pair reported", []Interval{
			iv("a", "L", 1, 0, 30), iv("b", "L", 2, 10, 40), iv("c", "L", 3, 20, 50),
		}, []string{"a-b", "a-c", "b-c"}},
		{"long interval spans later ones", []Interval{
			iv("a", "L", 1, 0, 100), iv("b", "L", 2, 10, 20), iv("c", "L", 3, 20, 30), iv("d", "L", 4, 100, 110),
		}, []string{"a-b", "a-c"}},
		{"zero-length inside another", []Interval{iv("a", "L", 1, 0, 10), iv("b", "L", 2, 5, 5)}, []string{"a-b"}},
		{"zero-length at an edge", []Interval{iv("a", "L", 1, 0, 10), iv("b", "L", 2, 10, 10), iv("c", "L", 3, 0, 0)}, nil},
		{"end before start is zero-length", []Interval{iv("a", "L", 1, 0, 10), iv("b", "L", 2, 20, 1)}, nil},
		{"names sorted", []Interval{
			iv("m1", "M", 1, 0, 10), iv("m2", "M", 2, 5, 15), iv("l1", "L", 1, 0, 10), iv("l2", "L", 2, 5, 15),
		}, []string{"l1-l2", "m1-m2"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := pairs(CheckOverlaps(tc.in))
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("CheckOverlaps = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestCheckOverlapsMatchesBruteForce compares the sweep with the definition
// on every pair, over a grid of small intervals including open ones.
func TestCheckOverlapsMatchesBruteForce(t *testing.T) {
	var ivs []Interval
	n := 0
	for s := 0; s < 6; s++ {
		for e := s; e <= 6; e++ {
			end := e
			if e == 6 {
				end = -1
			}
			n++
			ivs = append(ivs, iv(fmt.Sprint(n), "L", int64(n), s, end))
		}
	}
	want := 0
	for i := range ivs {
		for j := i + 1; j < len(ivs); j++ {
			a, b := ivs[i], ivs[j]
			if (b.End.IsZero() || a.Start.Before(b.End)) && (a.End.IsZero() || b.Start.Before(a.End)) {
				want++
			}
		}
	}
	if got := len(CheckOverlaps(ivs)); got != want {
		t.Errorf("CheckOverlaps found %d overlaps, brute force %d", got, want)
	}
}

func TestCheckOverlapsDoesNotModifyInput(t *testing.T) {
	in := []Interval{iv("b", "L", 2, 20, 1), iv("a", "L", 1, 0, 30)}
	saved := append([]Interval(nil), in...)
	CheckOverlaps(in)
	for i := range in {
		if in[i] != saved[i] {
			t.Fatalf("input modified at %d: %+v", i, in[i])
		}
	}
}

func TestViolationString(t *testing.T) {
	vs := CheckOverlaps([]Interval{iv("c1", "orders", 3, 0, 50), iv("c2", "orders", 4, 25, -1)})
	if len(vs) != 1 {
		t.Fatalf("got %d violations, want 1", len(vs))
	}
	got := vs[0].String()
	want := `lock "orders": overlap of 25ms: client "c1" (fence 3) held it [10:00:00.000000000, 10:00:00.050000000] and client "c2" (fence 4) [10:00:00.025000000, open]`
	if got != want {
		t.Errorf("String() =\n%s\nwant\n%s", got, want)
	}
	both := CheckOverlaps([]Interval{iv("x", "L", 1, 0, -1), iv("y", "L", 2, 1, -1)})
	if len(both) != 1 || !strings.Contains(both[0].String(), "unbounded") {
		t.Errorf("open/open violation: %v", both)
	}
	if s := (Violation{Kind: Kind(9), Name: "n"}).String(); s != `lock "n": Kind(9)` {
		t.Errorf("unknown kind String() = %q", s)
	}
}

func TestRecorder(t *testing.T) {
	var r Recorder
	s1 := r.Begin("a", "L", 1)
	time.Sleep(time.Millisecond)
	s1.End()
	s2 := r.Begin("b", "L", 2)
	open := r.Begin("c", "M", 1)
	_ = open

	ivs := r.Intervals()
	if len(ivs) != 3 {
		t.Fatalf("got %d intervals, want 3", len(ivs))
	}
	if ivs[0].Client != "a" || ivs[0].Name != "L" || ivs[0].Fence != 1 || ivs[0].Open() {
		t.Errorf("interval 0 = %+v", ivs[0])
	}
	if !ivs[0].Start.Before(ivs[0].End) {
		t.Errorf("interval 0 not positive: %+v", ivs[0])
	}
	if !ivs[1].Open() || !ivs[2].Open() {
		t.Errorf("unfinished sections should be open: %+v", ivs[1:])
	}
	if v := CheckOverlaps(ivs); len(v) != 0 {
		t.Errorf("sequential sections reported: %v", v)
	}

	// An unfinished section for L overlaps a later one.
	s3 := r.Begin("d", "L", 3)
	s3.End()
	if v := CheckOverlaps(r.Intervals()); len(v) != 1 || v[0].A.Client != "b" || v[0].B.Client != "d" {
		t.Errorf("CheckOverlaps = %v, want b-d", v)
	}
	s2.End()
}

func TestSectionEndKeepsEarliest(t *testing.T) {
	var r Recorder
	s := r.Begin("a", "L", 1)
	start := s.Interval().Start
	lost := start.Add(time.Millisecond)

	s.EndAt(lost.Add(time.Second)) // release reported first
	s.EndAt(lost)                  // then the earlier lost moment
	s.EndAt(lost.Add(time.Hour))   // later calls never extend it
	s.EndAt(time.Time{})           // zero is ignored
	if got := s.Interval().End; !got.Equal(lost) {
		t.Errorf("End = %v, want %v", got, lost)
	}

	s1 := r.Begin("a", "L", 1)
	s1.End()
	end := s1.Interval().End
	s1.End()
	s1.EndAt(end.Add(time.Hour))
	if got := s1.Interval().End; !got.Equal(end) {
		t.Errorf("End moved from %v to %v", end, got)
	}

	s2 := r.Begin("b", "L", 2)
	s2.EndAt(s2.Interval().Start.Add(-time.Hour)) // before start: clamped
	if iv := s2.Interval(); !iv.End.Equal(iv.Start) {
		t.Errorf("end before start not clamped: %+v", iv)
	}
}

func TestNilSafety(t *testing.T) {
	var r *Recorder
	s := r.Begin("a", "L", 1)
	s.End()
	s.EndAt(time.Now())
	if iv := s.Interval(); iv != (Interval{}) {
		t.Errorf("nil section Interval = %+v", iv)
	}
	if r.Intervals() != nil {
		t.Error("nil recorder has intervals")
	}
	var zero Section
	zero.End()
}

func TestRecorderConcurrent(t *testing.T) {
	var r Recorder
	var mu sync.Mutex // a real mutex: its sections must never overlap
	var wg sync.WaitGroup
	for c := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				mu.Lock()
				s := r.Begin(fmt.Sprint("c", c), "L", int64(i))
				s.End()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	ivs := r.Intervals()
	if len(ivs) != 400 {
		t.Fatalf("got %d intervals, want 400", len(ivs))
	}
	// Begin and End are called inside the mutex, so sections at most touch.
	if v := CheckOverlaps(ivs); len(v) != 0 {
		t.Errorf("sections under a mutex overlap: %v", v[0])
	}
}

func TestFencedRegister(t *testing.T) {
	var r FencedRegister
	value := map[string]int64{}
	write := func(name string, fence int64) bool {
		return r.Write(name, fence, func() { value[name] = fence })
	}
	steps := []struct {
		name  string
		fence int64
		ok    bool
	}{
		{"L", 5, true},
		{"L", 7, true},
		{"L", 6, false}, // stale token, out of order
		{"L", 7, false}, // equal token
		{"M", 1, true},  // names are independent
		{"L", 8, true},
		{"M", -3, false},
	}
	for i, s := range steps {
		if got := write(s.name, s.fence); got != s.ok {
			t.Errorf("step %d: Write(%q, %d) = %v, want %v", i, s.name, s.fence, got, s.ok)
		}
	}
	if value["L"] != 8 || value["M"] != 1 {
		t.Errorf("applied values = %v, want L=8 M=1", value)
	}
	if a, rj := r.Counts(); a != 4 || rj != 3 {
		t.Errorf("Counts() = %d, %d; want 4, 3", a, rj)
	}
	if m, ok := r.Max("L"); !ok || m != 8 {
		t.Errorf("Max(L) = %d, %v", m, ok)
	}
	if _, ok := r.Max("none"); ok {
		t.Error("Max of an unwritten name reported ok")
	}
	if !r.Write("N", -100, nil) { // first write of a name, nil apply
		t.Error("first write with nil apply rejected")
	}
	ws := r.Writes()
	if len(ws) != len(steps)+1 {
		t.Fatalf("Writes() has %d entries, want %d", len(ws), len(steps)+1)
	}
	if ws[2] != (Write{Name: "L", Fence: 6, Accepted: false}) {
		t.Errorf("Writes()[2] = %+v", ws[2])
	}
	if v := CheckFences(ws); len(v) != 0 {
		t.Errorf("register's own log has violations: %v", v)
	}
}

func TestFencedRegisterConcurrent(t *testing.T) {
	var r FencedRegister
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				r.Write("L", int64(i*8+g), nil)
			}
		}()
	}
	wg.Wait()
	a, rj := r.Counts()
	if a+rj != 800 || a == 0 {
		t.Errorf("Counts() = %d, %d", a, rj)
	}
	if v := CheckFences(r.Writes()); len(v) != 0 {
		t.Errorf("violations: %v", v)
	}
}

func TestCheckFences(t *testing.T) {
	w := func(name string, fence int64, ok bool) Write { return Write{Name: name, Fence: fence, Accepted: ok} }
	log := []Write{
		w("L", 5, true),
		w("M", 9, true),
		w("L", 3, false), // rejected: fine
		w("L", 4, true),  // accepted out of order: violation vs #0
		w("L", 6, true),
		w("L", 6, true), // equal: violation vs #4
		w("M", 10, true),
		w("L", 2, true), // violation vs #4 (largest prior)
	}
	vs := CheckFences(log)
	want := [][2]int{{3, 0}, {5, 4}, {7, 4}}
	if len(vs) != len(want) {
		t.Fatalf("got %d violations %v, want %d", len(vs), vs, len(want))
	}
	for i, v := range vs {
		if v.Kind != FenceOrder || v.Name != "L" || v.WriteIndex != want[i][0] || v.PriorIndex != want[i][1] {
			t.Errorf("violation %d = %+v, want write #%d after #%d", i, v, want[i][0], want[i][1])
		}
		if v.Write != log[v.WriteIndex] || v.Prior != log[v.PriorIndex] {
			t.Errorf("violation %d carries wrong writes: %+v", i, v)
		}
	}
	if got, want := vs[0].String(), `lock "L": write #3 with fence 4 accepted after write #0 with fence 5`; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if CheckFences(nil) != nil {
		t.Error("CheckFences(nil) != nil")
	}
}

func TestKindString(t *testing.T) {
	if Overlap.String() != "overlap" || FenceOrder.String() != "fence-order" || Kind(0).String() != "Kind(0)" {
		t.Error("Kind.String mismatch")
	}
}
