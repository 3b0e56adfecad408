package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/redlease/redlease/internal/leaktest"
	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/mutex"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, leaktest.Options()...) }

// Five workers, 200ms of work each, 5s to wait: every increment counts.
func TestRun(t *testing.T) {
	backends(t, func(t *testing.T, c *redis.Client) {
		var out strings.Builder
		if err := run(context.Background(), c, &out); err != nil {
			t.Fatal(err)
		}
		t.Log("\n" + out.String())
		if n, err := c.Get(context.Background(), counterKey).Int(); err != nil || n != 5 {
			t.Fatalf("counter %d, %v; want 5", n, err)
		}
		if strings.Contains(out.String(), "timed out") {
			t.Fatal("a worker timed out")
		}
	})
}

// A wait that times out reports the deadline and the busy lock, increments
// nothing and leaves the holder's lock alone.
func TestTimeout(t *testing.T) {
	backends(t, func(t *testing.T, c *redis.Client) {
		ctx := context.Background()
		m, err := mutex.New(c, "waittimeout:resource")
		if err != nil {
			t.Fatal(err)
		}
		holder, err := m.Lock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err = increment(ctx, c, m, 150*time.Millisecond)
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, mutex.ErrLocked) {
			t.Fatalf("got %v, want DeadlineExceeded and ErrLocked", err)
		}
		if waited := time.Since(start); waited < 150*time.Millisecond || waited > time.Second {
			t.Fatalf("waited %v for a 150ms deadline", waited)
		}
		if n, err := c.Exists(ctx, counterKey).Result(); err != nil || n != 0 {
			t.Fatalf("counter written after a timeout: %d, %v", n, err)
		}
		if ok, err := holder.Owned(ctx); err != nil || !ok {
			t.Fatalf("holder owns its lock: %v, %v", ok, err)
		}
		if err := holder.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if v, err := increment(ctx, c, m, time.Second); err != nil || v != 1 {
			t.Fatalf("after the release: %d, %v; want 1", v, err)
		}
	})
}

// backends runs fn against a real redis-server and against the example's
// embedded miniredis.
func backends(t *testing.T, fn func(t *testing.T, c *redis.Client)) {
	for _, name := range []string{"redis-server", "miniredis"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			addr := ""
			if name == "redis-server" {
				addr = redistest.Start(t).Addr
			}
			c, closeRedis, err := connect(addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(closeRedis)
			fn(t, c)
		})
	}
}
