package main

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/redlease/redlease/internal/leaktest"
	"github.com/redlease/redlease/internal/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, leaktest.Options()...) }

// Exactly one worker works, the others find the lock busy, and the lock is
// free at the end.
func TestTryLock(t *testing.T) {
	backends(t, func(t *testing.T, c *redis.Client) {
		var out strings.Builder
		if err := run(context.Background(), c, &out); err != nil {
			t.Fatal(err)
		}
		t.Log("\n" + out.String())
		if got := strings.Count(out.String(), "got the lock"); got != 1 {
			t.Fatalf("%d workers got the lock, want 1", got)
		}
		if got := strings.Count(out.String(), "could not acquire"); got != workers-1 {
			t.Fatalf("%d workers found the lock busy, want %d", got, workers-1)
		}
		if n, err := c.Exists(context.Background(), "redlease:{trylock:resource}").Result(); err != nil || n != 0 {
			t.Fatalf("lock key left behind: %d, %v", n, err)
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
