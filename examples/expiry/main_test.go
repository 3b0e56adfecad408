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

var stopLine = regexp.MustCompile(`(?m)^(.*): stopped after (\d+) of 20 steps, (\S+) after the (?:deletion|lease's deadline): (.*)$`)

// In both cases the task stops early, soon after the loss, and the lease
// says why.
func TestRun(t *testing.T) {
	backends(t, func(t *testing.T, c *redis.Client) {
		var out strings.Builder
		if err := run(context.Background(), c, &out); err != nil {
			t.Fatal(err)
		}
		t.Log("\n" + out.String())
		lines := stopLine.FindAllStringSubmatch(out.String(), -1)
		if len(lines) != 2 {
			t.Fatalf("%d 'stopped' lines, want 2", len(lines))
		}
		for i, want := range []struct {
			name, err string
			within    time.Duration
		}{
			{"key deleted", "lease: not held", 100*time.Millisecond + 150*time.Millisecond}, // the next renewal, plus slack
			{"TTL runs out", "lease: expired", 100 * time.Millisecond},
		} {
			l := lines[i]
			done, _ := strconv.Atoi(l[2])
			late, err := time.ParseDuration(l[3])
			if l[1] != want.name || l[4] != want.err || err != nil || done >= steps || late < 0 || late > want.within {
				t.Fatalf("%q: want %s, stopped early with %q within %v", l[0], want.name, want.err, want.within)
			}
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
