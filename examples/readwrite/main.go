// Command readwrite shares a configuration among readers and a writer across
// processes with a read-write lock. There is no redis-py original (redis-py
// has no read-write lock; Python code takes one exclusive lock for reads too,
// so readers wait for each other). Here readers hold read leases of the
// rwmutex "cfg" and read the Redis key "{cfg}:config" together; a writer
// takes the write lease, which waits until the readers are gone and keeps new
// ones out, and writes the new config with lease.Guard: the write is applied
// only if the write hold is still there at that moment. The config key shares
// the lock's hash tag, so it is in the lock's hash slot, as Guard needs on
// Redis Cluster.
//
// Four readers each read the config three times while a writer updates it
// three times; at the end the config is read once more. Guard on a read lease
// is refused: a read hold is shared, so it guards nothing.
//
// Run it with `go run ./examples/readwrite` (an in-process miniredis), or with
// REDIS_ADDR=host:port set to use a real server.
package main

import (
	"context"
	"errors"
	"io"
	"log"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
	"github.com/redlease/redlease/rwmutex"
)

const (
	name      = "cfg"
	configKey = "{" + name + "}:config" // the lock's hash tag: the lock's slot
)

func run(ctx context.Context, client *redis.Client, out io.Writer) error {
	logf := log.New(out, "", 0).Printf
	rw, err := rwmutex.New(client, name,
		mutex.WithTTL(time.Second), mutex.WithRenewInterval(100*time.Millisecond))
	if err != nil {
		return err
	}

	if _, err := update(ctx, rw, client, nil); err != nil { // the first config
		return err
	}
	st, err := session(ctx, rw, client, 4, 3, 3, logf)
	logf("4 readers, 3 reads each; 3 updates: returned %v", err)
	if err != nil {
		return err
	}
	logf("readers at once: at most %d; a reader and the writer at once: %d times; last write %q",
		st.peakReaders, st.mixed.Load(), st.lastWrite)

	r, err := rw.RLock(ctx)
	if err != nil {
		return err
	}
	cfg, err := client.Get(ctx, configKey).Result()
	gerr := r.Guard(ctx, func(p redis.Pipeliner) error { return p.Set(ctx, configKey, "by a reader", 0).Err() })
	logf("final config %q; Guard on a read lease: %v (ErrInvalid: %v)", cfg, gerr, errors.Is(gerr, lease.ErrInvalid))
	return errors.Join(err, r.Release(ctx))
}

// stats is what a session saw: each side counts itself in while it holds.
type stats struct {
	readers, writers atomic.Int64
	peakReaders      int64
	peak             atomic.Int64
	mixed            atomic.Int64 // a reader and a writer held at once (never)
	lastWrite        string
}

// session runs readers goroutines that each read the config reads times
// under a read lease, and a writer that updates it writes times under the
// write lease, then reports what it saw.
func session(ctx context.Context, rw *rwmutex.RWMutex, client *redis.Client, readers, reads, writes int, logf func(string, ...any)) (*stats, error) {
	st := &stats{}
	g, gctx := errgroup.WithContext(ctx)
	for i := range readers {
		g.Go(func() error {
			for range reads {
				cfg, err := read(gctx, rw, client, st)
				if err != nil {
					return err
				}
				logf("reader %d: %q", i+1, cfg)
			}
			return nil
		})
	}
	g.Go(func() error {
		for range writes {
			if err := sleep(gctx, 60*time.Millisecond); err != nil {
				return err
			}
			v, err := update(gctx, rw, client, st)
			if err != nil {
				return err
			}
			st.lastWrite = v
			logf("writer: %q", v)
		}
		return nil
	})
	err := g.Wait()
	st.peakReaders = st.peak.Load()
	return st, err
}

// read returns the config, read under a read lease that it holds for 50ms
// (the time the reader spends on what it read). st, if not nil, counts the
// reader in while it holds.
func read(ctx context.Context, rw *rwmutex.RWMutex, client *redis.Client, st *stats) (string, error) {
	l, err := rw.RLock(ctx) // waits while a writer holds or waits
	if err != nil {
		return "", err
	}
	defer l.Release(ctx) //nolint:errcheck // a loss shows in the read's error
	lctx, cancel := l.Context(ctx)
	defer cancel()
	if st != nil {
		n := st.readers.Add(1)
		defer st.readers.Add(-1)
		for p := st.peak.Load(); n > p && !st.peak.CompareAndSwap(p, n); p = st.peak.Load() {
		}
		if st.writers.Load() > 0 {
			st.mixed.Add(1)
		}
	}
	cfg, err := client.Get(lctx, configKey).Result()
	if err != nil && err != redis.Nil {
		return "", err
	}
	return cfg, sleep(lctx, 50*time.Millisecond)
}

// update takes the write lease and writes the next version of the config
// with Guard, which applies the SET only while the write hold is there. It
// returns the config written. st, if not nil, counts the writer in while it
// holds.
func update(ctx context.Context, rw *rwmutex.RWMutex, client *redis.Client, st *stats) (string, error) {
	l, err := rw.Lock(ctx) // waits for the readers to leave; new ones wait for it
	if err != nil {
		return "", err
	}
	next, err := write(ctx, l, client, st)
	return next, errors.Join(err, l.Release(ctx))
}

func write(ctx context.Context, l *lease.Lease, client *redis.Client, st *stats) (string, error) {
	if st != nil { // counted out before the release
		st.writers.Add(1)
		defer st.writers.Add(-1)
		if st.readers.Load() > 0 {
			st.mixed.Add(1)
		}
	}
	cfg, err := client.Get(ctx, configKey).Result()
	if err != nil && err != redis.Nil {
		return "", err
	}
	next := "version=" + strconv.Itoa(version(cfg)+1)
	return next, l.Guard(ctx, func(p redis.Pipeliner) error { return p.Set(ctx, configKey, next, 0).Err() })
}

// version is the N of "version=N", 0 for anything else.
func version(cfg string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(cfg, "version="))
	return n
}

// sleep waits d, or returns why ctx ended first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
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
