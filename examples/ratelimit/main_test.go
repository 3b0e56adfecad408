package main

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/redlease/redlease/internal/leaktest"
	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
	"github.com/redlease/redlease/semaphore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, leaktest.Options()...) }

const semKey = "redlease:{" + name + "}:sem"

// The example runs to the end: at most 2 jobs at once, then the wiped
// semaphore cancels both long jobs with ErrNotHeld well before their 5s.
func TestRateLimit(t *testing.T) {
	backends(t, func(t *testing.T, c *redis.Client) {
		var out strings.Builder
		if err := run(context.Background(), c, &out); err != nil {
			t.Fatal(err)
		}
		t.Log("\n" + out.String())
		for _, want := range []string{"returned <nil>; at most 2 ran at once", "returned lease", "not held"} {
			if !strings.Contains(out.String(), want) {
				t.Fatalf("output lacks %q", want)
			}
		}
		if strings.Contains(out.String(), "3 at once") {
			t.Fatal("3 jobs ran at once")
		}
		if n, err := c.Exists(context.Background(), semKey).Result(); err != nil || n != 0 {
			t.Fatalf("semaphore key left behind: %d, %v", n, err)
		}
	})
}

// Many short jobs: never more than limit at once, and the limit is reached.
func TestJobsBounded(t *testing.T) {
	backends(t, func(t *testing.T, c *redis.Client) {
		sem := newSem(t, c)
		var running, peak, done atomic.Int64
		err := jobs(context.Background(), sem, 20, func(ctx context.Context, _ int) error {
			n := running.Add(1)
			defer running.Add(-1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			defer done.Add(1)
			return sleep(ctx, 20*time.Millisecond)
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := done.Load(); got != 20 {
			t.Fatalf("%d jobs done, want 20", got)
		}
		if got := peak.Load(); got != limit {
			t.Fatalf("at most %d jobs ran at once, want %d", got, limit)
		}
	})
}

// A job whose unit is taken away is canceled within a renewal interval and
// the group returns lease.ErrNotHeld.
func TestLostLeaseCancelsJob(t *testing.T) {
	backends(t, func(t *testing.T, c *redis.Client) {
		sem := newSem(t, c)
		ctx := context.Background()
		start := time.Now()
		err := jobs(ctx, sem, 1, func(ctx context.Context, _ int) error {
			if err := c.Del(ctx, semKey).Err(); err != nil {
				return err
			}
			return sleep(ctx, 5*time.Second)
		})
		if !errors.Is(err, lease.ErrNotHeld) {
			t.Fatalf("got %v, want lease.ErrNotHeld", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("the job ran %v after its unit was gone", d)
		}
	})
}

func newSem(t *testing.T, c *redis.Client) *semaphore.Semaphore {
	t.Helper()
	sem, err := semaphore.New(c, name, limit, mutex.WithTTL(time.Second), mutex.WithRenewInterval(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	return sem
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
