// Package deferex is the context-manager example: Lock, then defer Release,
// so the lock is released however the critical section ends.
//
// It ports redis-py's context-manager usage:
//
//	with r.lock("resource", timeout=10):
//	    do_work()
//
// Where the original is sloppy:
//   - if the lock expired during do_work, __exit__'s release raises
//     LockNotOwnedError, which replaces the exception do_work raised (if any;
//     it survives only as the new exception's __context__).
//     Here both errors are kept (errors.Join) and the work gets a context that
//     is canceled the moment the lease is lost;
//   - the release runs with a context that is not canceled with the caller's,
//     so a canceled caller does not leave the key held until its TTL.
package deferex

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/examples/internal/exredis"
	"github.com/redlease/redlease/mutex"
)

// WithLock runs fn while holding m: the Go spelling of "with lock:". fn's
// context is canceled if the lease is lost. The lease is released whatever
// fn returns (or if it panics); a failed release is reported with fn's error.
func WithLock(ctx context.Context, m *mutex.Mutex, fn func(ctx context.Context) error) (err error) {
	l, err := m.Lock(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if rerr := l.Release(context.WithoutCancel(ctx)); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}()
	lctx, cancel := l.Context(ctx)
	defer cancel()
	return fn(lctx)
}

// Config sets the size and timing of the run.
type Config struct {
	Workers  int
	Sections int // critical sections per worker
	TTL      time.Duration
	Work     time.Duration // per section
}

// Default is the configuration of `go run ./examples/defer`.
func Default() Config {
	return Config{Workers: 3, Sections: 3, TTL: 2 * time.Second, Work: 20 * time.Millisecond}
}

// Result is what happened.
type Result struct {
	Sections     int  // critical sections that ran, failing or not
	Want         int  // Workers × Sections
	MaxInside    int  // most workers ever inside a critical section at once
	FailedErr    bool // the failing section's error reached the caller
	LockedAfter  bool // the lock was still held after everything returned
	PanicRelease bool // a section that panicked still released the lock
}

// Check says whether the run went as it should.
func (r Result) Check() error {
	var c exredis.Check
	c.Expect(r.Sections == r.Want, "sections: got %d, want %d", r.Sections, r.Want)
	c.Expect(r.MaxInside == 1, "mutual exclusion: %d workers were inside at once", r.MaxInside)
	c.Expect(r.FailedErr, "the failing section's error was not returned")
	c.Expect(r.PanicRelease, "the panicking section left the lock held")
	c.Expect(!r.LockedAfter, "the lock is still held at the end")
	return c.Err()
}

const name = "defer:resource"

var (
	errWork     = errors.New("the work failed")
	errPanicked = errors.New("panic")
)

// Run has cfg.Workers goroutines each run cfg.Sections critical sections
// under the lock; the last section of worker 1 fails and the last of worker
// 2 panics, and the lock is released all the same.
func Run(ctx context.Context, client *redis.Client, out io.Writer, cfg Config) (Result, error) {
	p := exredis.NewPrinter(out)
	m, err := mutex.New(client, name, mutex.WithTTL(cfg.TTL))
	if err != nil {
		return Result{}, err
	}
	res := Result{Want: cfg.Workers * cfg.Sections}
	var (
		inside, maxInside, sections atomic.Int64
		failedErr, panicked         atomic.Bool
		wg                          sync.WaitGroup
		errMu                       sync.Mutex
		errs                        []error
	)
	section := func(ctx context.Context, id, n int) error {
		cur := inside.Add(1)
		defer inside.Add(-1)
		for old := maxInside.Load(); cur > old && !maxInside.CompareAndSwap(old, cur); old = maxInside.Load() {
		}
		sections.Add(1)
		p.Printf("worker %d: section %d inside the lock", id, n)
		if err := exredis.Sleep(ctx, cfg.Work); err != nil {
			return err // the lease was lost (or ctx canceled): stop
		}
		switch {
		case id == 1 && n == cfg.Sections:
			return errWork
		case id == 2 && n == cfg.Sections:
			panic("section panicked")
		}
		return nil
	}
	for id := 1; id <= cfg.Workers; id++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 1; n <= cfg.Sections; n++ {
				err := func() (err error) {
					defer func() {
						// Recover only to show that WithLock's deferred
						// Release ran while the panic unwound.
						if r := recover(); r != nil {
							panicked.Store(true)
							err = fmt.Errorf("%w: %v", errPanicked, r)
						}
					}()
					return WithLock(ctx, m, func(ctx context.Context) error { return section(ctx, id, n) })
				}()
				switch {
				case errors.Is(err, errWork):
					failedErr.Store(true)
					p.Printf("worker %d: section %d failed (%v); the lock was released anyway", id, n, err)
				case errors.Is(err, errPanicked):
					p.Printf("worker %d: section %d panicked (%v); the lock was released anyway", id, n, err)
				case err != nil:
					errMu.Lock()
					errs = append(errs, fmt.Errorf("worker %d section %d: %w", id, n, err))
					errMu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return res, err
	}
	res.Sections = int(sections.Load())
	res.MaxInside = int(maxInside.Load())
	res.FailedErr = failedErr.Load()
	res.LockedAfter, err = m.Locked(ctx)
	if err != nil {
		return res, err
	}
	// Without its Release the panicking worker's lease would still be
	// renewing itself, and the lock held.
	res.PanicRelease = panicked.Load() && !res.LockedAfter
	p.Printf("%d sections ran, at most %d at a time; lock held at the end: %v", res.Sections, res.MaxInside, res.LockedAfter)
	return res, nil
}
