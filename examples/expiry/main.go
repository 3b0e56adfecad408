// Command expiry ports redis-py's lock expiry handling:
//
//	lock = r.lock("resource", timeout=2)
//	lock.acquire()
//	for step in range(20):
//	    if not lock.owned():
//	        print("lost the lock, stopping")
//	        break
//	    do_step()               # 0.1s
//
// owned() costs a round trip per step and is asked only between steps: a
// lock lost during a step goes unnoticed until it ends. Here the task
// selects on the lease's Lost channel, which closes as soon as the loss is
// known, and stops there. Two losses are shown: the key deleted behind the
// holder's back (an operator, a failover that lost it), which the next
// renewal finds (lease.ErrNotHeld); and a lease without renewal whose TTL
// runs out, noticed at its local deadline with no call to Redis
// (lease.ErrExpired).
//
// Run it with `go run ./examples/expiry` (an in-process miniredis), or with
// REDIS_ADDR=host:port set to use a real server.
package main

import (
	"context"
	"io"
	"log"
	"os"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
)

const (
	name  = "expiry:resource"
	steps = 20
)

func run(ctx context.Context, client *redis.Client, out io.Writer) error {
	logf := log.New(out, "", 0).Printf
	m, err := mutex.New(client, name, mutex.WithTTL(time.Second), mutex.WithRenewInterval(100*time.Millisecond))
	if err != nil {
		return err
	}
	l, err := m.Lock(ctx)
	if err != nil {
		return err
	}
	logf("key deleted: locked, renewed every 100ms; %d steps of 100ms to do", steps)
	var deleted time.Time
	var delErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(450 * time.Millisecond)
		deleted = time.Now()
		delErr = client.Del(ctx, "redlease:{"+name+"}").Err() // someone breaks the lock
	}()
	n := task(l, steps)
	stopped := time.Now()
	wg.Wait()
	if delErr != nil {
		return delErr
	}
	logf("key deleted: stopped after %d of %d steps, %v after the deletion: %v", n, steps, stopped.Sub(deleted).Round(time.Millisecond), l.Err())

	m, err = mutex.New(client, name, mutex.WithTTL(500*time.Millisecond), mutex.WithAutoRenew(false))
	if err != nil {
		return err
	}
	if l, err = m.Lock(ctx); err != nil {
		return err
	}
	logf("TTL runs out: locked for 500ms, no renewal; %d steps of 100ms to do", steps)
	n = task(l, steps)
	logf("TTL runs out: stopped after %d of %d steps, %v after the lease's deadline: %v", n, steps, time.Since(l.ValidUntil()).Round(time.Millisecond), l.Err())
	return nil // a lost lease has nothing to release; the key expires in Redis a few ms after its deadline
}

// task does up to n steps of 100ms and returns how many it finished. It
// stops the moment the lease is lost, even in the middle of a step.
func task(l *lease.Lease, n int) int {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := range n {
		select {
		case <-l.Lost():
			return i
		case <-tick.C: // a step done
		}
	}
	return n
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
