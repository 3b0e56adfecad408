package lease_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
)

// embedded starts an in-process Redis for the examples, and returns it so
// that they can delete keys and move its clock; use your own
// redis.NewClient (or NewClusterClient, NewFailoverClient) in real code.
func embedded() (*redis.Client, *miniredis.Miniredis, func()) {
	mr, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	c := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	return c, mr, func() { c.Close(); mr.Close() }
}

// Work under a lease, stopping the moment it is lost. Here another client
// deletes the key; the next renewal sees it and Lost closes with ErrNotHeld.
func ExampleLease_Lost() {
	client, mr, stop := embedded()
	defer stop()
	ctx := context.Background()

	m, _ := mutex.New(client, "job", mutex.WithTTL(time.Second), mutex.WithRenewInterval(20*time.Millisecond))
	l, err := m.Lock(ctx)
	if err != nil {
		panic(err)
	}
	defer l.Release(ctx)

	mr.Del("redlease:{job}") // someone breaks the lock

	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for step := 0; ; step++ {
		select {
		case <-l.Lost():
			fmt.Println("stopped:", l.Err())
			return
		case <-tick.C:
			// one step of work
		}
	}
	// Output: stopped: lease: not held
}

// Err is nil while the lease is held, then says why it ended, and never
// changes again.
func ExampleLease_Err() {
	client, _, stop := embedded()
	defer stop()
	ctx := context.Background()

	m, _ := mutex.New(client, "job")
	l, err := m.Lock(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println("held:", l.Err())
	l.Release(ctx)
	fmt.Println("released:", l.Err())
	// Output:
	// held: <nil>
	// released: lease: released
}

// Release ends the lease at once (Lost closes, the renewer stops) and frees
// the lock for the next holder. A second Release deletes nothing.
func ExampleLease_Release() {
	client, _, stop := embedded()
	defer stop()
	ctx := context.Background()

	m, _ := mutex.New(client, "job")
	l, err := m.Lock(ctx)
	if err != nil {
		panic(err)
	}
	if err := l.Release(ctx); err != nil {
		panic(err)
	}
	<-l.Lost()
	fmt.Println("lease:", l.Err())
	fmt.Println("second Release:", errors.Is(l.Release(ctx), lease.ErrReleased))

	next, err := m.TryLock(ctx)
	fmt.Println("next holder:", err)
	next.Release(ctx)
	// Output:
	// lease: lease: released
	// second Release: true
	// next holder: <nil>
}

// Extend a lease without auto-renewal by a fixed amount, like redis-py's
// extend; Refresh replaces the TTL instead.
func ExampleLease_Extend() {
	client, _, stop := embedded()
	defer stop()
	ctx := context.Background()

	m, _ := mutex.New(client, "long-task", mutex.WithTTL(10*time.Second), mutex.WithAutoRenew(false))
	l, err := m.Lock(ctx)
	if err != nil {
		panic(err)
	}
	defer l.Release(ctx)

	if err := l.Extend(ctx, 20*time.Second); err != nil {
		panic(err)
	}
	ttl, _ := l.TTL(ctx)
	fmt.Println("ttl after extend:", ttl)

	l.Refresh(ctx, 5*time.Second)
	ttl, _ = l.TTL(ctx)
	fmt.Println("ttl after refresh:", ttl)
	// Output:
	// ttl after extend: 30s
	// ttl after refresh: 5s
}

// Refresh sets the remaining TTL (redis-py reacquire() and
// extend(t, replace_ttl=True)); on a released lease it fails.
func ExampleLease_Refresh() {
	client, mr, stop := embedded()
	defer stop()
	ctx := context.Background()

	m, _ := mutex.New(client, "report", mutex.WithTTL(10*time.Second), mutex.WithAutoRenew(false))
	l, err := m.Lock(ctx)
	if err != nil {
		panic(err)
	}
	mr.FastForward(6 * time.Second) // miniredis's clock; a real server's runs by itself
	ttl, _ := l.TTL(ctx)
	fmt.Println("ttl:", ttl)

	if err := l.Refresh(ctx, 10*time.Second); err != nil {
		panic(err)
	}
	ttl, _ = l.TTL(ctx)
	fmt.Println("after Refresh:", ttl)

	l.Release(ctx)
	fmt.Println("after Release:", errors.Is(l.Refresh(ctx, 10*time.Second), lease.ErrReleased))
	// Output:
	// ttl: 4s
	// after Refresh: 10s
	// after Release: true
}

// Owned asks Redis whether the lock key still holds this lease (redis-py
// owned()). Without a round trip, select on Lost instead.
func ExampleLease_Owned() {
	client, mr, stop := embedded()
	defer stop()
	ctx := context.Background()

	m, _ := mutex.New(client, "report")
	l, err := m.Lock(ctx)
	if err != nil {
		panic(err)
	}
	defer l.Release(ctx)
	owned, _ := l.Owned(ctx)
	fmt.Println("owned:", owned)

	mr.Del("redlease:{report}") // someone breaks the lock
	owned, _ = l.Owned(ctx)
	fmt.Println("after the key was deleted:", owned, "-", l.Err())
	// Output:
	// owned: true
	// after the key was deleted: false - lease: not held
}

// TTL is the lock key's remaining time to live in Redis.
func ExampleLease_TTL() {
	client, mr, stop := embedded()
	defer stop()
	ctx := context.Background()

	m, _ := mutex.New(client, "report", mutex.WithTTL(10*time.Second), mutex.WithAutoRenew(false))
	l, err := m.Lock(ctx)
	if err != nil {
		panic(err)
	}
	defer l.Release(ctx)
	ttl, _ := l.TTL(ctx)
	fmt.Println("ttl:", ttl)

	mr.FastForward(4 * time.Second) // miniredis's clock; a real server's runs by itself
	ttl, _ = l.TTL(ctx)
	fmt.Println("4s later:", ttl)
	// Output:
	// ttl: 10s
	// 4s later: 6s
}

// Token is the value that names this hold in the lock key: 128 random
// bits, hex-encoded, unless the mutex has WithToken.
func ExampleLease_Token() {
	client, _, stop := embedded()
	defer stop()
	ctx := context.Background()

	m, _ := mutex.New(client, "report")
	l, err := m.Lock(ctx)
	if err != nil {
		panic(err)
	}
	defer l.Release(ctx)

	fmt.Println("hex digits:", len(l.Token()))
	held, _ := client.Get(ctx, "redlease:{report}").Result()
	fmt.Println("in the lock key:", held == fmt.Sprintf("%d:0:%s", l.Fence(), l.Token()))
	// Output:
	// hex digits: 32
	// in the lock key: true
}

// Storage outside Redis that remembers the largest fence it has seen
// refuses a holder that lost its lock (in a GC pause, say) and does not
// know it yet.
func ExampleLease_Fence() {
	client, mr, stop := embedded()
	defer stop()
	ctx := context.Background()

	m, _ := mutex.New(client, "ledger")
	first, err := m.Lock(ctx)
	if err != nil {
		panic(err)
	}
	defer first.Release(ctx)
	mr.Del("redlease:{ledger}") // first's lock is gone; it has not noticed yet
	second, err := m.Lock(ctx)
	if err != nil {
		panic(err)
	}
	defer second.Release(ctx)

	var largest int64 // kept by the storage, next to the data
	write := func(l *lease.Lease) string {
		if l.Fence() < largest {
			return "refused"
		}
		largest = l.Fence()
		return "accepted"
	}
	fmt.Printf("second (fence %d): %s\n", second.Fence(), write(second))
	fmt.Printf("first (fence %d): %s\n", first.Fence(), write(first))
	// Output:
	// second (fence 2): accepted
	// first (fence 1): refused
}

// Guard writes to Redis only if the lease holds the lock at that moment,
// in one MULTI/EXEC: a holder that lost its lock without knowing it yet
// writes nothing.
func ExampleLease_Guard() {
	client, mr, stop := embedded()
	defer stop()
	ctx := context.Background()

	// On Redis Cluster, keys written under Guard share the lock's hash
	// slot: the lock name is their hash tag.
	set := func(v int) func(redis.Pipeliner) error {
		return func(pipe redis.Pipeliner) error {
			pipe.Set(ctx, "{stock}:count", v, 0) // queued; EXEC runs it
			return nil
		}
	}
	m, _ := mutex.New(client, "stock")
	l, err := m.Lock(ctx)
	if err != nil {
		panic(err)
	}
	defer l.Release(ctx)
	fmt.Println("while held:", l.Guard(ctx, set(7)))

	mr.Del("redlease:{stock}") // l's lock is gone, and another takes it
	other, err := m.Lock(ctx)
	if err != nil {
		panic(err)
	}
	defer other.Release(ctx)
	err = l.Guard(ctx, set(0))
	fmt.Println("after losing it:", errors.Is(err, lease.ErrNotHeld))
	count, _ := client.Get(ctx, "{stock}:count").Result()
	fmt.Println("count:", count)
	// Output:
	// while held: <nil>
	// after losing it: true
	// count: 7
}

// Context gives the work under the lock a context that is canceled when
// the lease is lost: an errgroup built on it stops every worker and
// returns why.
func ExampleLease_Context() {
	client, mr, stop := embedded()
	defer stop()
	ctx := context.Background()

	m, _ := mutex.New(client, "batch", mutex.WithRenewInterval(20*time.Millisecond))
	l, err := m.Lock(ctx)
	if err != nil {
		panic(err)
	}
	defer l.Release(ctx)

	lctx, cancel := l.Context(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(lctx)
	for range 3 {
		g.Go(func() error {
			<-gctx.Done() // a worker, busy until told to stop
			return context.Cause(gctx)
		})
	}
	mr.Del("redlease:{batch}") // someone breaks the lock; the next renewal notices
	fmt.Println("group:", g.Wait())
	fmt.Println("cause:", context.Cause(lctx))
	// Output:
	// group: lease: not held
	// cause: lease: not held
}

// ValidUntil is the local deadline: the TTL counted from when the request
// was sent, less a clock-drift allowance (1% and 5ms by default: 9.895s of
// a 10s TTL). Lost closes there unless a renewal, Extend or Refresh moves it.
func ExampleLease_ValidUntil() {
	client, _, stop := embedded()
	defer stop()
	ctx := context.Background()

	m, _ := mutex.New(client, "report", mutex.WithTTL(10*time.Second))
	l, err := m.Lock(ctx)
	if err != nil {
		panic(err)
	}
	defer l.Release(ctx)
	left := time.Until(l.ValidUntil())
	fmt.Println("valid for over", left.Truncate(time.Second), "of the 10s TTL")
	// Output: valid for over 9s of the 10s TTL
}
