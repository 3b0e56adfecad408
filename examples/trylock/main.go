// Command trylock ports redis-py's non-blocking acquire:
//
//	lock = r.lock("resource", timeout=10)
//	if lock.acquire(blocking=False):
//	    try:
//	        do_work()
//	    finally:
//	        lock.release()
//	else:
//	    print("could not acquire lock")
//
// Three workers try the lock once each: one works, the others are told the
// lock is busy. Unlike acquire's False, mutex.ErrLocked is not what a broken
// connection returns, so "busy" and "Redis is down" are told apart.
//
// Run it with `go run ./examples/trylock` (an in-process miniredis), or with
// REDIS_ADDR=host:port set to use a real server.
package main

import (
	"context"
	"errors"
	"io"
	"log"
	"os"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/mutex"
)

const workers = 3

func run(ctx context.Context, client *redis.Client, out io.Writer) error {
	logf := log.New(out, "", 0).Printf
	m, err := mutex.New(client, "trylock:resource", mutex.WithTTL(10*time.Second))
	if err != nil {
		return err
	}
	var tried, done sync.WaitGroup // tried: every worker has made its attempt
	tried.Add(workers)
	errs := make([]error, workers)
	for i := range workers {
		done.Add(1)
		go func() {
			defer done.Done()
			errs[i] = work(ctx, m, i+1, &tried, logf)
		}()
	}
	done.Wait()
	return errors.Join(errs...)
}

// work tries the lock once.
func work(ctx context.Context, m *mutex.Mutex, id int, tried *sync.WaitGroup, logf func(string, ...any)) error {
	l, err := m.TryLock(ctx) // acquire(blocking=False)
	tried.Done()
	if errors.Is(err, mutex.ErrLocked) {
		logf("worker %d: could not acquire the lock, skipping the work", id)
		return nil
	}
	if err != nil {
		return err // Redis unreachable, ctx canceled...: not "busy"
	}
	logf("worker %d: got the lock (fence %d), working", id, l.Fence())
	// The holder keeps the lock until everyone has tried, so that exactly one
	// worker works whatever the timing (in redis-py, a thread starting after
	// the first one finished would get the lock too).
	tried.Wait()
	time.Sleep(100 * time.Millisecond) // do_work()
	logf("worker %d: done, releasing", id)
	return l.Release(ctx)
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
