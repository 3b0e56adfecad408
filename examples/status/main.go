// Command status ports redis-py's lock status checks:
//
//	lock = r.lock("resource", timeout=10)
//	print(lock.locked())    # False
//	lock.acquire()
//	print(lock.locked())    # True: someone holds it
//	print(lock.owned())     # True: this lock object holds it
//	lock.release()
//
// "Locked" belongs to the name (Mutex.Locked: does anyone hold it?), "owned"
// to the lease (Lease.Owned: does this hold still hold it?). In redis-py,
// owned() compares with a thread-local token, so another thread asking the
// same Lock gets False; a lease answers any goroutine it is handed to. Both
// answers are snapshots, for monitoring; to enter a critical section use
// TryLock, which checks and takes in one step.
//
// Run it with `go run ./examples/status` (an in-process miniredis), or with
// REDIS_ADDR=host:port set to use a real server.
package main

import (
	"context"
	"errors"
	"io"
	"log"
	"os"
	"sync"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
)

func run(ctx context.Context, client *redis.Client, out io.Writer) error {
	logf := log.New(out, "", 0).Printf
	m, err := mutex.New(client, "status:resource")
	if err != nil {
		return err
	}
	locked, err := m.Locked(ctx)
	logf("%-29s locked=%v", "nobody holds it:", locked)
	if err != nil {
		return err
	}

	mine, err := m.Lock(ctx)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // any goroutine handed the lease
		defer wg.Done()
		err = status(ctx, m, mine, "I hold it, a monitor asks:", logf)
	}()
	wg.Wait()
	if err = errors.Join(err, mine.Release(ctx)); err != nil {
		return err
	}

	other, err := m.Lock(ctx) // another owner, as another process would
	if err != nil {
		return err
	}
	err = status(ctx, m, mine, "I released, another holds it:", logf)
	if err = errors.Join(err, other.Release(ctx)); err != nil {
		return err
	}
	return status(ctx, m, mine, "nobody holds it:", logf)
}

// status prints whether anyone holds m and whether l still holds it.
func status(ctx context.Context, m *mutex.Mutex, l *lease.Lease, when string, logf func(string, ...any)) error {
	locked, err := m.Locked(ctx)
	if err != nil {
		return err
	}
	owned, err := l.Owned(ctx)
	logf("%-29s locked=%-5v owned=%v", when, locked, owned)
	return err
}

func main() {
	client, closeRedis, err := connect(os.Getenv("REDIS_ADDR"))
	if err == nil {
		err = run(context.Background(), client, os.Stdout)
		closeRedis()
	}
	if err != nil {
		log.Fatal(err)
	}
}

// connect returns a client of the Redis at addr or, if addr is empty, of an
// in-process miniredis, and a function that closes them.
func connect(addr string) (*redis.Client, func(), error) {
	if addr != "" {
		c := redis.NewClient(&redis.Options{Addr: addr})
		if err := c.Ping(context.Background()).Err(); err != nil {
			c.Close()
			return nil, nil, err // fail now: Lock would retry until its ctx ends
		}
		return c, func() { c.Close() }, nil
	}
	mr, err := miniredis.Run() // on a free loopback port
	if err != nil {
		return nil, nil, err
	}
	mr.ClockTTL(true) // TTLs run in real time, as on a real server (by default only FastForward moves them)
	c := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	return c, func() { c.Close(); mr.Close() }, nil
}
