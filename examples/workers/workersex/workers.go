// Package workersex is the worker-group example: an errgroup of workers
// shares the lease's context (Lease.Context), so every worker stops when the
// lease is lost, and the group returns the lease's error.
//
// There is no single redis-py original; it is what redis-py users build
// around lock.owned() checks in every thread (see the expiry example), or
// what they skip. In Go the lease is a context: work done under the lock
// takes lctx, lctx is canceled the moment the lease ends, and
// context.Cause(lctx) says why (lease.ErrNotHeld, lease.ErrExpired).
package workersex

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/redlease/redlease/examples/internal/exredis"
	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
)

// Config sets the size and timing of the run.
type Config struct {
	Workers   int
	Unit      time.Duration // one unit of work (followed by an INCR)
	Units     int           // per worker in the case that completes
	TTL       time.Duration
	Renew     time.Duration // renewal period: bounds how late a deletion is seen
	LoseAfter time.Duration // when the key is deleted; also the no-renewal TTL
}

// Default is the configuration of `go run ./examples/workers`.
func Default() Config {
	return Config{Workers: 4, Unit: 50 * time.Millisecond, Units: 6, TTL: time.Second, Renew: 100 * time.Millisecond, LoseAfter: 500 * time.Millisecond}
}

// Case is the outcome of one run of the group.
type Case struct {
	Name      string
	Want      error // what the group must return (nil: success)
	Err       error // what g.Wait returned
	Cause     error // context.Cause of the lease's context after the group returned
	Units     int64 // units of work done, all workers together
	LostAt    time.Duration
	StoppedAt time.Duration // when g.Wait returned, from the start
	Latency   time.Duration // StoppedAt - LostAt (lost cases)
	Limit     time.Duration // bound on Latency
}

// Check says whether the case went as it should.
func (c Case) Check() error {
	var k exredis.Check
	if c.Want == nil {
		k.Expect(c.Err == nil, "%s: group returned %v, want nil", c.Name, c.Err)
		return k.Err()
	}
	k.Expect(errors.Is(c.Err, c.Want), "%s: group returned %v, want %v", c.Name, c.Err, c.Want)
	k.Expect(errors.Is(c.Cause, c.Want), "%s: context.Cause %v, want %v", c.Name, c.Cause, c.Want)
	k.Expect(c.Latency >= 0 && c.Latency <= c.Limit, "%s: the group stopped %v after the loss, want within %v", c.Name, c.Latency, c.Limit)
	return k.Err()
}

// Verdict is a one-line summary of c, ending in OK or FAILED.
func (c Case) Verdict() string {
	s := fmt.Sprintf("workers, %s: group returned %v after %d units of work", c.Name, c.Err, c.Units)
	if c.Want != nil {
		s += fmt.Sprintf(", %v after the loss", c.Latency.Round(time.Millisecond))
	}
	if err := c.Check(); err != nil {
		return s + " — FAILED: " + err.Error()
	}
	return s + " — OK"
}

// Result holds the three cases.
type Result struct{ Completed, Deleted, Expired Case }

// Check checks every case.
func (r Result) Check() error {
	return errors.Join(r.Completed.Check(), r.Deleted.Check(), r.Expired.Check())
}

const (
	name     = "workers:job"
	unitsKey = "{workers:job}:units"
)

// Run runs the group three times: to completion, with the key deleted
// midway, and with a lease that is not renewed.
func Run(ctx context.Context, client *redis.Client, out io.Writer, cfg Config) (Result, error) {
	var res Result
	var err error
	if res.Completed, err = runCase(ctx, client, out, cfg, "completes", nil); err != nil {
		return res, err
	}
	if res.Deleted, err = runCase(ctx, client, out, cfg, "key deleted", lease.ErrNotHeld); err != nil {
		return res, err
	}
	res.Expired, err = runCase(ctx, client, out, cfg, "lease expired", lease.ErrExpired)
	return res, err
}

func runCase(ctx context.Context, client *redis.Client, out io.Writer, cfg Config, caseName string, want error) (Case, error) {
	p := exredis.NewPrinter(out)
	fmt.Fprintf(out, "workers, %s:\n", caseName)
	c := Case{Name: caseName, Want: want, Limit: cfg.Renew + 100*time.Millisecond}
	opts := []mutex.Option{mutex.WithTTL(cfg.TTL), mutex.WithRenewInterval(cfg.Renew)}
	if want == lease.ErrExpired {
		// Nobody renews: the lease ends at its deadline, as when Redis is
		// unreachable for longer than the TTL.
		opts = []mutex.Option{mutex.WithTTL(cfg.LoseAfter), mutex.WithAutoRenew(false)}
		c.Limit = 100 * time.Millisecond
	}
	m, err := mutex.New(client, name, opts...)
	if err != nil {
		return c, err
	}
	if err := client.Del(ctx, unitsKey).Err(); err != nil {
		return c, err
	}
	defer client.Del(context.WithoutCancel(ctx), unitsKey) // leave no data behind
	l, err := m.Lock(ctx)
	if err != nil {
		return c, err
	}
	defer func() { _ = l.Release(context.WithoutCancel(ctx)) }()
	start := time.Now()
	p.Printf("locked (fence %d); starting %d workers", l.Fence(), cfg.Workers)

	var lostAt atomic.Int64 // ns since start
	if want == lease.ErrNotHeld {
		admin := exredis.Another(client)
		defer admin.Close()
		done := make(chan struct{})
		timer := time.AfterFunc(cfg.LoseAfter, func() {
			defer close(done)
			lostAt.Store(int64(time.Since(start)))
			err := admin.Del(context.WithoutCancel(ctx), "redlease:{"+name+"}").Err()
			p.Printf("operator: DEL of the lock key (err=%v)", err)
		})
		defer func() {
			if !timer.Stop() {
				<-done
			}
		}()
	} else if want == lease.ErrExpired {
		lostAt.Store(int64(l.ValidUntil().Sub(start)))
	}

	// The group's context derives from the lease's: a lost lease cancels
	// every worker, with the lease's error as the cause.
	lctx, cancel := l.Context(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(lctx)
	var units atomic.Int64
	for w := 1; w <= cfg.Workers; w++ {
		g.Go(func() error {
			n := 0
			for want != nil || n < cfg.Units {
				if err := exredis.Sleep(gctx, cfg.Unit); err != nil {
					return err // context.Cause: the lease's error
				}
				if err := client.Incr(gctx, unitsKey).Err(); err != nil {
					if gctx.Err() != nil {
						// The call failed because the context was canceled:
						// report why, not "context canceled".
						return context.Cause(gctx)
					}
					return err
				}
				n++
				units.Add(1)
			}
			return nil
		})
	}
	c.Err = g.Wait()
	stopped := time.Since(start)
	c.Cause = context.Cause(lctx) // nil while the lease is held
	c.Units = units.Load()
	if want != nil {
		c.LostAt, c.StoppedAt = time.Duration(lostAt.Load()), stopped
		c.Latency = c.StoppedAt - c.LostAt
		p.Printf("group returned %q after %d units; every worker stopped %v after the loss; context.Cause(lctx): %q", c.Err, c.Units, c.Latency.Round(time.Millisecond), c.Cause)
		return c, nil
	}
	if err := l.Release(context.WithoutCancel(ctx)); err != nil {
		return c, err
	}
	p.Printf("group returned %v after %d units; lock released", c.Err, c.Units)
	return c, nil
}
