package semaphore_test

import (
	"context"
	"errors"
	"math/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/mutex"
)

// TestMixedWaitersNeverStranded: two processes (clients), 16 goroutines
// each, acquire 1 to 3 units of limit 4 over and over, some giving up while
// they wait. Fallback retries are a minute apart and holds last 30 s, so
// only wake-ups move the waiters: a waiter that a release should have woken
// and did not would stall the run far beyond its hang guard. The limit is
// never exceeded.
func TestMixedWaitersNeverStranded(t *testing.T) {
	s, _ := startRedis(t)
	clients := []*redis.Client{s.Client(t), s.Client(t)}
	name := uniqueName(t)
	const limit = 4
	opts := []mutex.Option{slow, mutex.WithTTL(30 * time.Second)}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var inside, most, acquired, gaveUp atomic.Int64
	var wg sync.WaitGroup
	for p, c := range clients {
		for g := 0; g < 16; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewSource(int64(p*100 + g)))
				sem := newSem(t, c, name, limit, opts...)
				for round := 0; round < 8; round++ {
					n := int64(1 + rng.Intn(3))
					actx, acancel := ctx, context.CancelFunc(func() {})
					if rng.Intn(5) == 0 {
						actx, acancel = context.WithTimeout(ctx, time.Duration(rng.Intn(3))*time.Millisecond)
					}
					l, err := sem.Acquire(actx, n)
					acancel()
					if err != nil {
						if ctx.Err() != nil {
							t.Errorf("stranded: %v", err)
							return
						}
						if !errors.Is(err, context.DeadlineExceeded) {
							t.Error(err)
							return
						}
						gaveUp.Add(1)
						continue
					}
					now := inside.Add(n)
					for m := most.Load(); now > m && !most.CompareAndSwap(m, now); m = most.Load() {
					}
					time.Sleep(time.Duration(rng.Intn(2000)) * time.Microsecond)
					inside.Add(-n)
					acquired.Add(1)
					if err := l.Release(context.Background()); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	if m := most.Load(); m > limit {
		t.Fatalf("%d units held at once, limit %d", m, limit)
	}
	t.Logf("%d acquisitions, %d waits given up", acquired.Load(), gaveUp.Load())
}
