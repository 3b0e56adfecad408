package mutex_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/mutex"
)

// Allocation budgets of an uncontended TryLock+Release (issue 14), go-redis's
// own allocations included (about 8.5 a pair: a Cmd per call and the pool's
// connection health check). Without the race detector: it adds its own, so
// `make test` runs this test once more without it.
const (
	allocsReused = 12 // a Mutex made once, used for every pair
	allocsPerKey = 18 // mutex.New for every pair
)

// TestAllocsPerPair: an uncontended TryLock+Release pair stays within its
// allocation budget, with a reused Mutex and with mutex.New per pair.
func TestAllocsPerPair(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation budgets are for builds without the race detector (make test runs this test without it too)")
	}
	s := redistest.Start(t)
	c := s.Client(t)
	ctx := context.Background()
	// Fences past 255, as in any real deployment: go-redis boxes the integer
	// reply, and Go boxes 0-255 without allocating.
	if err := c.Set(ctx, "redlease:fence", 1_000_000, 0).Err(); err != nil {
		t.Fatal(err)
	}
	m, err := mutex.New(c, "allocs")
	if err != nil {
		t.Fatal(err)
	}
	pair := func(m *mutex.Mutex) {
		l, err := m.TryLock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	pair(m) // loads the scripts, fills the pool
	if got := testing.AllocsPerRun(300, func() { pair(m) }); got > allocsReused {
		t.Errorf("reused Mutex: %.1f allocations per TryLock+Release, budget %d", got, allocsReused)
	} else {
		t.Logf("reused Mutex: %.1f allocations per TryLock+Release (budget %d)", got, allocsReused)
	}
	names := make([]string, 301)
	for i := range names {
		names[i] = fmt.Sprintf("allocs-%d", i)
	}
	i := 0
	got := testing.AllocsPerRun(300, func() {
		m, err := mutex.New(c, names[i])
		i++
		if err != nil {
			t.Fatal(err)
		}
		pair(m)
	})
	if got > allocsPerKey {
		t.Errorf("mutex.New per pair: %.1f allocations per New+TryLock+Release, budget %d", got, allocsPerKey)
	} else {
		t.Logf("mutex.New per pair: %.1f allocations per New+TryLock+Release (budget %d)", got, allocsPerKey)
	}
}
