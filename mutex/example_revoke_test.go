package mutex_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
)

func ExampleMutex_Inspect() {
	client, stop := embedded()
	defer stop()
	ctx := context.Background()

	m, _ := mutex.New(client, "reports:daily")
	st, err := m.Inspect(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println("held:", st.Held)

	l, err := m.TryLock(ctx)
	if err != nil {
		panic(err)
	}
	defer l.Release(ctx)
	st, _ = m.Inspect(ctx)
	fmt.Println("held:", st.Held, "fence:", st.Fence, "token is the lease's:", st.Token == l.Token(), "waiters:", st.Waiters)
	// Output:
	// held: false
	// held: true fence: 1 token is the lease's: true waiters: 0
}

func ExampleMutex_Revoke() {
	client, stop := embedded()
	defer stop()
	ctx := context.Background()

	// A worker holds the lock (in real life: in another process)...
	worker, _ := mutex.New(client, "jobs:nightly")
	l, err := worker.Lock(ctx)
	if err != nil {
		panic(err)
	}

	// ...and an operator, who knows only the name, force-releases the hold
	// it saw. A newer holder (another token) would be left alone.
	op, _ := mutex.New(client, "jobs:nightly")
	st, _ := op.Inspect(ctx)
	if err := op.Revoke(ctx, st.Token); err != nil {
		panic(err)
	}

	<-l.Lost() // the worker is told at once, not at its next renewal
	fmt.Println("worker revoked:", errors.Is(l.Err(), lease.ErrRevoked))
	fmt.Println("worker's Release deletes nothing:", errors.Is(l.Release(ctx), lease.ErrRevoked))
	fmt.Println("another token:", errors.Is(op.Revoke(ctx, "someone-else"), mutex.ErrNotHeld))
	// Output:
	// worker revoked: true
	// worker's Release deletes nothing: true
	// another token: true
}
