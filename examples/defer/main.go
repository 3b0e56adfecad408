// Command defer ports redis-py's context-manager usage:
//
//	with r.lock("resource", timeout=10):
//	    do_work()
//
// The Go spelling is Lock, then defer Release: the lock is released however
// the section ends, with an error or a panic. withLock below wraps it once,
// with two differences from __exit__: a failed release is joined to the
// section's error instead of replacing it, and the section's context is
// canceled the moment the lease is lost.
//
// Run it with `go run ./examples/defer` (an in-process miniredis), or with
// REDIS_ADDR=host:port set to use a real server.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/mutex"
)

// withLock runs section while holding m: "with lock:". section's ctx ends
// if the lease is lost. The lease is released whatever section does.
func withLock(ctx context.Context, m *mutex.Mutex, section func(ctx context.Context) error) (err error) {
	l, err := m.Lock(ctx)
	if err != nil {
		return err
	}
	// WithoutCancel: a canceled caller must not leave the key held until its TTL.
	defer func() { err = errors.Join(err, l.Release(context.WithoutCancel(ctx))) }()
	lctx, cancel := l.Context(ctx)
	defer cancel()
	return section(lctx)
}

func run(ctx context.Context, client *redis.Client, out io.Writer) error {
	logf := log.New(out, "", 0).Printf
	m, err := mutex.New(client, "defer:resource", mutex.WithTTL(time.Second)) // renewed every 333ms
	if err != nil {
		return err
	}
	report := func(how string, err error) error {
		locked, lerr := m.Locked(ctx)
		msg := strings.ReplaceAll(fmt.Sprint(err), "\n", "; ") // errors.Join puts each on its own line
		logf("section %s (error: %s); lock held afterwards: %v", how, msg, locked)
		return lerr
	}

	err = withLock(ctx, m, func(ctx context.Context) error {
		logf("working under the lock")
		return nil
	})
	if err := report("returned", err); err != nil {
		return err
	}

	err = withLock(ctx, m, func(ctx context.Context) error {
		return errors.New("the work failed")
	})
	if err := report("failed", err); err != nil {
		return err
	}

	err = func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("recovered: %v", r)
			}
		}()
		return withLock(ctx, m, func(ctx context.Context) error { panic("the work panicked") })
	}()
	if err := report("panicked", err); err != nil {
		return err
	}

	err = withLock(ctx, m, func(ctx context.Context) error {
		client.Del(ctx, "redlease:{defer:resource}") // someone breaks the lock
		<-ctx.Done()                                 // the next renewal finds the key gone
		return context.Cause(ctx)
	})
	return report("lost its lock", err)
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
