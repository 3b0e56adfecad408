package main

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/redlease/redlease/examples/internal/extest"
	"github.com/redlease/redlease/examples/trylock/trylockex"
	"github.com/redlease/redlease/internal/leaktest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, leaktest.Options()...) }

func TestTryLock(t *testing.T) {
	extest.Each(t, func(t *testing.T, c *redis.Client) {
		cfg := trylockex.Config{Workers: 5, TTL: 300 * time.Millisecond, Work: 50 * time.Millisecond}
		res, err := trylockex.Run(context.Background(), c, extest.NewOutput(t), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if res.Worked != 1 || res.Busy != 4 {
			t.Fatalf("worked %d, busy %d; want 1 and 4", res.Worked, res.Busy)
		}
		if err := res.Check(); err != nil {
			t.Fatal(err)
		}
		// The lock is free again.
		if n, err := c.Exists(context.Background(), "redlease:{trylock:shared_resource}").Result(); err != nil || n != 0 {
			t.Fatalf("lock key left behind: %d %v", n, err)
		}
	})
}
