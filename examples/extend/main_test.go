package main

import (
	"context"
	"errors"
	"regexp"
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

var extendLine = regexp.MustCompile(`halfway, (\S+) left; Extend\(1s\): (\S+) left`)

// Both tasks outlast the TTL and keep the lock (run fails otherwise), and
// Extend adds a whole TTL to what was left.
func TestRun(t *testing.T) {
	backends(t, func(t *testing.T, c *redis.Client) {
		var out strings.Builder
		if err := run(context.Background(), c, &out); err != nil {
			t.Fatal(err)
		}
		t.Log("\n" + out.String())
		m := extendLine.FindStringSubmatch(out.String())
		if m == nil {
			t.Fatal("no Extend line")
		}
		left, _ := time.ParseDuration(m[1])
		after, _ := time.ParseDuration(m[2])
		if left >= 500*time.Millisecond || after-left < 900*time.Millisecond || after-left > 1010*time.Millisecond { // both rounded to 10ms
			t.Fatalf("TTL %v before Extend(1s), %v after", left, after)
		}
	})
}

// Without the Extend, the same task loses its lease at the TTL.
func TestWithoutExtend(t *testing.T) {
	backends(t, func(t *testing.T, c *redis.Client) {
		m, err := mutex.New(c, "extend:resource", mutex.WithTTL(ttl), mutex.WithAutoRenew(false))
		if err != nil {
			t.Fatal(err)
		}
		l, err := m.Lock(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if err := work(l, 1200*time.Millisecond); !errors.Is(err, lease.ErrExpired) {
			t.Fatalf("got %v, want ErrExpired", err)
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
