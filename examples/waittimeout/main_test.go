package main

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/redlease/redlease/examples/internal/extest"
	"github.com/redlease/redlease/examples/waittimeout/waittimeoutex"
	"github.com/redlease/redlease/internal/leaktest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, leaktest.Options()...) }

func TestAllInTime(t *testing.T) {
	extest.Each(t, func(t *testing.T, c *redis.Client) {
		cfg := waittimeoutex.Config{Workers: 5, Wait: 2 * time.Second, Work: 20 * time.Millisecond, TTL: 300 * time.Millisecond}
		res, err := waittimeoutex.Run(context.Background(), c, extest.NewOutput(t), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if res.Counter != 5 || res.Incremented != 5 || res.TimedOut != 0 {
			t.Fatalf("result %+v, want counter 5, no timeouts", res)
		}
		if err := res.Check(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestSomeTimeOut gives the workers less time than the work takes in total:
// those that time out do not increment, the counter still counts exactly
// the increments made.
func TestSomeTimeOut(t *testing.T) {
	extest.Each(t, func(t *testing.T, c *redis.Client) {
		cfg := waittimeoutex.Config{Workers: 5, Wait: 150 * time.Millisecond, Work: 100 * time.Millisecond, TTL: 500 * time.Millisecond}
		res, err := waittimeoutex.Run(context.Background(), c, extest.NewOutput(t), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if res.TimedOut == 0 || res.Incremented == 0 || res.Counter != int64(res.Incremented) {
			t.Fatalf("result %+v, want some increments, some timeouts, counter = increments", res)
		}
		if err := res.Check(); err != nil {
			t.Fatal(err)
		}
	})
}
