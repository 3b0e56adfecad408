// Command waittimeout ports redis-py's bounded wait:
//
//	lock = r.lock("resource", timeout=10, blocking_timeout=5)
//	if lock.acquire():
//	    try:
//	        value = int(r.get("counter") or 0)
//	        r.set("counter", value + 1)
//	    finally:
//	        lock.release()
//	else:
//	    print("timed out")
//
// Five workers each wait at most 5s for the lock, then increment a counter
// under it. The wait is a context deadline; when it passes, the error wraps
// context.DeadlineExceeded and mutex.ErrLocked (acquire's False says neither),
// and nothing stays held. Waiters do not poll every 0.1s as acquire does:
// a release wakes the next one.
//
// Run it with `go run ./examples/waittimeout` (an in-process miniredis), or
// with REDIS_ADDR=host:port set to use a real server.
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

const counterKey = "waittimeout:counter"

func run(ctx context.Context, client *redis.Client, out io.Writer) error {
	logf := log.New(out, "", 0).Printf
	m, err := mutex.New(client, "waittimeout:resource", mutex.WithTTL(10*time.Second))
	if err != nil {
		return err
	}
	if err := client.Del(ctx, counterKey).Err(); err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, 5)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := increment(ctx, client, m, 5*time.Second)
			switch {
			case errors.Is(err, context.DeadlineExceeded):
				logf("worker %d: timed out (%v)", i+1, err)
			case err != nil:
				errs[i] = err
			default:
				logf("worker %d: counter %d -> %d", i+1, v-1, v)
			}
		}()
	}
	wg.Wait()
	n, err := client.Get(ctx, counterKey).Int()
	logf("counter = %d", n)
	return errors.Join(err, errors.Join(errs...))
}

// increment waits at most wait for the lock (blocking_timeout), then adds one
// to the counter and returns its new value.
func increment(ctx context.Context, client *redis.Client, m *mutex.Mutex, wait time.Duration) (v int64, err error) {
	wctx, cancel := context.WithTimeout(ctx, wait)
	l, err := m.Lock(wctx)
	cancel() // the deadline bounds the wait only, not the work
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, l.Release(ctx)) }()
	v, err = client.Get(ctx, counterKey).Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, err
	}
	time.Sleep(200 * time.Millisecond) // the work
	return v + 1, client.Set(ctx, counterKey, v+1, 0).Err()
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
