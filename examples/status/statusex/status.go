// Package statusex is the status example: a monitor goroutine samples
// whether the lock is held (Locked) and whether the holder's lease is still
// its own (Owned) while another goroutine takes, holds and releases it.
//
// It ports redis-py's "lock status checking":
//
//	lock = r.lock("resource", timeout=10)
//	print(lock.locked())    # False
//	lock.acquire()
//	print(lock.locked())    # True: someone holds it
//	print(lock.owned())     # True: this lock object holds it
//	lock.release()
//
// Where the original is sloppy: owned() compares the key with a token kept in
// thread-local storage (thread_local=True by default), so a monitor thread
// asking the same Lock object gets False while the lock is held. Here
// "owned" belongs to the lease, which any goroutine handed the lease can ask,
// and "locked" belongs to the name (Mutex.Locked), which anyone can ask.
// Both answers are snapshots: they may be stale by the time they are read,
// so they are for monitoring, never for deciding to enter a critical
// section (that is what TryLock is for).
package statusex

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
	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
)

// Config sets the timing of the run.
type Config struct {
	TTL    time.Duration
	Before time.Duration // the holder waits this long before locking
	Hold   time.Duration // and holds the lock this long
	After  time.Duration // the monitor keeps sampling this long after release
	Every  time.Duration // the monitor's sampling period
}

// Default is the configuration of `go run ./examples/status`.
func Default() Config {
	return Config{TTL: 2 * time.Second, Before: 200 * time.Millisecond, Hold: 600 * time.Millisecond, After: 200 * time.Millisecond, Every: 100 * time.Millisecond}
}

// Result counts the monitor's samples by the holder's phase at the time.
type Result struct {
	Before, Holding, After int // samples taken in each phase
	Wrong                  int // samples that contradict the phase
}

// Check says whether the run went as it should.
func (r Result) Check() error {
	var c exredis.Check
	c.Expect(r.Before > 0 && r.Holding > 0 && r.After > 0, "samples before/holding/after: %d/%d/%d, want some of each", r.Before, r.Holding, r.After)
	c.Expect(r.Wrong == 0, "%d samples contradicted the holder's state", r.Wrong)
	return c.Err()
}

const name = "status:resource"

// The holder's phases. In the two transitions the answer may go either way,
// so samples taken then are not judged.
const (
	phaseBefore = iota
	phaseLocking
	phaseHolding
	phaseReleasing
	phaseAfter
)

var phaseName = []string{"before", "locking", "holding", "releasing", "after"}

// Run starts the holder and the monitor and waits for both.
func Run(ctx context.Context, client *redis.Client, out io.Writer, cfg Config) (Result, error) {
	p := exredis.NewPrinter(out)
	var (
		phase atomic.Int32                // the holder's phase, set after each step
		held  atomic.Pointer[lease.Lease] // the holder's lease, handed to the monitor
		done  = make(chan struct{})       // the holder released the lock
		wg    sync.WaitGroup
		herr  error
	)
	wg.Add(1)
	go func() { // the holder: its own client, as another process would have
		defer wg.Done()
		defer close(done)
		c := exredis.Another(client)
		defer c.Close()
		herr = hold(ctx, c, p, cfg, &phase, &held)
	}()

	m, err := mutex.New(client, name) // the monitor's view of the name
	if err != nil {
		wg.Wait()
		return Result{}, err
	}
	var res Result
	tick := time.NewTicker(cfg.Every)
	defer tick.Stop()
	var stopAt <-chan time.Time
	for stop := false; !stop; {
		select {
		case <-ctx.Done():
			wg.Wait()
			return res, context.Cause(ctx)
		case <-done:
			done = nil // sample a little longer, then stop
			stopAt = time.After(cfg.After)
			continue
		case <-stopAt:
			stop = true
		case <-tick.C:
		}
		ph := phase.Load()
		locked, err := m.Locked(ctx)
		if err != nil {
			wg.Wait()
			return res, err
		}
		owned := false
		if l := held.Load(); l != nil {
			if owned, err = l.Owned(ctx); err != nil {
				wg.Wait()
				return res, err
			}
		}
		if ph != phase.Load() || ph == phaseLocking || ph == phaseReleasing {
			continue // the holder moved on while we asked: not a clean sample
		}
		ok := locked == (ph == phaseHolding) && owned == (ph == phaseHolding)
		verdict := "as expected"
		if !ok {
			res.Wrong++
			verdict = "WRONG"
		}
		switch ph {
		case phaseBefore:
			res.Before++
		case phaseHolding:
			res.Holding++
		case phaseAfter:
			res.After++
		}
		p.Printf("monitor: %-7s locked=%-5v owned=%-5v %s", phaseName[ph], locked, owned, verdict)
	}
	wg.Wait()
	if herr != nil {
		return res, fmt.Errorf("holder: %w", herr)
	}
	return res, nil
}

func hold(ctx context.Context, c *redis.Client, p *exredis.Printer, cfg Config, phase *atomic.Int32, held *atomic.Pointer[lease.Lease]) error {
	m, err := mutex.New(c, name, mutex.WithTTL(cfg.TTL))
	if err != nil {
		return err
	}
	if err := exredis.Sleep(ctx, cfg.Before); err != nil {
		return err
	}
	phase.Store(phaseLocking)
	l, err := m.Lock(ctx)
	if err != nil {
		return err
	}
	held.Store(l)
	phase.Store(phaseHolding)
	p.Printf("holder: locked (fence %d)", l.Fence())
	werr := exredis.Sleep(ctx, cfg.Hold)
	phase.Store(phaseReleasing)
	rerr := l.Release(context.WithoutCancel(ctx))
	phase.Store(phaseAfter)
	p.Printf("holder: released")
	return errors.Join(werr, rerr)
}
