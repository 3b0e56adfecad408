package rwmutex_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/rwmutex"
)

func ExampleRWMutex_RLock() {
	// An in-process Redis for the example; use your own redis.NewClient.
	mr, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	defer mr.Close()
	client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer client.Close()
	ctx := context.Background()

	rw, err := rwmutex.New(client, "catalog")
	if err != nil {
		panic(err)
	}
	r1, err := rw.RLock(ctx)
	if err != nil {
		panic(err)
	}
	r2, err := rw.RLock(ctx) // readers share
	if err != nil {
		panic(err)
	}
	fmt.Println("read fences", r1.Fence(), r2.Fence())

	_, err = rw.TryLock(ctx)
	fmt.Println("writer while readers hold:", errors.Is(err, rwmutex.ErrLocked))

	_ = r1.Release(ctx)
	_ = r2.Release(ctx)
	w, err := rw.Lock(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println("write fence", w.Fence())
	_, err = rw.TryRLock(ctx)
	fmt.Println("reader while the writer holds:", errors.Is(err, rwmutex.ErrLocked))
	_ = w.Release(ctx)
	// Output:
	// read fences 1 2
	// writer while readers hold: true
	// write fence 3
	// reader while the writer holds: true
}
