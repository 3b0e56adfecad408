package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/redlease/redlease/examples/internal/extest"
	"github.com/redlease/redlease/examples/refresh/refreshex"
	"github.com/redlease/redlease/internal/leaktest"
	"github.com/redlease/redlease/lease"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, leaktest.Options()...) }

func TestRefresh(t *testing.T) {
	extest.Each(t, func(t *testing.T, c *redis.Client) {
		cfg := refreshex.Config{TTL: 400 * time.Millisecond, Work: 200 * time.Millisecond}
		res, err := refreshex.Run(context.Background(), c, extest.NewOutput(t), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if res.TTLBefore > 220*time.Millisecond || res.TTLAfter < 300*time.Millisecond {
			t.Fatalf("TTL %v before, %v after Refresh(400ms)", res.TTLBefore, res.TTLAfter)
		}
		if !errors.Is(res.RefreshAfterRel, lease.ErrReleased) || res.Fence2 <= res.Fence1 {
			t.Fatalf("result %+v", res)
		}
		if err := res.Check(); err != nil {
			t.Fatal(err)
		}
	})
}
