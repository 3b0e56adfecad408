package mutex_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
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
	fmt.Println("after release:", err == nil, "fence larger:", again.Fence() > first.Fence())
	again.Release(ctx)
	// Output:
	// second attempt locked out: true
	// after release: true fence larger: true
}

// New checks its arguments: an invalid option is an error wrapping
// ErrInvalid that names the value and the rule, never a panic.
func ExampleNew() {
	client, stop := embedded()
	defer stop()

	m, err := mutex.New(client, "orders:42", mutex.WithTTL(30*time.Second))
	if err != nil {
		panic(err)
	}
	fmt.Println("mutex for", m.Name())

	_, err = mutex.New(client, "orders:42", mutex.WithTTL(time.Millisecond))
	fmt.Println("1ms TTL refused:", errors.Is(err, mutex.ErrInvalid))
	// Output:
	// mutex for orders:42
	// 1ms TTL refused: true
}

// redis-py's blocking_timeout is a ctx deadline: when it passes, Lock
// returns an error matching both the deadline and the busy lock, and
// nothing is left held.
func ExampleMutex_Lock_timeout() {
	client, stop := embedded()
	defer stop()
	ctx := context.Background()

	m, _ := mutex.New(client, "orders:42")
	holder, err := m.Lock(ctx)
	if err != nil {
		panic(err)
	}
	defer holder.Release(ctx)

	wctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err = m.Lock(wctx)
	fmt.Println("timed out:", errors.Is(err, context.DeadlineExceeded))
	fmt.Println("lock busy:", errors.Is(err, mutex.ErrLocked))
	// Output:
	// timed out: true
	// lock busy: true
}

// Locked reports whether anyone holds the lock (redis-py locked()): a
// snapshot for monitoring. To take the lock if it is free, use TryLock.
func ExampleMutex_Locked() {
	client, stop := embedded()
	defer stop()
	ctx := context.Background()

	m, _ := mutex.New(client, "report")
	locked, _ := m.Locked(ctx)
	fmt.Println("before:", locked)

	l, err := m.Lock(ctx)
	if err != nil {
		panic(err)
	}
	locked, _ = m.Locked(ctx)
	fmt.Println("held:", locked)

	l.Release(ctx)
	locked, _ = m.Locked(ctx)
	fmt.Println("released:", locked)
	// Output:
	// before: false
	// held: true
	// released: false
}

// A custom token (redis-py acquire(token=...)) is stored in the lock key,
// where anyone can read who holds the lock. Choose one that names exactly
// one owner: two holders with the same token are one owner to Redis.
func ExampleWithToken() {
	client, stop := embedded()
	defer stop()
	ctx := context.Background()

	m, err := mutex.New(client, "report", mutex.WithToken("report-builder@host-1"))
	if err != nil {
		panic(err)
	}
	l, err := m.Lock(ctx)
	if err != nil {
		panic(err)
	}
	defer l.Release(ctx)

	fmt.Println("token:", l.Token())
	held, _ := client.Get(ctx, "redlease:{report}").Result() // "<fence>:<gen>:<token>"
	fmt.Println("lock key:", held)
	// Output:
	// token: report-builder@host-1
	// lock key: 1:0:report-builder@host-1
}

func ExampleWithLogger() {
	client, stop := embedded()
	defer stop()
	ctx := context.Background()

	// Text records without the time, for a stable output.
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	m, err := mutex.New(client, "nightly-report", mutex.WithLogger(logger), mutex.WithAutoRenew(false), mutex.WithTTL(50*time.Millisecond))
	if err != nil {
		panic(err)
	}
	l, err := m.TryLock(ctx)
	if err != nil {
		panic(err)
	}
	<-l.Lost() // auto-renewal is off: the lease expires, and says so
	// Output:
	// level=WARN msg="redlease: lease lost" name=nightly-report kind=mutex fence=1 reason=expired err="lease: expired"
}
