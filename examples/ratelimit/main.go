// Command ratelimit bounds how many jobs run at once across processes with a
// semaphore. There is no redis-py original (redis-py has no semaphore; Python
// code counts with INCR/DECR and leaks a unit whenever a worker dies between
// the two). Here each job holds one unit of a semaphore with limit 2 as its
// own lease: a worker that dies gives its unit back when the TTL passes, and
// a job runs on its lease's Context, so a job whose unit may no longer be
// its own is canceled at once instead of running as a third.
//
// Six jobs are started together by errgroup workers; at most two run at any
// moment. Then two long jobs run and the semaphore's hash is deleted under
// them: both are canceled, and the group returns why (lease.ErrNotHeld).
//
// Run it with `go run ./examples/ratelimit` (an in-process miniredis), or with
// REDIS_ADDR=host:port set to use a real server.
package main

import (
	"context"
	"io"
	"log"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/redlease/redlease/mutex"
	"github.com/redlease/redlease/semaphore"
)

const (
	name  = "ratelimit:jobs"
	limit = 2 // jobs running at once, in all processes together
)

func run(ctx context.Context, client *redis.Client, out io.Writer) error {
	logf := log.New(out, "", 0).Printf
	sem, err := semaphore.New(client, name, limit,
		mutex.WithTTL(time.Second), mutex.WithRenewInterval(100*time.Millisecond))
	if err != nil {
		return err
	}

	var running, peak atomic.Int64
	err = jobs(ctx, sem, 6, func(ctx context.Context, i int) error {
		n := running.Add(1)
		defer running.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		logf("job %d: running, %d at once", i, n)
		return sleep(ctx, 100*time.Millisecond) // the job's work
	})
	logf("6 jobs, limit %d: the group returned %v; at most %d ran at once", limit, err, peak.Load())
	if err != nil {
		return err
	}

	var delErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(300 * time.Millisecond)
		delErr = client.Del(ctx, "redlease:{"+name+"}:sem").Err() // someone wipes the semaphore
	}()
	start := time.Now()
	err = jobs(ctx, sem, 2, func(ctx context.Context, i int) error {
		logf("job %d: running for up to 5s", i)
		return sleep(ctx, 5*time.Second)
	})
	wg.Wait()
	logf("2 jobs of 5s, semaphore deleted after 300ms: the group returned %v after %v",
		err, time.Since(start).Round(100*time.Millisecond))
	return delErr
}

// jobs runs n jobs, each in an errgroup worker holding one unit of sem for as
// long as it runs. A job's ctx is its lease's: it is canceled, with the
// lease's error as cause, the moment the unit may no longer be held. The
// first job to fail cancels the others, and jobs returns its error.
func jobs(ctx context.Context, sem *semaphore.Semaphore, n int, job func(ctx context.Context, i int) error) error {
	g, gctx := errgroup.WithContext(ctx)
	for i := range n {
		g.Go(func() error {
			l, err := sem.Acquire(gctx, 1) // waits for a free unit
			if err != nil {
				return err
			}
			lctx, cancel := l.Context(gctx)
			err = job(lctx, i+1)
			cancel()
			// After a loss Release only reports it again: the job's error says it.
			if rerr := l.Release(ctx); err == nil {
				err = rerr
			}
			return err
		})
	}
	return g.Wait()
}

// sleep waits d, or returns why ctx ended first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
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
			return nil, nil, err // fail now: Acquire would retry until its ctx ends
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
