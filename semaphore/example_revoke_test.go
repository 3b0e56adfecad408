package semaphore_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/semaphore"
)

func ExampleSemaphore_Revoke() {
	// An in-process Redis for the example; use your own redis.NewClient.
	mr, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	defer mr.Close()
	client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer client.Close()
	ctx := context.Background()

	sem, _ := semaphore.New(client, "exports", 3)
	stuck, _ := sem.Acquire(ctx, 2)
	fine, _ := sem.Acquire(ctx, 1)
	defer fine.Release(ctx)

	st, err := sem.Inspect(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println("used", st.Used, "of", st.Limit, "by", len(st.Holders), "holds")

	// Revoke the 2-unit hold only.
	for _, h := range st.Holders {
		if h.Units == 2 {
			if err := sem.Revoke(ctx, h.Token); err != nil {
				panic(err)
			}
		}
	}
	<-stuck.Lost()
	fmt.Println("revoked:", errors.Is(stuck.Err(), lease.ErrRevoked))
	st, _ = sem.Inspect(ctx)
	fmt.Println("used", st.Used, "by", len(st.Holders), "hold; it is the other:", st.Holders[0].Token == fine.Token())
	// Output:
	// used 3 of 3 by 2 holds
	// revoked: true
	// used 1 by 1 hold; it is the other: true
}
