package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/redlease/redlease/examples/expiry/expiryex"
	"github.com/redlease/redlease/examples/internal/extest"
	"github.com/redlease/redlease/internal/leaktest"
	"github.com/redlease/redlease/lease"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, leaktest.Options()...) }

func TestExpiry(t *testing.T) {
	extest.Each(t, func(t *testing.T, c *redis.Client) {
		cfg := expiryex.Config{TTL: 300 * time.Millisecond, Renew: 30 * time.Millisecond, Step: 20 * time.Millisecond, Steps: 50, DeleteAfter: 150 * time.Millisecond}
		res, err := expiryex.Run(context.Background(), c, extest.NewOutput(t), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Log(res.Deleted.Verdict())
		t.Log(res.Expired.Verdict())
		d, e := res.Deleted, res.Expired
		if !errors.Is(d.Err, lease.ErrNotHeld) || d.Done >= 50 {
			t.Fatalf("deleted: %+v", d)
		}
		if !errors.Is(e.Err, lease.ErrExpired) || e.Done >= 50 {
			t.Fatalf("expired: %+v", e)
		}
		if err := res.Check(); err != nil {
			t.Fatal(err)
		}
	})
}
