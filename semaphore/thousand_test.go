package semaphore_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/internal/wake"
)

// connections returns how many client connections the server has, and how
// many of them are subscribed to a channel (classic or sharded).
func connections(t *testing.T, admin *redis.Client) (all, subscribed int) {
	t.Helper()
	list, err := admin.ClientList(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
		all++
		for _, f := range strings.Fields(line) {
			if (strings.HasPrefix(f, "sub=") || strings.HasPrefix(f, "ssub=")) && f[strings.IndexByte(f, '=')+1:] != "0" {
				subscribed++
				break
			}
		}
	}
	return all, subscribed
}

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
	before, _ := connections(t, admin)
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
	during, subs := connections(t, admin)
	for deadline := time.Now().Add(30 * time.Second); subs == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		during, subs = connections(t, admin)
	}
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
