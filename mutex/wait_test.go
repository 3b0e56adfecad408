package mutex_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/internal/revoke"
	"github.com/redlease/redlease/internal/wake"
	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
)

func waitQueued(t *testing.T, c redis.UniversalClient, name string, n int) {
	t.Helper()
	ch := "redlease:{" + name + "}:wake"
	deadline := time.Now().Add(30 * time.Second)
	for wake.QueueLen(c, ch) < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d waiters queued", wake.QueueLen(c, ch), n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestThousandWaitersShareOneSubscription: 1,000 goroutines waiting in one
// process on one client use the pool plus one subscription connection, and
// each acquires in turn.
func TestThousandWaitersShareOneSubscription(t *testing.T) {
	s := redistest.Start(t)
	admin := s.Client(t)
	const pool = 8
	c := redis.NewClient(&redis.Options{Addr: s.Addr, PoolSize: pool})
	defer c.Close()
	ctx := context.Background()
	name := uniqueName(t)
	holder, err := newMutex(t, c, name).Lock(ctx)
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
	var wg sync.WaitGroup
	var mu sync.Mutex
	acquired := 0
	for i := 0; i < waiters; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := newMutex(t, c, name).Lock(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			acquired++
			mu.Unlock()
			_ = l.Release(ctx)
		}()
	}
	waitQueued(t, c, name, waiters)
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
	holder.Release(ctx)
	wg.Wait()
	if acquired != waiters {
		t.Fatalf("%d of %d waiters acquired", acquired, waiters)
	}
}

// TestWaitersServedInArrivalOrder: waiters of one process, each with its own
// Mutex value for the same name on the same client, acquire in the order in
// which they started waiting.
func TestWaitersServedInArrivalOrder(t *testing.T) {
	s := redistest.Start(t)
	c := s.Client(t)
	ctx := context.Background()
	name := uniqueName(t)
	holder, err := newMutex(t, c, name).Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const n = 30
	order := make(chan int, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			l, err := newMutex(t, c, name).Lock(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			order <- i
			_ = l.Release(ctx)
		}(i)
		waitQueued(t, c, name, i+1)
	}
	holder.Release(ctx)
	wg.Wait()
	close(order)
	want := 0
	for got := range order {
		if got != want {
			t.Fatalf("waiter %d acquired in place %d", got, want)
		}
		want++
	}
}

// TestReleaseWakesOneWaiterPerProcess: while 50 waiters of one process wait,
// handing the lock down the queue costs about one acquire attempt per
// acquisition, not one per waiter per release.
func TestReleaseWakesOneWaiterPerProcess(t *testing.T) {
	s := redistest.Start(t)
	c := s.Client(t)
	ctx := context.Background()
	name := uniqueName(t)
	holder, err := newMutex(t, c, name).Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := newMutex(t, c, name).Lock(ctx)
			if err == nil {
				time.Sleep(time.Millisecond)
				err = l.Release(ctx)
			}
			if err != nil {
				t.Error(err)
			}
		}()
	}
	waitQueued(t, c, name, n)
	before, _ := redistest.CommandCalls(ctx, c)
	holder.Release(ctx)
	wg.Wait()
	after, _ := redistest.CommandCalls(ctx, c)
	sets := after["set"] - before["set"] // one SET NX per acquire attempt
	if sets > 2*n {
		t.Fatalf("%d acquire attempts for %d acquisitions: waiters are not woken one at a time", sets, n)
	}
	t.Logf("%d acquire attempts for %d acquisitions", sets, n)
}

// TestWaitersOnSeparateClients: waiters in different "processes" (clients)
// are all woken by releases and all acquire.
func TestWaitersOnSeparateClients(t *testing.T) {
	s := redistest.Start(t)
	ctx := context.Background()
	name := uniqueName(t)
	holder, err := newMutex(t, s.Client(t), name).Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	got := make(chan *lease.Lease, n)
	for i := 0; i < n; i++ {
		c := s.Client(t)
		go func() {
			l, err := newMutex(t, c, name).Lock(ctx)
			if err != nil {
				t.Error(err)
			}
			got <- l
		}()
	}
	time.Sleep(50 * time.Millisecond)
	holder.Release(ctx)
	for i := 0; i < n; i++ {
		l := <-got
		if l == nil {
			t.FailNow()
		}
		l.Release(ctx)
	}
}

var _ = mutex.ErrLocked
