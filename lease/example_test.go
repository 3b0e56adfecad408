package lease_test

import (
	"context"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/mutex"
)

// Work under a lease, stopping the moment it is lost. Here another client
// deletes the key; the next renewal sees it and Lost closes with ErrNotHeld.
func ExampleLease_Lost() {
	mr, err := miniredis.Run() // an embedded Redis; use your own client in real code
	if err != nil {
		panic(err)
	}
	defer mr.Close()
	client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer client.Close()
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

// Extend a lease without auto-renewal by a fixed amount, like redis-py's
// extend; Refresh replaces the TTL instead.
func ExampleLease_Extend() {
	mr, err := miniredis.Run() // an embedded Redis; use your own client in real code
	if err != nil {
		panic(err)
	}
	defer mr.Close()
	client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer client.Close()
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
