// Command counter ports redis-py's distributed counter:
//
//	def increment_counter():
//	    with r.lock("counter_lock", timeout=5):
//	        current = int(r.get("counter") or 0)
//	        r.set("counter", current + 1)
//
// The lock keeps GET and SET together only while the holder is fast. A holder
// that stalls past its TTL after its GET (a GC pause, a stalled VM) still
// makes its SET afterwards, over the increments the next holder made
// meanwhile. Below, worker A stalls that way while worker B increments three
// times, and A's late write is made three ways: a plain SET, which wipes out
// B's increments; through Lease.Guard, which Redis applies only while the
// lease still holds the lock; and to a store that refuses fences older than
// one it has seen. Refused, A increments again under a new lock: count right.
//
// Run it with `go run ./examples/counter` (an in-process miniredis), or with
// REDIS_ADDR=host:port set to use a real server.
package main

import (
	"context"
	"errors"
	"fmt"
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
	name       = "counter"
	counterKey = "{counter}:value" // in the lock's hash slot, so that Guard works on Cluster too
)

func run(ctx context.Context, client *redis.Client, out io.Writer) error {
	logf := log.New(out, "", 0).Printf
	for _, c := range []counter{redisCounter{client, false}, redisCounter{client, true}, &fencedStore{}} {
		if err := client.Del(ctx, counterKey).Err(); err != nil {
			return err
		}
		logf("%s:", c)
		got, err := stall(ctx, client, c, logf)
		if err != nil {
			return err
		}
		logf("  counter = %d (4 increments made)", got)
	}
	return nil
}

// stall plays the scenario on c and returns the final count.
func stall(ctx context.Context, client *redis.Client, c counter, logf func(string, ...any)) (got int64, err error) {
	short, err := mutex.New(client, name, mutex.WithTTL(300*time.Millisecond), mutex.WithAutoRenew(false))
	if err != nil {
		return 0, err
	}
	m, err := mutex.New(client, name)
	if err != nil {
		return 0, err
	}
	a, err := short.Lock(ctx)
	if err != nil {
		return 0, err
	}
	v, err := c.get(ctx, a)
	if err != nil {
		return 0, err
	}
	logf("  A: locked (fence %d, TTL 300ms, no renewal), read %d, stalls", a.Fence(), v)
	for range 3 { // B: its first Lock waits until A's key expires
		if _, err := increment(ctx, m, c); err != nil {
			return 0, err
		}
	}
	logf("  B: 3 increments")
	if err := c.set(ctx, a, v+1); err != nil {
		logf("  A: wakes up, writes %d: refused (%v); increments again under a new lock", v+1, err)
		if _, err := increment(ctx, m, c); err != nil {
			return 0, err
		}
	} else {
		logf("  A: wakes up, writes %d: applied", v+1)
	}
	l, err := m.Lock(ctx) // the final read, under the lock as every access
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, l.Release(ctx)) }()
	return c.get(ctx, l)
}

// increment adds one to c under a fresh lease of m and returns the new value.
func increment(ctx context.Context, m *mutex.Mutex, c counter) (v int64, err error) {
	l, err := m.Lock(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, l.Release(ctx)) }()
	if v, err = c.get(ctx, l); err != nil {
		return 0, err
	}
	return v + 1, c.set(ctx, l, v+1)
}

// A counter is read and written by the holder of a lease.
type counter interface {
	get(ctx context.Context, l *lease.Lease) (int64, error)
	set(ctx context.Context, l *lease.Lease, v int64) error
}

// redisCounter is the counter in Redis, set with a plain SET or through Guard.
type redisCounter struct {
	client *redis.Client
	guard  bool
}

func (c redisCounter) String() string {
	if c.guard {
		return "SET through Lease.Guard"
	}
	return "plain SET"
}

func (c redisCounter) get(ctx context.Context, _ *lease.Lease) (int64, error) {
	v, err := c.client.Get(ctx, counterKey).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return v, err
}

func (c redisCounter) set(ctx context.Context, l *lease.Lease, v int64) error {
	if !c.guard {
		return c.client.Set(ctx, counterKey, v, 0).Err() // whether l still holds the lock or not
	}
	// One MULTI/EXEC, which Redis applies only if l holds the lock key then.
	return l.Guard(ctx, func(pipe redis.Pipeliner) error {
		pipe.Set(ctx, counterKey, v, 0)
		return nil
	})
}

// fencedStore stands for storage outside Redis (a database) that remembers
// the largest fence it has seen and refuses older ones; on reads too, or a
// newer holder could read before a stale write lands, then overwrite it.
type fencedStore struct {
	mu           sync.Mutex
	value, fence int64
}

func (s *fencedStore) String() string { return "a store that checks fences" }

func (s *fencedStore) get(_ context.Context, l *lease.Lease) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.admit(l.Fence()); err != nil {
		return 0, err
	}
	return s.value, nil
}

func (s *fencedStore) set(_ context.Context, l *lease.Lease, v int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.admit(l.Fence()); err != nil {
		return err
	}
	s.value = v
	return nil
}

// admit records fence, unless a larger one came first. s.mu is held.
func (s *fencedStore) admit(fence int64) error {
	if fence < s.fence {
		return fmt.Errorf("store: fence %d is older than %d", fence, s.fence)
	}
	s.fence = fence
	return nil
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
