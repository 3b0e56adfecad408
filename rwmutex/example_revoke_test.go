package rwmutex_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/rwmutex"
)

func ExampleRWMutex_Revoke() {
	// An in-process Redis for the example; use your own redis.NewClient.
	mr, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	defer mr.Close()
	client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer client.Close()
	ctx := context.Background()

	m, _ := rwmutex.New(client, "catalog")
	w, err := m.Lock(ctx)
	if err != nil {
		panic(err)
	}
	st, err := m.Inspect(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println("writer:", st.Writer != nil, "readers:", len(st.Readers))

	if err := m.Revoke(ctx, st.Writer.Token); err != nil {
		panic(err)
	}
	<-w.Lost()
	fmt.Println("writer revoked:", errors.Is(w.Err(), lease.ErrRevoked))

	r, err := m.TryRLock(ctx) // the lock is free again
	if err != nil {
		panic(err)
	}
	defer r.Release(ctx)
	st, _ = m.Inspect(ctx)
	fmt.Println("writer:", st.Writer != nil, "readers:", len(st.Readers))
	// Output:
	// writer: true readers: 0
	// writer revoked: true
	// writer: false readers: 1
}
