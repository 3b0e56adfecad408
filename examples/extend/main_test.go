package main

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/redlease/redlease/examples/extend/extendex"
	"github.com/redlease/redlease/examples/internal/extest"
	"github.com/redlease/redlease/internal/leaktest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, leaktest.Options()...) }

func TestExtend(t *testing.T) {
	extest.Each(t, func(t *testing.T, c *redis.Client) {
		cfg := extendex.Config{TTL: 500 * time.Millisecond, Step: 25 * time.Millisecond, ManualSteps: 24, AutoSteps: 32}
		res, err := extendex.Run(context.Background(), c, extest.NewOutput(t), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := res.Check(); err != nil {
			t.Fatalf("%v\nresult %+v", err, res)
		}
		// Extend(TTL) at halfway adds a whole TTL to what was left.
		if d := res.TTLAfter - res.TTLBefore; d < 350*time.Millisecond || d > 510*time.Millisecond {
			t.Fatalf("Extend(500ms) moved the TTL by %v", d)
		}
	})
}
