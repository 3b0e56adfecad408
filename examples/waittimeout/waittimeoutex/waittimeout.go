// Package waittimeoutex is the bounded-wait example: workers wait at most
// a deadline for the lock, then increment a shared counter under it.
//
// It ports redis-py's "lock with timeout":
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
// Where the original is sloppy:
//   - acquire polls: it retries SET NX every `sleep` (0.1s), so a release is
//     noticed up to 100ms late and N waiters send N commands per poll. Here
//     waiters sleep until the release is published (one wake-up per
//     release), with a backoff only for missed messages and expiries;
//   - acquire() returning False says nothing of why: a timeout and a broken
//     connection look alike. Here the error wraps ctx's error
//     (context.DeadlineExceeded) and the last reason (mutex.ErrLocked);
//   - the wait is bounded by a context deadline, which also bounds every Redis
//     call made while waiting; nothing stays held in Redis when it expires.
package waittimeoutex

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/examples/internal/exredis"
	"github.com/redlease/redlease/mutex"
)

// Config sets the size and timing of the run.
type Config struct {
	Workers int
	Wait    time.Duration // each worker's deadline for getting the lock
	Work    time.Duration // time spent holding the lock, per worker
	TTL     time.Duration
}

// Default is the configuration of `go run ./examples/waittimeout`: five
// workers, each waiting up to 5s; 200ms of work each fits comfortably.
func Default() Config {
	return Config{Workers: 5, Wait: 5 * time.Second, Work: 200 * time.Millisecond, TTL: 2 * time.Second}
}

// Result is what happened.
type Result struct {
	Workers     int
	Incremented int   // workers that got the lock and incremented
	TimedOut    int   // workers whose wait hit the deadline
	Counter     int64 // final value of the counter
}

// Check says whether the run went as it should: every increment counted,
// every worker accounted for.
func (r Result) Check() error {
	var c exredis.Check
	c.Expect(r.Counter == int64(r.Incremented), "counter: got %d, want %d (one per increment)", r.Counter, r.Incremented)
	c.Expect(r.Incremented+r.TimedOut == r.Workers, "%d incremented + %d timed out != %d workers", r.Incremented, r.TimedOut, r.Workers)
	return c.Err()
}

const (
	name       = "waittimeout:resource"
	counterKey = "waittimeout:counter"
)

// Run starts cfg.Workers workers, each with its own client (as separate
// processes would have), and returns the counter they built.
func Run(ctx context.Context, client *redis.Client, out io.Writer, cfg Config) (Result, error) {
	p := exredis.NewPrinter(out)
	res := Result{Workers: cfg.Workers}
	if err := client.Del(ctx, counterKey).Err(); err != nil {
		return res, err
	}
	defer client.Del(context.WithoutCancel(ctx), counterKey) // leave no data behind
	clients, closeAll := exredis.Clients(client, cfg.Workers)
	defer closeAll()

	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := worker(ctx, c, p, i+1, cfg)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				errs = append(errs, err)
			case ok:
				res.Incremented++
			default:
				res.TimedOut++
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return res, err
	}
	n, err := client.Get(ctx, counterKey).Int64()
	if err != nil && err != redis.Nil {
		return res, err
	}
	res.Counter = n
	p.Printf("counter = %d after %d increments (%d workers timed out)", res.Counter, res.Incremented, res.TimedOut)
	return res, nil
}

// worker waits up to cfg.Wait for the lock; it reports whether it
// incremented the counter (false: its wait timed out).
func worker(ctx context.Context, c *redis.Client, p *exredis.Printer, id int, cfg Config) (bool, error) {
	m, err := mutex.New(c, name, mutex.WithTTL(cfg.TTL))
	if err != nil {
		return false, err
	}
	wctx, cancel := context.WithTimeout(ctx, cfg.Wait) // blocking_timeout
	l, err := m.Lock(wctx)
	cancel()
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		p.Printf("worker %d: gave up after %v (%v)", id, cfg.Wait, err)
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("worker %d: %w", id, err)
	}
	// Work on the caller's ctx, not wctx: the wait deadline bounds the wait.
	v, err := c.Get(ctx, counterKey).Int64()
	if err != nil && err != redis.Nil {
		_ = l.Release(context.WithoutCancel(ctx))
		return false, err
	}
	werr := exredis.Sleep(ctx, cfg.Work)
	if werr == nil {
		werr = c.Set(ctx, counterKey, v+1, 0).Err()
	}
	rerr := l.Release(context.WithoutCancel(ctx))
	if err := errors.Join(werr, rerr); err != nil {
		return false, fmt.Errorf("worker %d: %w", id, err)
	}
	p.Printf("worker %d: counter %d -> %d", id, v, v+1)
	return true, nil
}
