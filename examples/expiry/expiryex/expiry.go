// Package expiryex is the lost-lock example: a task that selects on the
// lease's Lost channel between (and during) its steps, and stops the moment
// the lease is lost, instead of asking Redis before each step.
//
// It ports redis-py's "lock expiry handling":
//
//	lock = r.lock("resource", timeout=2)
//	lock.acquire()
//	for step in range(10):
//	    if not lock.owned():
//	        print("lost the lock, stopping")
//	        break
//	    do_step()               # 0.5s
//
// Where the original is sloppy: owned() is asked only between steps, so a
// lock lost during do_step goes unnoticed until the step ends and the rest
// of it runs unprotected; every check is a round trip; and the lock
// (timeout=2, no renewal) is bound to run out during a 5s task. Here the
// lease renews itself, its Lost channel closes as soon as the loss is known
// (the renewal finds the key gone, or the local validity deadline passes),
// and the task's steps select on it.
//
// Two losses are shown: the key deleted behind the holder's back (an
// operator, a failover that lost it): the next renewal gets ErrNotHeld; and
// a lease without renewal whose TTL runs out: ErrExpired at its deadline,
// without any call to Redis.
package expiryex

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
	TTL         time.Duration
	Renew       time.Duration // renewal period (bounds how late a deletion is noticed)
	Step        time.Duration
	Steps       int           // steps of the task: longer than DeleteAfter and than TTL
	DeleteAfter time.Duration // when the key is deleted in the first case
}

// Default is the configuration of `go run ./examples/expiry`.
func Default() Config {
	return Config{TTL: time.Second, Renew: 100 * time.Millisecond, Step: 100 * time.Millisecond, Steps: 20, DeleteAfter: 450 * time.Millisecond}
}

// Case is the outcome of one loss.
type Case struct {
	Name       string
	Steps      int           // steps the task was asked to do
	Done       int           // steps completed before it stopped
	Err        error         // the lease's error when the task stopped
	LostAt     time.Duration // when the loss happened (deletion, or the deadline), from the start
	StoppedAt  time.Duration // when the task stopped, from the start
	Latency    time.Duration // StoppedAt - LostAt
	MaxLatency time.Duration // the bound the latency must respect
	Want       error         // the error the lease must report
}

// Check says whether the case went as it should.
func (c Case) Check() error {
	var k exredis.Check
	k.Expect(errors.Is(c.Err, c.Want), "%s: lease error %v, want %v", c.Name, c.Err, c.Want)
	k.Expect(c.Done < c.Steps, "%s: the task did all %d steps", c.Name, c.Steps)
	k.Expect(c.Latency >= 0 && c.Latency <= c.MaxLatency, "%s: stopped %v after the loss, want within %v", c.Name, c.Latency, c.MaxLatency)
	return k.Err()
}

// Verdict is a one-line summary of c, ending in OK or FAILED.
func (c Case) Verdict() string {
	s := fmt.Sprintf("Lost channel, %s: stopped after %d of %d steps, %v after the loss (%v)", c.Name, c.Done, c.Steps, c.Latency.Round(time.Millisecond), c.Err)
	if err := c.Check(); err != nil {
		return s + " — FAILED: " + err.Error()
	}
	return s + " — OK"
}

// Result holds both cases.
type Result struct{ Deleted, Expired Case }

// Check checks both cases.
func (r Result) Check() error { return errors.Join(r.Deleted.Check(), r.Expired.Check()) }

const name = "expiry:resource"

// Run runs the task twice: the key deleted, then a lease left to expire.
func Run(ctx context.Context, client *redis.Client, out io.Writer, cfg Config) (Result, error) {
	var res Result
	var err error
	if res.Deleted, err = RunDeleted(ctx, client, out, cfg); err != nil {
		return res, err
	}
	res.Expired, err = RunExpired(ctx, client, out, cfg)
	return res, err
}

// RunDeleted: the lease renews itself; the key is deleted after
// cfg.DeleteAfter; the renewal finds it gone and the task stops.
func RunDeleted(ctx context.Context, client *redis.Client, out io.Writer, cfg Config) (Case, error) {
	p := exredis.NewPrinter(out)
	fmt.Fprintln(out, "key deleted while the task runs (renewal on):")
	c := Case{Name: "key deleted", Steps: cfg.Steps, Want: lease.ErrNotHeld,
		// Noticed at the next renewal; a step boundary adds nothing since
		// steps select on Lost. Allow for scheduling.
		MaxLatency: cfg.Renew + 100*time.Millisecond}
	m, err := mutex.New(client, name, mutex.WithTTL(cfg.TTL), mutex.WithRenewInterval(cfg.Renew))
	if err != nil {
		return c, err
	}
	l, err := m.Lock(ctx)
	if err != nil {
		return c, err
	}
	defer func() { _ = l.Release(context.WithoutCancel(ctx)) }()
	start := time.Now()
	p.Printf("locked; TTL %v renewed every %v; the task has %d steps of %v", cfg.TTL, cfg.Renew, cfg.Steps, cfg.Step)

	// Someone else deletes the key, as an operator or a failover might.
	deleted := make(chan time.Time, 1)
	admin := exredis.Another(client)
	defer admin.Close()
	delDone := make(chan struct{})
	timer := time.AfterFunc(cfg.DeleteAfter, func() {
		defer close(delDone)
		deleted <- time.Now() // the loss cannot be seen before the DEL is sent
		err := admin.Del(context.WithoutCancel(ctx), "redlease:{"+name+"}").Err()
		p.Printf("operator: DEL of the lock key (%v)", errOK(err))
	})
	defer func() {
		if !timer.Stop() {
			<-delDone // the deletion ran: wait for it to finish
		}
	}()

	c.Done, err = task(ctx, l, cfg.Steps, cfg.Step)
	stopped := time.Now()
	if err != nil {
		return c, err
	}
	c.Err = l.Err()
	c.StoppedAt = stopped.Sub(start)
	select {
	case at := <-deleted:
		c.LostAt = at.Sub(start)
	case <-time.After(time.Second):
		return c, fmt.Errorf("the task stopped (%v) but the key was never deleted", c.Err)
	}
	c.Latency = c.StoppedAt - c.LostAt
	p.Printf("task stopped after %d steps: %v, %v after the deletion", c.Done, c.Err, c.Latency.Round(time.Millisecond))
	return c, nil
}

// RunExpired: no renewal; the TTL runs out mid-task and the task stops at
// the lease's deadline, with no call to Redis.
func RunExpired(ctx context.Context, client *redis.Client, out io.Writer, cfg Config) (Case, error) {
	p := exredis.NewPrinter(out)
	fmt.Fprintln(out, "lease left to expire (renewal off):")
	c := Case{Name: "TTL ran out", Steps: cfg.Steps, Want: lease.ErrExpired, MaxLatency: 100 * time.Millisecond}
	m, err := mutex.New(client, name, mutex.WithTTL(cfg.TTL), mutex.WithAutoRenew(false))
	if err != nil {
		return c, err
	}
	l, err := m.Lock(ctx)
	if err != nil {
		return c, err
	}
	defer func() { _ = l.Release(context.WithoutCancel(ctx)) }()
	start := time.Now()
	deadline := l.ValidUntil()
	p.Printf("locked; TTL %v, no renewal: valid until +%v; the task has %d steps of %v", cfg.TTL, deadline.Sub(start).Round(time.Millisecond), cfg.Steps, cfg.Step)
	c.Done, err = task(ctx, l, cfg.Steps, cfg.Step)
	stopped := time.Now()
	if err != nil {
		return c, err
	}
	c.Err = l.Err()
	c.LostAt, c.StoppedAt = deadline.Sub(start), stopped.Sub(start)
	c.Latency = c.StoppedAt - c.LostAt
	p.Printf("task stopped after %d steps: %v, %v after the deadline", c.Done, c.Err, c.Latency.Round(time.Millisecond))
	return c, nil
}

// task does up to n steps of work and returns how many it completed. It
// returns early, with a nil error, when the lease is lost: a step in
// progress is abandoned at once (a real step would pass the lease's
// context, l.Context, to the calls it makes).
func task(ctx context.Context, l *lease.Lease, n int, step time.Duration) (int, error) {
	t := time.NewTimer(step)
	defer t.Stop()
	for i := 0; i < n; i++ {
		select {
		case <-l.Lost():
			return i, nil
		case <-ctx.Done():
			return i, context.Cause(ctx)
		case <-t.C: // one step of work done
			t.Reset(step)
		}
	}
	return n, nil
}

func errOK(err error) string {
	if err != nil {
		return err.Error()
	}
	return "ok"
}
