package mutex_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redlease/redlease/internal/history"
	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/mutex"
)

// TestHandoffExclusiveWithCancellations: several goroutines per client on
// several clients take turns on two names, some giving up mid-wait (their
// ctx ends while a release may be handing them the lock). Exclusivity holds,
// fences grow, and no lock key is left behind.
func TestHandoffExclusiveWithCancellations(t *testing.T) {
	// One client: every release with a local waiter is a handoff. Three
	// clients: handoffs only while a single process waits.
	for _, clients := range []int{1, 3} {
		t.Run(fmt.Sprintf("clients=%d", clients), func(t *testing.T) { handoffChurn(t, clients) })
	}
}

func handoffChurn(t *testing.T, clients int) {
	s := redistest.Start(t)
	ctx := context.Background()
	rec := &history.Recorder{}
	names := []string{uniqueName(t), uniqueName(t)}
	var inside [2]atomic.Int32
	var violations, holds, gaveUp atomic.Int64
	var lastFence [2]atomic.Int64
	dur := 3 * time.Second
	if testing.Short() {
		dur = time.Second
	}
	stop := time.Now().Add(dur)
	var wg sync.WaitGroup
	for ci := 0; ci < clients; ci++ {
		c := s.Client(t)
		for gi := 0; gi < 12/clients; gi++ {
			wg.Add(1)
			go func(id int) {
				defer wg.Done()
				r := rand.New(rand.NewSource(int64(id)))
				who := fmt.Sprintf("g%d", id)
				for time.Now().Before(stop) {
					n := r.Intn(2)
					m, _ := mutex.New(c, names[n], mutex.WithTTL(2*time.Second))
					wait := time.Duration(1+r.Intn(8)) * time.Millisecond
					lctx, cancel := context.WithTimeout(ctx, wait)
					l, err := m.Lock(lctx)
					cancel()
					if err != nil {
						if !errors.Is(err, context.DeadlineExceeded) {
							t.Errorf("%s: %v", who, err)
							return
						}
						gaveUp.Add(1)
						continue
					}
					if inside[n].Add(1) != 1 {
						violations.Add(1)
					}
					for {
						prev := lastFence[n].Load()
						if l.Fence() <= prev {
							t.Errorf("fence %d after %d on %s", l.Fence(), prev, names[n])
							break
						}
						if lastFence[n].CompareAndSwap(prev, l.Fence()) {
							break
						}
					}
					sec := rec.Begin(who, names[n], l.Fence())
					time.Sleep(time.Duration(r.Intn(500)) * time.Microsecond)
					sec.End()
					inside[n].Add(-1)
					holds.Add(1)
					if err := l.Release(ctx); err != nil {
						t.Errorf("%s: release: %v", who, err)
					}
				}
			}(ci*12 + gi)
		}
	}
	wg.Wait()
	calls, _ := redistest.CommandCalls(ctx, s.Client(t))
	if v := violations.Load(); v != 0 {
		t.Fatalf("%d exclusivity violations", v)
	}
	for _, v := range history.CheckOverlaps(rec.Intervals()) {
		t.Errorf("overlap: %s", v)
	}
	admin := s.Client(t)
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, _ := admin.Exists(ctx, "redlease:{"+names[0]+"}", "redlease:{"+names[1]+"}").Result()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d lock keys left held after every lease ended", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("%d holds, %d waits given up; %d script calls, %d SPUBLISH (a handoff publishes nothing)", holds.Load(), gaveUp.Load(), calls["evalsha"]+calls["eval"], calls["spublish"])
}
