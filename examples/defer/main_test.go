package main

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/redlease/redlease/examples/defer/deferex"
	"github.com/redlease/redlease/examples/internal/extest"
	"github.com/redlease/redlease/internal/leaktest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, leaktest.Options()...) }

func TestDefer(t *testing.T) {
	extest.Each(t, func(t *testing.T, c *redis.Client) {
		cfg := deferex.Config{Workers: 3, Sections: 3, TTL: 300 * time.Millisecond, Work: 5 * time.Millisecond}
		res, err := deferex.Run(context.Background(), c, extest.NewOutput(t), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if res.Sections != 9 || res.MaxInside != 1 || !res.FailedErr || !res.PanicRelease || res.LockedAfter {
			t.Fatalf("result %+v", res)
		}
		if err := res.Check(); err != nil {
			t.Fatal(err)
		}
	})
}
