package observe_test

import (
	"context"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/mutex"
	"github.com/redlease/redlease/observe"
)

// printer is an Observer that prints each event (durations left out).
type printer struct{}

func (printer) Probe(kind observe.Kind, name string) observe.Probe {
	fmt.Printf("probe for %s %q\n", kind, name)
	return &printProbe{}
}

type printProbe struct{}

func (*printProbe) LockStart(ctx context.Context) context.Context { return ctx }
func (*printProbe) LockEnd(_ context.Context, _ time.Duration, o observe.Outcome, _ error) {
	fmt.Println("lock:", o)
}
func (*printProbe) Tried(_ time.Duration, o observe.Outcome, _ error) { fmt.Println("trylock:", o) }
func (*printProbe) WaiterJoined()                                     { fmt.Println("waiter joined") }
func (*printProbe) WaiterLeft()                                       { fmt.Println("waiter left") }
func (*printProbe) HandedOff()                                        { fmt.Println("handed off") }
func (*printProbe) Released(err error)                                { fmt.Println("released, err:", err) }
func (*printProbe) Lost(r observe.Reason)                             { fmt.Println("lost:", r) }
func (*printProbe) RenewFailed(err error)                             { fmt.Println("renewal failed:", err) }

func Example() {
	mr, err := miniredis.Run() // an in-process Redis for the example
	if err != nil {
		panic(err)
	}
	defer mr.Close()
	client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer client.Close()
	ctx := context.Background()

	m, err := mutex.New(client, "job", mutex.WithObserver(printer{}), mutex.WithAutoRenew(false), mutex.WithTTL(500*time.Millisecond))
	if err != nil {
		panic(err)
	}
	l, err := m.TryLock(ctx)
	if err != nil {
		panic(err)
	}
	_, err = m.TryLock(ctx) // held: busy
	fmt.Println(err)
	<-l.Lost()                  // auto-renewal is off: the lease expires
	mr.FastForward(time.Second) // and so does the key (miniredis's clock stands still)
	l, err = m.Lock(ctx)
	if err != nil {
		panic(err)
	}
	_ = l.Release(ctx)
	// Output:
	// probe for mutex "job"
	// trylock: acquired
	// trylock: busy
	// mutex: "job" is locked by another owner (expires in 500ms)
	// lost: expired
	// lock: acquired
	// released, err: <nil>
}
