package semaphore_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/internal/revoke"
	"github.com/redlease/redlease/internal/wake"
)

func waitQueuedN(t *testing.T, c redis.UniversalClient, ch string, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for wake.QueueLen(c, ch) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d waiters queued", wake.QueueLen(c, ch), n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestThousandWaitersShareOneSubscription: 1,000 goroutines waiting on one
// semaphore in one process through one client use the pool plus exactly one
// subscription connection, and all acquire in the end.
func TestThousandWaitersShareOneSubscription(t *testing.T) {
	s := redistest.Start(t)
	admin := s.Client(t)
	const pool = 8
	c := redis.NewClient(&redis.Options{Addr: s.Addr, PoolSize: pool})
	defer c.Close()
	ctx := context.Background()
	name := uniqueName(t)
	const limit = 4
	holder, err := newSem(t, c, name, limit).TryAcquire(ctx, limit)
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
	var acquired, inside, most atomic.Int64
	for i := 0; i < waiters; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := int64(1 + i%2)
			l, err := newSem(t, c, name, limit).Acquire(actx, n)
			if err != nil {
				t.Error(err)
				return
			}
			now := inside.Add(n)
			for m := most.Load(); now > m && !most.CompareAndSwap(m, now); m = most.Load() {
			}
			acquired.Add(1)
			inside.Add(-n)
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
	// The pool may have grown to its size; beyond it, one subscription.
	if extra := during - before; extra > pool+1 {
		t.Fatalf("%d waiters opened %d connections (pool %d + 1 subscription allowed)", waiters, extra, pool)
	}
	t.Logf("connections: %d before, %d with %d waiters (pool size %d, 1 subscribed)", before, during, waiters, pool)
	_ = holder.Release(ctx)
	wg.Wait()
	if n := acquired.Load(); n != waiters {
		t.Fatalf("%d of %d waiters acquired", n, waiters)
	}
	if m := most.Load(); m > limit {
		t.Fatalf("%d units held at once in this process, limit %d", m, limit)
	}
}
