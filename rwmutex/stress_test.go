package rwmutex_test

import (
	"context"
	"errors"
	"math/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
)

// TestMixedWaitersNeverStranded: two processes (clients), 12 goroutines
// each, take read holds and (one in four) the write hold over and over, some
// giving up while they wait. Fallback retries are a minute apart (a waiting
// writer's every 20 s, a third of the 60 s TTL), so only wake-ups move the
// waiters: one that a release should have woken and did not would stall the
// run beyond its hang guard. A writer never overlaps anyone.
func TestMixedWaitersNeverStranded(t *testing.T) {
	s, _ := startRedis(t)
	clients := []*redis.Client{s.Client(t), s.Client(t)}
	name := uniqueName(t)
	opts := []mutex.Option{slow, mutex.WithTTL(time.Minute)}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var readers, writers, bad, acquired, gaveUp atomic.Int64
	var wg sync.WaitGroup
	for p, c := range clients {
		for g := 0; g < 12; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewSource(int64(p*100 + g)))
				m := newRW(t, c, name, opts...)
				for round := 0; round < 8; round++ {
					write := rng.Intn(4) == 0
					actx, acancel := ctx, context.CancelFunc(func() {})
					if rng.Intn(5) == 0 {
						actx, acancel = context.WithTimeout(ctx, time.Duration(rng.Intn(3))*time.Millisecond)
					}
					var l *lease.Lease
					var err error
					if write {
						l, err = m.Lock(actx)
					} else {
						l, err = m.RLock(actx)
					}
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
					if write {
						if writers.Add(1) != 1 || readers.Load() != 0 {
							bad.Add(1)
						}
					} else if readers.Add(1); writers.Load() != 0 {
						bad.Add(1)
					}
					time.Sleep(time.Duration(rng.Intn(2000)) * time.Microsecond)
					if write {
						writers.Add(-1)
					} else {
						readers.Add(-1)
					}
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
	if n := bad.Load(); n != 0 {
		t.Fatalf("%d acquisitions overlapped a writer", n)
	}
	t.Logf("%d acquisitions, %d waits given up", acquired.Load(), gaveUp.Load())
}
