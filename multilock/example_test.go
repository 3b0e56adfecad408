package multilock_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/multilock"
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

// A transfer holds both accounts or neither; the opposite transfer cannot
// deadlock against it, whatever order the names are given in.
func Example_transfer() {
	client, stop := embedded()
	defer stop()
	ctx := context.Background()

	transfer := func(from, to string) {
		ml, err := multilock.New(client, []string{"acct:" + from, "acct:" + to})
		if err != nil {
			panic(err)
		}
		l, err := ml.Lock(ctx)
		if err != nil {
			panic(err)
		}
		defer l.Release(ctx)
		fmt.Printf("%s→%s holding %v, fences %d and %d\n", from, to, ml.Names(),
			l.FenceOf("acct:"+from), l.FenceOf("acct:"+to))
	}
	transfer("alice", "bob")
	transfer("bob", "alice")
	// Output:
	// alice→bob holding [acct:alice acct:bob], fences 1 and 2
	// bob→alice holding [acct:alice acct:bob], fences 4 and 3
}

// New merges duplicate names and orders them: every MultiLock takes its
// names in that one order.
func ExampleNew() {
	client, stop := embedded()
	defer stop()

	ml, err := multilock.New(client, []string{"acct:bob", "acct:alice", "acct:bob"}, mutex.WithTTL(5*time.Second))
	if err != nil {
		panic(err)
	}
	fmt.Println(ml.Names())
	// Output: [acct:alice acct:bob]
}

// Lock waits until it holds every name; ctx bounds the wait. One lease
// holds them all, and a Mutex on any one of them is locked out meanwhile.
func ExampleMultiLock_Lock() {
	client, stop := embedded()
	defer stop()
	ctx := context.Background()

	ml, _ := multilock.New(client, []string{"acct:alice", "acct:bob"})
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	l, err := ml.Lock(wctx)
	if err != nil {
		panic(err)
	}
	defer l.Release(ctx)
	fmt.Println("holding", l.Names(), "fences", l.FenceOf("acct:alice"), l.FenceOf("acct:bob"))

	bob, _ := mutex.New(client, "acct:bob")
	_, err = bob.TryLock(ctx)
	fmt.Println("acct:bob alone:", errors.Is(err, mutex.ErrLocked))
	// Output:
	// holding [acct:alice acct:bob] fences 1 2
	// acct:bob alone: true
}

// TryLock makes one attempt: if any name is held, it takes none of them,
// and the error names the busy one.
func ExampleMultiLock_TryLock() {
	client, stop := embedded()
	defer stop()
	ctx := context.Background()

	bob, _ := mutex.New(client, "acct:bob")
	held, err := bob.Lock(ctx)
	if err != nil {
		panic(err)
	}
	ml, _ := multilock.New(client, []string{"acct:alice", "acct:bob"})
	_, err = ml.TryLock(ctx)
	fmt.Println(errors.Is(err, mutex.ErrLocked), "-", err)
	alice, _ := mutex.New(client, "acct:alice")
	locked, _ := alice.Locked(ctx)
	fmt.Println("acct:alice taken:", locked)

	held.Release(ctx)
	l, err := ml.TryLock(ctx)
	fmt.Println("after bob's release:", err)
	l.Release(ctx)
	// Output:
	// true - multilock: trylock ["acct:alice" "acct:bob"]: mutex: "acct:bob" is locked by another owner (expires in 10s)
	// acct:alice taken: false
	// after bob's release: <nil>
}
