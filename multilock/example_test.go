package multilock_test

import (
	"context"
	"fmt"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/multilock"
)

// A transfer holds both accounts or neither; the opposite transfer cannot
// deadlock against it, whatever order the names are given in.
func Example_transfer() {
	mr, err := miniredis.Run() // an embedded Redis; use your own client in real code
	if err != nil {
		panic(err)
	}
	defer mr.Close()
	client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer client.Close()
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
