package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/redlease/redlease/examples/internal/extest"
	"github.com/redlease/redlease/examples/workers/workersex"
	"github.com/redlease/redlease/internal/leaktest"
	"github.com/redlease/redlease/lease"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, leaktest.Options()...) }

func TestWorkers(t *testing.T) {
	extest.Each(t, func(t *testing.T, c *redis.Client) {
		cfg := workersex.Config{Workers: 4, Unit: 10 * time.Millisecond, Units: 5, TTL: 300 * time.Millisecond, Renew: 30 * time.Millisecond, LoseAfter: 150 * time.Millisecond}
		res, err := workersex.Run(context.Background(), c, extest.NewOutput(t), cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []workersex.Case{res.Completed, res.Deleted, res.Expired} {
			t.Log(k.Verdict())
		}
		if res.Completed.Err != nil || res.Completed.Units != 20 {
			t.Fatalf("completed: %+v", res.Completed)
		}
		if !errors.Is(res.Deleted.Err, lease.ErrNotHeld) || !errors.Is(res.Deleted.Cause, lease.ErrNotHeld) || res.Deleted.Units == 0 {
			t.Fatalf("deleted: %+v", res.Deleted)
		}
		if !errors.Is(res.Expired.Err, lease.ErrExpired) || !errors.Is(res.Expired.Cause, lease.ErrExpired) || res.Expired.Units == 0 {
			t.Fatalf("expired: %+v", res.Expired)
		}
		if err := res.Check(); err != nil {
			t.Fatal(err)
		}
	})
}
