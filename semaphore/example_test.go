package semaphore_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/semaphore"
)

func ExampleSemaphore_Acquire() {
	// An in-process Redis for the example; use your own redis.NewClient.
	mr, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	defer mr.Close()
	client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer client.Close()
	ctx := context.Background()

	// At most 3 units of "exports" held at once, across all processes.
	sem, err := semaphore.New(client, "exports", 3)
	if err != nil {
		panic(err)
	}
	big, err := sem.Acquire(ctx, 2)
	if err != nil {
		panic(err)
	}
	small, err := sem.Acquire(ctx, 1)
	if err != nil {
		panic(err)
	}
	fmt.Println("fences", big.Fence(), small.Fence())

	_, err = sem.TryAcquire(ctx, 1)
	var np *semaphore.NoPermitsError
	fmt.Println("full:", errors.Is(err, semaphore.ErrNoPermits), errors.As(err, &np) && np.Free == 0)

	_ = big.Release(ctx)
	free, _ := sem.Available(ctx)
	fmt.Println("free after release:", free)
	_ = small.Release(ctx)
	// Output:
	// fences 1 2
	// full: true true
	// free after release: 2
}
