// Package trylockex is the trylock example: several workers try the same
// lock once each; one works, the others are told the lock is busy.
//
// It ports redis-py's "basic lock usage":
//
//	lock = r.lock("shared_resource", timeout=10)
//	try:
//	    if lock.acquire(blocking=False):
//	        do_work()
//	    else:
//	        print("could not acquire lock")
//	finally:
//	    if lock.owned():
//	        lock.release()
//
// Where the original is sloppy:
//   - whether one thread or all of them "work" depends on timing: a thread that
//     starts after the first one finished gets the lock too. Here the holder
//     keeps the lock until every worker has tried, so exactly one works;
//   - "if lock.owned(): lock.release()" is check-then-act: the lock can expire
//     between the two calls and release raises. Here only the worker that got
//     a lease releases it, and its error is checked;
//   - acquire(blocking=False) returns False for "busy", but a connection error
//     raises; a busy lock and a broken Redis are told apart here by
//     errors.Is(err, mutex.ErrLocked).
package trylockex

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
	TTL     time.Duration // of the lock (auto-renewed while held)
	Work    time.Duration // how long the winner works, at least
}

// Default is the configuration of `go run ./examples/trylock`.
func Default() Config { return Config{Workers: 3, TTL: 2 * time.Second, Work: 300 * time.Millisecond} }

// Result is what happened.
type Result struct {
	Workers int
	Worked  int // workers that got the lock
	Busy    int // workers told the lock was busy (ErrLocked)
}

// Check says whether the run went as it should.
func (r Result) Check() error {
	var c exredis.Check
	c.Expect(r.Worked == 1, "worked: got %d workers, want 1", r.Worked)
	c.Expect(r.Busy == r.Workers-1, "busy: got %d workers, want %d", r.Busy, r.Workers-1)
	return c.Err()
}

const name = "trylock:shared_resource"

// Run starts cfg.Workers goroutines, each trying the lock once.
func Run(ctx context.Context, client *redis.Client, out io.Writer, cfg Config) (Result, error) {
	p := exredis.NewPrinter(out)
	// A Mutex holds no state and is safe for concurrent use; several Mutex
	// values with the same name (in any process) are the same lock. Each
	// worker makes its own here, as separate processes would.
	var (
		mu     sync.Mutex
		res    = Result{Workers: cfg.Workers}
		errs   []error
		tried  sync.WaitGroup // every worker has made its attempt
		finish sync.WaitGroup
	)
	tried.Add(cfg.Workers)
	for i := 1; i <= cfg.Workers; i++ {
		finish.Add(1)
		go func() {
			defer finish.Done()
			worked, err := worker(ctx, client, p, i, cfg, &tried)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				errs = append(errs, err)
			case worked:
				res.Worked++
			default:
				res.Busy++
			}
		}()
	}
	finish.Wait()
	p.Printf("%d worked, %d found the lock busy", res.Worked, res.Busy)
	return res, errors.Join(errs...)
}

// worker tries the lock once. It reports whether it got the lock and worked.
func worker(ctx context.Context, client *redis.Client, p *exredis.Printer, id int, cfg Config, tried *sync.WaitGroup) (bool, error) {
	m, err := mutex.New(client, name, mutex.WithTTL(cfg.TTL))
	if err != nil {
		tried.Done()
		return false, err
	}
	l, err := m.TryLock(ctx)
	tried.Done()
	switch {
	case errors.Is(err, mutex.ErrLocked):
		p.Printf("worker %d: lock is busy, skipping the work", id)
		return false, nil
	case err != nil: // Redis unreachable, ctx canceled...: not "busy"
		return false, fmt.Errorf("worker %d: %w", id, err)
	}
	p.Printf("worker %d: got the lock (fence %d), working", id, l.Fence())
	tried.Wait() // hold on until everyone has had their try
	werr := exredis.Sleep(ctx, cfg.Work)
	// Release with a context that outlives ctx: a canceled caller must not
	// leave the key held until its TTL runs out.
	if err := l.Release(context.WithoutCancel(ctx)); err != nil {
		return false, fmt.Errorf("worker %d: %w", id, err)
	}
	if werr != nil {
		return false, fmt.Errorf("worker %d: %w", id, werr)
	}
	p.Printf("worker %d: done, lock released", id)
	return true, nil
}
