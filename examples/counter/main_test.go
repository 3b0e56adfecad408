package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/redlease/redlease/examples/counter/counterex"
	"github.com/redlease/redlease/examples/internal/extest"
	"github.com/redlease/redlease/internal/leaktest"
	"github.com/redlease/redlease/lease"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, leaktest.Options()...) }

func TestCounter(t *testing.T) {
	extest.Each(t, func(t *testing.T, c *redis.Client) {
		cfg := counterex.Config{Workers: 4, Increments: 10, TTL: 500 * time.Millisecond, StaleTTL: 100 * time.Millisecond}
		res, err := counterex.Run(context.Background(), c, extest.NewOutput(t), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Outcomes) != 4 {
			t.Fatalf("%d outcomes", len(res.Outcomes))
		}
		for _, o := range res.Outcomes {
			t.Log(o.Verdict())
			if o.Expected != 40 {
				t.Fatalf("%s: expected %d", o.Mode, o.Expected)
			}
			switch o.Mode {
			case counterex.Unguarded:
				// Worker 1 read 0, wrote 1 over the others' 30, then made
				// its 9 other increments.
				if !o.StaleApplied || o.Got != 10 || o.StaleErr != nil {
					t.Fatalf("%s: %+v, want the stale write applied and 10", o.Mode, o)
				}
			case counterex.Guarded:
				if o.StaleApplied || o.Got != 40 || !errors.Is(o.StaleErr, lease.ErrExpired) {
					t.Fatalf("%s: %+v, want 40 and the stale write refused (expired)", o.Mode, o)
				}
			case counterex.Fenced:
				if o.StaleApplied || o.Got != 40 || !errors.Is(o.StaleErr, counterex.ErrStaleFence) {
					t.Fatalf("%s: %+v, want 40 and the stale write refused (fence)", o.Mode, o)
				}
			default:
				if o.Got != 40 {
					t.Fatalf("%s: %+v", o.Mode, o)
				}
			}
		}
		if err := res.Check(); err != nil {
			t.Fatal(err)
		}
	})
}
