package main

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/redlease/redlease/examples/internal/extest"
	"github.com/redlease/redlease/examples/status/statusex"
	"github.com/redlease/redlease/internal/leaktest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, leaktest.Options()...) }

func TestStatus(t *testing.T) {
	extest.Each(t, func(t *testing.T, c *redis.Client) {
		cfg := statusex.Config{TTL: 300 * time.Millisecond, Before: 60 * time.Millisecond, Hold: 200 * time.Millisecond, After: 60 * time.Millisecond, Every: 15 * time.Millisecond}
		res, err := statusex.Run(context.Background(), c, extest.NewOutput(t), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if res.Wrong != 0 || res.Before == 0 || res.Holding < 3 || res.After == 0 {
			t.Fatalf("result %+v", res)
		}
		if err := res.Check(); err != nil {
			t.Fatal(err)
		}
	})
}
