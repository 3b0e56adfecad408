package main

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/redlease/redlease/internal/leaktest"
	"github.com/redlease/redlease/internal/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, leaktest.Options()...) }

var (
	refreshLine = regexp.MustCompile(`work: (\S+) left; Refresh\(2s\): (\S+) left`)
	fences      = regexp.MustCompile(`fence (\d+)`)
)

// Refresh puts the TTL back to 2s, fails once the lease is released, and
// the next Lock is a new lease with a larger fence.
func TestRun(t *testing.T) {
	backends(t, func(t *testing.T, c *redis.Client) {
		var out strings.Builder
		if err := run(context.Background(), c, &out); err != nil {
			t.Fatal(err)
		}
		s := out.String()
		t.Log("\n" + s)
		m := refreshLine.FindStringSubmatch(s)
		if m == nil {
			t.Fatal("no Refresh line")
		}
		left, _ := time.ParseDuration(m[1])
		now, _ := time.ParseDuration(m[2])
		if left > 1100*time.Millisecond || now < 1900*time.Millisecond {
			t.Fatalf("TTL %v before Refresh(2s), %v after", left, now)
		}
		if !regexp.MustCompile(`Refresh now fails: .*lease: released`).MatchString(s) {
			t.Fatal("Refresh after Release did not fail with ErrReleased")
		}
		f := fences.FindAllStringSubmatch(s, -1)
		if len(f) != 2 {
			t.Fatalf("%d fences printed, want 2", len(f))
		}
		first, _ := strconv.Atoi(f[0][1])
		second, _ := strconv.Atoi(f[1][1])
		if second <= first {
			t.Fatalf("fences %d then %d, want larger", first, second)
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
