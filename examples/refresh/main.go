// Command refresh ports redis-py's lock reacquisition:
//
//	lock = r.lock("resource", timeout=2)
//	lock.acquire()
//	time.sleep(1)
//	lock.reacquire()        # TTL back to 2s: extend(2, replace_ttl=True)
//	lock.release()
//	lock.reacquire()        # raises LockError: "Cannot reacquire an unlocked lock"
//
// reacquire() does not acquire again: it resets the TTL of a lock still held.
// Here the names say so. Refresh resets the TTL of a held lease and fails
// with lease.ErrReleased once it is released; holding the lock again is a
// new Lock through the mutex, which gives a new lease with a larger fence.
//
// Run it with `go run ./examples/refresh` (an in-process miniredis), or with
// REDIS_ADDR=host:port set to use a real server.
package main

import (
	"context"
	"io"
	"log"
	"os"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/mutex"
)

const ttl = 2 * time.Second

func run(ctx context.Context, client *redis.Client, out io.Writer) error {
	logf := log.New(out, "", 0).Printf
	// Renewal off, so that the TTL visibly runs down as in redis-py. (With
	// it on, Refresh works the same; the next renewal tops the TTL up.)
	m, err := mutex.New(client, "refresh:resource", mutex.WithTTL(ttl), mutex.WithAutoRenew(false))
	if err != nil {
		return err
	}
	l, err := m.Lock(ctx)
	if err != nil {
		return err
	}
	logf("locked for %v (fence %d)", ttl, l.Fence())
	time.Sleep(time.Second) // work
	left, err := l.TTL(ctx)
	if err != nil {
		return err // the lease was lost: nothing to refresh
	}
	if err := l.Refresh(ctx, ttl); err != nil {
		return err
	}
	now, err := l.TTL(ctx)
	if err != nil {
		return err
	}
	logf("after 1s of work: %v left; Refresh(%v): %v left", left.Round(10*time.Millisecond), ttl, now.Round(10*time.Millisecond))

	if err := l.Release(ctx); err != nil {
		return err
	}
	logf("released; Refresh now fails: %v", l.Refresh(ctx, ttl))

	again, err := m.Lock(ctx)
	if err != nil {
		return err
	}
	logf("locked again: a new lease (fence %d)", again.Fence())
	return again.Release(ctx)
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
