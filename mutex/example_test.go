package mutex_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/mutex"
)

// embedded starts an in-process Redis for the examples; use your own
// redis.NewClient (or NewClusterClient, NewFailoverClient) in real code.
func embedded() (*redis.Client, func()) {
	mr, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	c := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	return c, func() { c.Close(); mr.Close() }
}

func ExampleMutex_Lock() {
	client, stop := embedded()
	defer stop()
	ctx := context.Background()

	m, err := mutex.New(client, "orders:42", mutex.WithTTL(5*time.Second))
	if err != nil {
		panic(err)
	}
	// Wait at most 3s for the lock; the lease then lives until Release.
	wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	l, err := m.Lock(wctx)
	if err != nil {
		fmt.Println("not acquired:", err)
		return
	}
	defer l.Release(ctx)

	fmt.Println("holding", l.Name(), "with fence", l.Fence())
	// Output: holding orders:42 with fence 1
}

func ExampleMutex_TryLock() {
	client, stop := embedded()
	defer stop()
	ctx := context.Background()

	m, _ := mutex.New(client, "report")
	first, err := m.TryLock(ctx)
	if err != nil {
		panic(err)
	}
	_, err = m.TryLock(ctx)
	fmt.Println("second attempt locked out:", errors.Is(err, mutex.ErrLocked))

	first.Release(ctx)
	again, err := m.TryLock(ctx)
	fmt.Println("after release:", err == nil, "fence", again.Fence())
	again.Release(ctx)
	// Output:
	// second attempt locked out: true
	// after release: true fence 2
}
