// Command extend ports redis-py's lock extension:
//
//	lock = r.lock("resource", timeout=1)
//	lock.acquire()
//	first_half()
//	lock.extend(1)          # add 1s to the remaining TTL
//	second_half()
//	lock.release()
//
// A task longer than the lock's TTL runs twice. First redis-py's way:
// renewal off, one Extend halfway; Extend's error is checked, and the task
// watches the lease, so that neither half runs on without the lock (the
// original notices a lost lock only when extend raises, after first_half).
// Then the Go way: auto-renewal, the default, keeps the lease for as long as
// the task runs, with no guess of how long it will take.
//
// Run it with `go run ./examples/extend` (an in-process miniredis), or with
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

	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
)

const ttl = time.Second

func run(ctx context.Context, client *redis.Client, out io.Writer) error {
	logf := log.New(out, "", 0).Printf
	m, err := mutex.New(client, "extend:resource", mutex.WithTTL(ttl), mutex.WithAutoRenew(false))
	if err != nil {
		return err
	}
	l, err := m.Lock(ctx)
	if err != nil {
		return err
	}
	logf("by hand: locked for %v, no renewal; the task takes 1.2s", ttl)
	if err := work(l, 600*time.Millisecond); err != nil {
		return err
	}
	left, err := l.TTL(ctx)
	if err != nil {
		return err
	}
	if err := l.Extend(ctx, ttl); err != nil { // adds ttl to what is left
		return err
	}
	now, err := l.TTL(ctx)
	if err != nil {
		return err
	}
	logf("by hand: halfway, %v left; Extend(%v): %v left", left.Round(10*time.Millisecond), ttl, now.Round(10*time.Millisecond))
	if err := work(l, 600*time.Millisecond); err != nil {
		return err
	}
	if err := l.Release(ctx); err != nil {
		return err
	}
	logf("by hand: done, the lock was held throughout")

	m, err = mutex.New(client, "extend:resource", mutex.WithTTL(ttl)) // renewed every ttl/3
	if err != nil {
		return err
	}
	if l, err = m.Lock(ctx); err != nil {
		return err
	}
	logf("auto-renewed: locked for %v; the task takes 2.5s", ttl)
	if err := work(l, 2500*time.Millisecond); err != nil {
		return err
	}
	logf("auto-renewed: done, the lock was held throughout")
	return l.Release(ctx)
}

// work stands for a task that takes d; it stops early, with the lease's
// error, if the lease is lost.
func work(l *lease.Lease, d time.Duration) error {
	select {
	case <-l.Lost():
		return l.Err()
	case <-time.After(d):
		return nil
	}
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
