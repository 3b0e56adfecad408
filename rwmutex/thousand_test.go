package rwmutex_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/internal/revoke"
	"github.com/redlease/redlease/lease"
)

// TestThousandWaitersShareOneSubscription: 1,000 goroutines waiting on one
// RWMutex in one process through one client (every tenth a writer) use the
// pool plus exactly one subscription connection, and all acquire in the end.
func TestThousandWaitersShareOneSubscription(t *testing.T) {
	s := redistest.Start(t)
	admin := s.Client(t)
	const pool = 8
	c := redis.NewClient(&redis.Options{Addr: s.Addr, PoolSize: pool})
	defer c.Close()
	ctx := context.Background()
	name := uniqueName(t)
	holder, err := newRW(t, c, name).TryLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The holder's revocation notices come over the subscription the
	// waiters will share: once it is open, exactly one connection is
	// subscribed, and waiting adds no other.
	redistest.WaitSubscribed(t, admin, revoke.Channel("redlease:"))
	before, subs := redistest.Connections(t, admin)
	if subs != 1 {
		t.Fatalf("%d subscribed connections with a holder, want exactly 1", subs)
	}
	const waiters = 1000
	actx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	var acquired, readers, writers, bad atomic.Int64
	for i := 0; i < waiters; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := newRW(t, c, name)
			write := i%10 == 9
			var l *lease.Lease
			var err error
			if write {
				l, err = m.Lock(actx)
			} else {
				l, err = m.RLock(actx)
			}
			if err != nil {
				t.Error(err)
				return
			}
			if write {
				if writers.Add(1) != 1 || readers.Load() != 0 {
					bad.Add(1)
				}
				writers.Add(-1)
			} else {
				readers.Add(1)
				if writers.Load() != 0 {
					bad.Add(1)
				}
				readers.Add(-1)
			}
			acquired.Add(1)
			_ = l.Release(ctx)
		}()
	}
	waitQueuedN(t, c, "redlease:{"+name+"}:wake", waiters)
	// Join waits a bounded time for the subscription; it may come later.
	redistest.WaitSubscribed(t, admin, "redlease:{"+name+"}:wake")
	during, subs := redistest.Connections(t, admin)
	if subs != 1 {
		t.Fatalf("%d subscribed connections with %d waiters, want exactly 1", subs, waiters)
	}
	if extra := during - before; extra > pool+1 {
		t.Fatalf("%d waiters opened %d connections (pool %d + 1 subscription allowed)", waiters, extra, pool)
	}
	t.Logf("connections: %d before, %d with %d waiters (pool size %d, 1 subscribed)", before, during, waiters, pool)
	_ = holder.Release(ctx)
	wg.Wait()
	if n := acquired.Load(); n != waiters {
		t.Fatalf("%d of %d waiters acquired", n, waiters)
	}
	if n := bad.Load(); n != 0 {
		t.Fatalf("%d acquisitions overlapped a writer in this process", n)
	}
}
