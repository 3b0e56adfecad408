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
	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, leaktest.Options()...) }

func TestRun(t *testing.T) {
	backends(t, func(t *testing.T, c *redis.Client) {
		var out strings.Builder
		if err := run(context.Background(), c, &out); err != nil {
			t.Fatal(err)
		}
		s := out.String()
		t.Log("\n" + s)
		if !strings.Contains(s, "returned <nil> after 20 units") || !strings.Contains(s, "returned lease: not held after") {
			t.Fatal("want the first group to finish and the second to return lease: not held")
		}
	})
}

// A group under a held lease finishes its work; when the lease is lost
// (deleted key, or a TTL running out without renewal) every worker stops
// within a renewal interval or at the deadline, and the group returns why.
func TestJob(t *testing.T) {
	backends(t, func(t *testing.T, c *redis.Client) {
		ctx := context.Background()
		m, err := mutex.New(c, name, mutex.WithRenewInterval(30*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		l, err := m.Lock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := job(ctx, c, l, 3); err != nil {
			t.Fatal(err)
		}
		if n, err := c.Get(ctx, unitsKey).Int(); err != nil || n != 12 {
			t.Fatalf("units %d, %v; want 12", n, err)
		}
		time.AfterFunc(100*time.Millisecond, func() { c.Del(ctx, "redlease:{"+name+"}") })
		start := time.Now()
		if err := job(ctx, c, l, 1000); !errors.Is(err, lease.ErrNotHeld) {
			t.Fatalf("deleted key: got %v, want ErrNotHeld", err)
		}
		if d := time.Since(start); d > 100*time.Millisecond+30*time.Millisecond+200*time.Millisecond {
			t.Fatalf("the group stopped %v after the start, the key was deleted at 100ms", d)
		}

		m, err = mutex.New(c, name, mutex.WithTTL(200*time.Millisecond), mutex.WithAutoRenew(false))
		if err != nil {
			t.Fatal(err)
		}
		if l, err = m.Lock(ctx); err != nil {
			t.Fatal(err)
		}
		if err := job(ctx, c, l, 1000); !errors.Is(err, lease.ErrExpired) {
			t.Fatalf("no renewal: got %v, want ErrExpired", err)
		}
		if late := time.Since(l.ValidUntil()); late > 100*time.Millisecond {
			t.Fatalf("the group stopped %v after the lease's deadline", late)
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
