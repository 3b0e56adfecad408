// Package extendex is the long-task example: a task that outlives the
// lock's TTL, kept safe first by extending the lease by hand halfway, then
// the Go way, by the lease's own renewal.
//
// It ports redis-py's "lock extension":
//
//	lock = r.lock("resource", timeout=5)
//	lock.acquire()
//	first_half()
//	lock.extend(5)          # add 5s to the remaining TTL
//	second_half()
//	lock.release()
//
// Where the original is sloppy:
//   - it does not check that the lock survived first_half: if that took
//     longer than the TTL, extend raises LockNotOwnedError but first_half's
//     effects were already made without the lock. Here the task stops the
//     moment the lease is lost (its steps watch Lost), and Extend's error is
//     checked before the second half starts;
//   - picking "halfway" and "5 more seconds" by hand is guesswork: the Go
//     way is auto-renewal (the default), which keeps the lease alive for
//     as long as the task runs and tells the task through Lost when it
//     cannot.
package extendex

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/examples/internal/exredis"
	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
)

// Config sets the timing of the run.
type Config struct {
	TTL  time.Duration
	Step time.Duration // one unit of the task's work
	// The manual task runs ManualSteps steps (longer than TTL in total) and
	// extends after half of them; the auto-renewed one runs AutoSteps.
	ManualSteps, AutoSteps int
}

// Default is the configuration of `go run ./examples/extend`: a 1s lock,
// a 1.28s task extended halfway, and a 2.4s task with auto-renewal.
func Default() Config {
	return Config{TTL: time.Second, Step: 80 * time.Millisecond, ManualSteps: 16, AutoSteps: 30}
}

// Result is what happened.
type Result struct {
	TTL            time.Duration
	ManualTook     time.Duration // how long the manually extended task ran
	TTLBefore      time.Duration // remaining TTL just before Extend
	TTLAfter       time.Duration // remaining TTL just after Extend(TTL)
	ManualReleased bool          // Release succeeded: the lock was held to the end
	AutoTook       time.Duration // how long the auto-renewed task ran
	AutoReleased   bool
}

// Check says whether the run went as it should.
func (r Result) Check() error {
	var c exredis.Check
	c.Expect(r.ManualTook > r.TTL, "the manual task took %v, not longer than the TTL %v", r.ManualTook, r.TTL)
	c.Expect(r.TTLAfter > r.TTLBefore, "Extend did not raise the TTL (%v -> %v)", r.TTLBefore, r.TTLAfter)
	c.Expect(r.ManualReleased, "the manually extended lease was not held until the end")
	c.Expect(r.AutoTook > r.TTL*3/2, "the auto-renewed task took %v, not 1.5 times the TTL %v", r.AutoTook, r.TTL)
	c.Expect(r.AutoReleased, "the auto-renewed lease was not held until the end")
	return c.Err()
}

const name = "extend:resource"

// Run runs the long task twice: extended by hand, then auto-renewed.
func Run(ctx context.Context, client *redis.Client, out io.Writer, cfg Config) (Result, error) {
	p := exredis.NewPrinter(out)
	res := Result{TTL: cfg.TTL}

	// 1. redis-py's way: no renewal, one Extend halfway.
	m, err := mutex.New(client, name, mutex.WithTTL(cfg.TTL), mutex.WithAutoRenew(false))
	if err != nil {
		return res, err
	}
	l, err := m.Lock(ctx)
	if err != nil {
		return res, err
	}
	start := time.Now()
	p.Printf("manual: got the lock for %v; the task needs %v", cfg.TTL, time.Duration(cfg.ManualSteps)*cfg.Step)
	half := cfg.ManualSteps / 2
	if err := steps(ctx, l, half, cfg.Step); err != nil {
		return res, fmt.Errorf("manual, first half: %w", err)
	}
	if res.TTLBefore, err = l.TTL(ctx); err != nil {
		return res, err
	}
	// Extend adds to the remaining TTL. Its error matters: if the lease is
	// already gone the second half must not run.
	if err := l.Extend(ctx, cfg.TTL); err != nil {
		return res, fmt.Errorf("manual, extend: %w", err)
	}
	if res.TTLAfter, err = l.TTL(ctx); err != nil {
		return res, err
	}
	p.Printf("manual: halfway, %v left on the lock; extended by %v -> %v left", res.TTLBefore.Round(time.Millisecond), cfg.TTL, res.TTLAfter.Round(time.Millisecond))
	if err := steps(ctx, l, cfg.ManualSteps-half, cfg.Step); err != nil {
		return res, fmt.Errorf("manual, second half: %w", err)
	}
	res.ManualTook = time.Since(start)
	if err := l.Release(context.WithoutCancel(ctx)); err != nil {
		return res, fmt.Errorf("manual: %w", err)
	}
	res.ManualReleased = true
	p.Printf("manual: task done in %v (TTL %v), lock held throughout and released", res.ManualTook.Round(time.Millisecond), cfg.TTL)

	// 2. The Go way: the lease renews itself every TTL/3 until Release.
	m, err = mutex.New(client, name, mutex.WithTTL(cfg.TTL))
	if err != nil {
		return res, err
	}
	if l, err = m.Lock(ctx); err != nil {
		return res, err
	}
	start = time.Now()
	p.Printf("auto: got the lock for %v, renewed in the background; the task needs %v", cfg.TTL, time.Duration(cfg.AutoSteps)*cfg.Step)
	if err := steps(ctx, l, cfg.AutoSteps, cfg.Step); err != nil {
		return res, fmt.Errorf("auto: %w", err)
	}
	res.AutoTook = time.Since(start)
	if err := l.Release(context.WithoutCancel(ctx)); err != nil {
		return res, fmt.Errorf("auto: %w", err)
	}
	res.AutoReleased = true
	p.Printf("auto: task done in %v (TTL %v), lock held throughout and released", res.AutoTook.Round(time.Millisecond), cfg.TTL)
	return res, nil
}

// steps does n units of work, stopping at once if the lease is lost.
func steps(ctx context.Context, l *lease.Lease, n int, step time.Duration) error {
	t := time.NewTimer(step)
	defer t.Stop()
	for i := 0; i < n; i++ {
		select {
		case <-l.Lost():
			return fmt.Errorf("lease lost after %d of %d steps: %w", i, n, l.Err())
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-t.C:
			t.Reset(step)
		}
	}
	if l.Err() != nil { // lost exactly as the last step ended
		return errors.Join(fmt.Errorf("lease lost at the last step"), l.Err())
	}
	return nil
}
