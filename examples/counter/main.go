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
	for _, how := range []string{"plain SET", "SET through Lease.Guard", "store that checks fences"} {
		if err := client.Del(ctx, counterKey).Err(); err != nil {
			return err
		}
		logf("%s:", how)
		got, err := stall(ctx, client, &store{how: how, client: client}, logf)
		if err != nil {
			return err
		}
		logf("  counter = %d (4 increments made)", got)
	}
	return nil
}

// stall plays the scenario on s and returns the final count.
func stall(ctx context.Context, client *redis.Client, s *store, logf func(string, ...any)) (got int64, err error) {
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
	v, err := s.get(ctx, a)
	if err != nil {
		return 0, err
	}
	logf("  A: locked (fence %d, TTL 300ms, no renewal), read %d, stalls", a.Fence(), v)
	// A is stalled (a GC pause, say) and runs nothing until B is done. B's
	// first Lock waits until A's key expires.
	for range 3 {
		if _, err := increment(ctx, m, s); err != nil {
			return 0, err
		}
	}
	logf("  B: 3 increments")
	if err := s.set(ctx, a, v+1); err != nil {
		logf("  A: wakes up, writes %d: refused (%v); increments again under a new lock", v+1, err)
		if _, err := increment(ctx, m, s); err != nil {
			return 0, err
		}
	} else {
		logf("  A: wakes up, writes %d: applied", v+1)
	}
	// a has expired: nothing to release. The final read is under the lock,
	// as every access.
	l, err := m.Lock(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, l.Release(ctx)) }()
	return s.get(ctx, l)
}

// increment adds one to the counter under a fresh lease of m and returns
// the new value.
func increment(ctx context.Context, m *mutex.Mutex, s *store) (v int64, err error) {
	l, err := m.Lock(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, l.Release(ctx)) }()
	if v, err = s.get(ctx, l); err != nil {
		return 0, err
	}
	return v + 1, s.set(ctx, l, v+1)
}

// store holds the counter, read and written by the holder of a lease: in
// Redis, or in a store outside Redis (a database) that checks fences.
type store struct {
	how    string
	client *redis.Client
	// The store outside Redis: it remembers the largest fence it has seen
	// and refuses older ones, on reads too (or a newer holder could read
	// before a stale write lands, then overwrite it). One goroutine here.
	value, fence int64
}

func (s *store) get(ctx context.Context, l *lease.Lease) (int64, error) {
	if s.how == "store that checks fences" {
		if err := s.admit(l); err != nil {
			return 0, err
		}
		return s.value, nil
	}
	v, err := s.client.Get(ctx, counterKey).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return v, err
}

func (s *store) set(ctx context.Context, l *lease.Lease, v int64) error {
	switch s.how {
	case "plain SET":
		return s.client.Set(ctx, counterKey, v, 0).Err() // whether l still holds the lock or not
	case "SET through Lease.Guard":
		// One MULTI/EXEC, which Redis applies only if l holds the lock key then.
		return l.Guard(ctx, func(pipe redis.Pipeliner) error {
			pipe.Set(ctx, counterKey, v, 0)
			return nil
		})
	}
	if err := s.admit(l); err != nil {
		return err
	}
	s.value = v
	return nil
}

// admit records l's fence, unless a larger one came first.
func (s *store) admit(l *lease.Lease) error {
	if l.Fence() < s.fence {
		return fmt.Errorf("store: fence %d is older than %d", l.Fence(), s.fence)
	}
	s.fence = l.Fence()
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
