package main

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/redlease/redlease/internal/leaktest"
	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, leaktest.Options()...) }

var counts = regexp.MustCompile(`counter = (\d+)`)

// The plain SET loses B's three increments; Guard and the fenced store
// refuse A's late write, and A's retry makes the count exact.
func TestRun(t *testing.T) {
	backends(t, func(t *testing.T, c *redis.Client) {
		var out strings.Builder
		if err := run(context.Background(), c, &out); err != nil {
			t.Fatal(err)
		}
		s := out.String()
		t.Log("\n" + s)
		var got []string
		for _, m := range counts.FindAllStringSubmatch(s, -1) {
			got = append(got, m[1])
		}
		if strings.Join(got, ",") != "1,4,4" {
			t.Fatalf("counts %v, want 1 (plain SET), 4 (Guard), 4 (fences)", got)
		}
		if strings.Count(s, "writes 1: applied") != 1 || strings.Count(s, "writes 1: refused") != 2 {
			t.Fatal("want the late write applied once (plain SET) and refused twice")
		}
	})
}

// Guard and the fenced store also refuse a holder that still believes it
// holds the lock, when only Redis knows that another holds it now (a pause
// between the local check and the write).
func TestRefusedByRedis(t *testing.T) {
	backends(t, func(t *testing.T, c *redis.Client) {
		ctx := context.Background()
		m, err := mutex.New(c, name, mutex.WithAutoRenew(false))
		if err != nil {
			t.Fatal(err)
		}
		a, err := m.Lock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Del(ctx, "redlease:{"+name+"}").Err(); err != nil { // A's lock is broken
			t.Fatal(err)
		}
		b, err := m.Lock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Release(ctx)
		if a.Err() != nil {
			t.Fatalf("A already knows it lost the lock: %v", a.Err())
		}

		fenced := &store{how: "store that checks fences"}
		if _, err := fenced.get(ctx, b); err != nil {
			t.Fatal(err)
		}
		if err := fenced.set(ctx, a, 99); err == nil || fenced.value == 99 {
			t.Fatalf("the fenced store took A's write: %v", err)
		}
		guarded := &store{how: "SET through Lease.Guard", client: c}
		if err := guarded.set(ctx, a, 99); !errors.Is(err, lease.ErrNotHeld) {
			t.Fatalf("Guard: got %v, want ErrNotHeld", err)
		}
		if n, err := c.Exists(ctx, counterKey).Result(); err != nil || n != 0 {
			t.Fatalf("Guard let A's write through: %d, %v", n, err)
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
