// Package refreshex is the TTL-reset example: a held lease gets its TTL set
// back to a full timeout with Refresh, and a lock that was released is taken
// again through the mutex, as a new lease.
//
// It ports redis-py's "lock reacquisition":
//
//	lock = r.lock("resource", timeout=10)
//	lock.acquire()
//	time.sleep(5)
//	lock.reacquire()        # TTL back to 10s
//	lock.release()
//	lock.reacquire()        # raises LockError: "Cannot reacquire an unlocked lock"
//
// Where the original is sloppy: reacquire() is not "acquire again", it only
// resets the TTL of a lock still held, and after release() it fails. Here
// the names say what happens: Refresh resets the TTL of a held lease (and
// fails with ErrReleased once released), and taking the lock again after a
// release is a new Lock through the mutex, with a new lease and a larger
// fence.
package refreshex

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
	Work time.Duration // time spent holding the lock before the refresh
}

// Default is the configuration of `go run ./examples/refresh`.
func Default() Config { return Config{TTL: 2 * time.Second, Work: time.Second} }

// Result is what happened.
type Result struct {
	TTL               time.Duration
	TTLBefore         time.Duration // remaining TTL after Work
	TTLAfter          time.Duration // remaining TTL right after Refresh(TTL)
	RefreshAfterRel   error         // Refresh on the released lease
	Fence1, Fence2    int64         // fences of the first and the second lease
	Released1, Relock bool
}

// Check says whether the run went as it should.
func (r Result) Check() error {
	var c exredis.Check
	c.Expect(r.TTLBefore < r.TTL-r.TTL/4, "the TTL had not run down before the refresh (%v of %v)", r.TTLBefore, r.TTL)
	c.Expect(r.TTLAfter > r.TTLBefore && r.TTLAfter > r.TTL*3/4, "Refresh did not reset the TTL: %v -> %v (TTL %v)", r.TTLBefore, r.TTLAfter, r.TTL)
	c.Expect(r.Released1, "the first lease was not released")
	c.Expect(errors.Is(r.RefreshAfterRel, lease.ErrReleased), "Refresh after Release: %v, want ErrReleased", r.RefreshAfterRel)
	c.Expect(r.Relock && r.Fence2 > r.Fence1, "relock: %v, fences %d then %d", r.Relock, r.Fence1, r.Fence2)
	return c.Err()
}

const name = "refresh:resource"

// Run holds, refreshes, releases and locks again.
func Run(ctx context.Context, client *redis.Client, out io.Writer, cfg Config) (Result, error) {
	p := exredis.NewPrinter(out)
	res := Result{TTL: cfg.TTL}
	// Auto-renewal off so that the TTL visibly runs down, as in redis-py.
	// (With it on, Refresh still works; the next renewal tops the TTL up.)
	m, err := mutex.New(client, name, mutex.WithTTL(cfg.TTL), mutex.WithAutoRenew(false))
	if err != nil {
		return res, err
	}
	l, err := m.Lock(ctx)
	if err != nil {
		return res, err
	}
	res.Fence1 = l.Fence()
	p.Printf("got the lock for %v (fence %d)", cfg.TTL, res.Fence1)
	if err := exredis.Sleep(ctx, cfg.Work); err != nil {
		return res, errors.Join(err, l.Release(context.WithoutCancel(ctx)))
	}
	if res.TTLBefore, err = l.TTL(ctx); err != nil {
		return res, err // the lease was lost: nothing to refresh
	}
	if err := l.Refresh(ctx, cfg.TTL); err != nil {
		return res, err
	}
	if res.TTLAfter, err = l.TTL(ctx); err != nil {
		return res, err
	}
	p.Printf("after %v of work: %v left; Refresh(%v) -> %v left", cfg.Work, res.TTLBefore.Round(time.Millisecond), cfg.TTL, res.TTLAfter.Round(time.Millisecond))

	if err := l.Release(ctx); err != nil {
		return res, err
	}
	res.Released1 = true
	res.RefreshAfterRel = l.Refresh(ctx, cfg.TTL)
	p.Printf("released; Refresh on the released lease fails: %v", res.RefreshAfterRel)

	// Holding the lock again is a new acquisition.
	l2, err := m.Lock(ctx)
	if err != nil {
		return res, fmt.Errorf("relock: %w", err)
	}
	res.Relock, res.Fence2 = true, l2.Fence()
	p.Printf("locked again through the mutex: a new lease, fence %d > %d", res.Fence2, res.Fence1)
	return res, l2.Release(context.WithoutCancel(ctx))
}
