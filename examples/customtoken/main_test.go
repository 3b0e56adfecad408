package main

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/redlease/redlease/internal/leaktest"
	"github.com/redlease/redlease/internal/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, leaktest.Options()...) }

// The key shows the owner's token; another owner is refused; the restarted
// owner takes over with a larger fence; nothing is left held.
func TestRun(t *testing.T) {
	backends(t, func(t *testing.T, c *redis.Client) {
		var out strings.Builder
		if err := run(context.Background(), c, &out); err != nil {
			t.Fatal(err)
		}
		s := out.String()
		t.Log("\n" + s)
		token := ownerToken()
		for _, want := range []string{
			`locked with token "` + token + `" (fence 1)`,
			`= "1:0:` + token + `"`,
			`another owner's TryLock: mutex: "customtoken:resource" is locked by another owner`,
		} {
			if !strings.Contains(s, want) {
				t.Fatalf("output lacks %q", want)
			}
		}
		// The other owner's busy attempt drew a fence too: the restart's is
		// larger than the first, not necessarily the next.
		if m := regexp.MustCompile(`locked again at once \(fence (\d+)\); the old lease owns it: false`).FindStringSubmatch(s); m == nil || m[1] == "1" {
			t.Fatalf("output lacks a re-obtain with a fence above 1: %v", m)
		}
		if n, err := c.Exists(context.Background(), lockKey).Result(); err != nil || n != 0 {
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
