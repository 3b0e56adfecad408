// Command workers runs a group of workers under one lock. There is no
// redis-py original: Python code checks lock.owned() in every thread (see
// the expiry example), or does not check at all. In Go the lease gives a
// context, canceled the moment the lease is lost: an errgroup derived from
// it stops every worker then, and returns the lease's error
// (context.Cause: lease.ErrNotHeld, lease.ErrExpired).
//
// Run it with `go run ./examples/workers` (an in-process miniredis), or with
// REDIS_ADDR=host:port set to use a real server.
package main

import (
	"context"
	"errors"
	"io"
	"log"
	"os"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
)

const (
	name     = "workers:job"
	unitsKey = "{workers:job}:units" // work done, counted in Redis
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
	err = job(ctx, client, l, 5)
	units, _ := client.Get(ctx, unitsKey).Int()
	logf("4 workers × 5 units: the group returned %v after %d units", err, units)
	if err = errors.Join(err, l.Release(ctx)); err != nil {
		return err
	}

	if l, err = m.Lock(ctx); err != nil {
		return err
	}
	var delErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(300 * time.Millisecond)
		delErr = client.Del(ctx, "redlease:{"+name+"}").Err() // someone breaks the lock
	}()
	err = job(ctx, client, l, 1000)
	wg.Wait()
	units, _ = client.Get(ctx, unitsKey).Int()
	logf("4 workers × 1000 units, lock deleted after 300ms: the group returned %v after %d units", err, units)
	return delErr // l was lost: nothing to release
}

// job runs 4 workers under l, each doing n units of work. They all stop
// when the lease is lost, and job returns the lease's error.
func job(ctx context.Context, client *redis.Client, l *lease.Lease, n int) error {
	if err := client.Del(ctx, unitsKey).Err(); err != nil {
		return err
	}
	lctx, cancel := l.Context(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(lctx)
	for range 4 {
		g.Go(func() error {
			for range n {
				select {
				case <-gctx.Done():
					return context.Cause(gctx) // why: the lease's error if it was lost
				case <-time.After(50 * time.Millisecond): // a unit of work
				}
				if err := client.Incr(gctx, unitsKey).Err(); err != nil {
					if gctx.Err() != nil {
						return context.Cause(gctx)
					}
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
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
