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

// Locked follows the name, Owned the lease, whoever asks.
func TestRun(t *testing.T) {
	backends(t, func(t *testing.T, c *redis.Client) {
		var out strings.Builder
		if err := run(context.Background(), c, &out); err != nil {
			t.Fatal(err)
		}
		want := `nobody holds it:              locked=false
I hold it, a monitor asks:    locked=true  owned=true
I released, another holds it: locked=true  owned=false
nobody holds it:              locked=false owned=false
`
		if out.String() != want {
			t.Fatalf("got\n%s\nwant\n%s", out.String(), want)
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
