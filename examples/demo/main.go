// Command demo is the short tour of redlease run by `make demo`: each step
// says what it does, then what happened. It runs against an in-process
// miniredis, or against the Redis at REDIS_ADDR when that is set, and exits
// with an error status only if a call fails.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/multilock"
	"github.com/redlease/redlease/mutex"
	"github.com/redlease/redlease/rwmutex"
	"github.com/redlease/redlease/semaphore"
)

func run(ctx context.Context, client *redis.Client, out io.Writer) error {
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	m, err := mutex.New(client, "demo:report", mutex.WithTTL(2*time.Second))
	if err != nil {
		return err
	}

	say("1. Lock waits until the lock is free (or its ctx ends) and returns a lease.")
	l, err := m.Lock(ctx)
	if err != nil {
		return err
	}
	say("   holding %q with fence %d; the lease renews itself until Release", l.Name(), l.Fence())

	say("2. TryLock makes one attempt. The lock is held (by the lease of step 1):")
	_, err = m.TryLock(ctx)
	say("   %v (mutex.ErrLocked: %v)", err, errors.Is(err, mutex.ErrLocked))

	say("3. Lock with a 200ms deadline: the ctx bounds the wait.")
	wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err = m.Lock(wctx)
	cancel()
	say("   gave up: context.DeadlineExceeded %v, mutex.ErrLocked %v", errors.Is(err, context.DeadlineExceeded), errors.Is(err, mutex.ErrLocked))

	say("4. Extend adds to the remaining TTL, Refresh sets it.")
	before, err := l.TTL(ctx)
	if err != nil {
		return err
	}
	if err := l.Extend(ctx, 3*time.Second); err != nil {
		return err
	}
	extended, err := l.TTL(ctx)
	if err != nil {
		return err
	}
	if err := l.Refresh(ctx, time.Second); err != nil {
		return err
	}
	refreshed, err := l.TTL(ctx)
	if err != nil {
		return err
	}
	r := func(d time.Duration) time.Duration { return d.Round(100 * time.Millisecond) }
	say("   TTL %v; after Extend(3s): %v; after Refresh(1s): %v", r(before), r(extended), r(refreshed))

	say("5. Release, and lock again: the new lease has a larger fence.")
	if err := l.Release(ctx); err != nil {
		return err
	}
	lost, err := m.Lock(ctx)
	if err != nil {
		return err
	}
	say("   fence %d, then %d", l.Fence(), lost.Fence())

	say("6. Lost closes when the lease is lost. Someone deletes the key; the next renewal notices.")
	if err := client.Del(ctx, "redlease:{demo:report}").Err(); err != nil {
		return err
	}
	start := time.Now()
	<-lost.Lost()
	say("   Lost closed after %v; Err: %v", time.Since(start).Round(10*time.Millisecond), lost.Err())

	say("7. Guard writes to Redis only while the lease holds the lock.")
	holder, err := m.Lock(ctx)
	if err != nil {
		return err
	}
	write := func(v string) func(redis.Pipeliner) error {
		return func(pipe redis.Pipeliner) error { return pipe.Set(ctx, "{demo:report}:data", v, 0).Err() }
	}
	say("   the holder (fence %d): %v", holder.Fence(), outcome(holder.Guard(ctx, write("fresh")), "written"))
	say("   the lost lease (fence %d): %v", lost.Fence(), outcome(lost.Guard(ctx, write("stale")), "written"))
	say("   (storage outside Redis does the same with fences: it refuses %d once it has seen %d)", lost.Fence(), holder.Fence())
	if err := holder.Release(ctx); err != nil {
		return err
	}

	say("8. A multilock takes several names at once, all or none, in one order: no deadlock.")
	ab, err := multilock.New(client, []string{"demo:bob", "demo:alice"})
	if err != nil {
		return err
	}
	bc, err := multilock.New(client, []string{"demo:carol", "demo:bob"})
	if err != nil {
		return err
	}
	both, err := ab.Lock(ctx)
	if err != nil {
		return err
	}
	say("   holding %v (fences %d and %d)", both.Names(), both.FenceOf("demo:alice"), both.FenceOf("demo:bob"))
	_, err = bc.TryLock(ctx)
	say("   TryLock of %v: %v", bc.Names(), err)
	carol, err := mutex.New(client, "demo:carol")
	if err != nil {
		return err
	}
	locked, err := carol.Locked(ctx)
	say("   so it took none of its names: demo:carol locked: %v", locked)
	if err := errors.Join(err, both.Release(ctx)); err != nil {
		return err
	}

	say("9. A semaphore with limit 2: two Acquire(1) hold a unit each; a third TryAcquire fails.")
	sem, err := semaphore.New(client, "demo:exports", 2)
	if err != nil {
		return err
	}
	u1, err := sem.Acquire(ctx, 1)
	if err != nil {
		return err
	}
	u2, err := sem.Acquire(ctx, 1)
	if err != nil {
		return err
	}
	_, err = sem.TryAcquire(ctx, 1)
	var np *semaphore.NoPermitsError
	if !errors.As(err, &np) {
		return fmt.Errorf("TryAcquire with no free unit: %w", err)
	}
	say("   %v (semaphore.ErrNoPermits: %v; free: %d)", err, errors.Is(err, semaphore.ErrNoPermits), np.Free)
	if err := errors.Join(u1.Release(ctx), u2.Release(ctx)); err != nil {
		return err
	}

	say("10. A read-write lock: readers share it, a writer waits for them.")
	rw, err := rwmutex.New(client, "demo:catalog")
	if err != nil {
		return err
	}
	r1, err := rw.RLock(ctx)
	if err != nil {
		return err
	}
	r2, err := rw.RLock(ctx)
	if err != nil {
		return err
	}
	say("   two readers hold at once (fences %d and %d)", r1.Fence(), r2.Fence())
	_, err = rw.TryLock(ctx)
	say("   TryLock: %v (rwmutex.ErrLocked: %v)", err, errors.Is(err, rwmutex.ErrLocked))
	if err := errors.Join(r1.Release(ctx), r2.Release(ctx)); err != nil {
		return err
	}
	w, err := rw.Lock(ctx)
	if err != nil {
		return err
	}
	say("   after both Release, Lock got the write hold (fence %d)", w.Fence())
	return w.Release(ctx)
}

// outcome describes a write: ok, or refused and why.
func outcome(err error, ok string) string {
	if err != nil {
		return "refused: " + err.Error()
	}
	return ok
}

func main() {
	// go-redis logs "discarding bad PubSub connection" when a client is
	// closed while its wake-up subscription (kept 200 ms after the last
	// lease or waiter) is still open; the tour closes its client at once.
	redis.SetLogger(discardLogger{})
	addr := os.Getenv("REDIS_ADDR")
	client, closeRedis, err := connect(addr)
	if err == nil {
		if addr == "" {
			addr = "an in-process miniredis (set REDIS_ADDR=host:port for a real server)"
		}
		fmt.Printf("redlease tour, against %s\n\n", addr)
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

// discardLogger drops go-redis's internal log lines.
type discardLogger struct{}

func (discardLogger) Printf(context.Context, string, ...any) {}
