package multilock_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/multilock"
)

func ExampleMultiLock_Inspect() {
	client, stop := embedded()
	defer stop()
	ctx := context.Background()

	ml, _ := multilock.New(client, []string{"acct:1", "acct:2"})
	l, err := ml.TryLock(ctx)
	if err != nil {
		panic(err)
	}
	defer l.Release(ctx)
	sts, err := ml.Inspect(ctx)
	if err != nil {
		panic(err)
	}
	for _, st := range sts {
		fmt.Println(st.Name, "held:", st.Held, "fence:", st.Fence, "by the lease:", st.Token == l.Token())
	}
	// Output:
	// acct:1 held: true fence: 1 by the lease: true
	// acct:2 held: true fence: 2 by the lease: true
}

func ExampleMultiLock_Revoke() {
	client, stop := embedded()
	defer stop()
	ctx := context.Background()

	ml, _ := multilock.New(client, []string{"acct:1", "acct:2"})
	l, err := ml.Lock(ctx)
	if err != nil {
		panic(err)
	}
	sts, _ := ml.Inspect(ctx)
	if err := ml.Revoke(ctx, sts[0].Token); err != nil {
		panic(err)
	}
	<-l.Lost()
	fmt.Println("revoked:", errors.Is(l.Err(), lease.ErrRevoked))
	sts, _ = ml.Inspect(ctx)
	fmt.Println("still held:", sts[0].Held, sts[1].Held)
	// Output:
	// revoked: true
	// still held: false false
}
