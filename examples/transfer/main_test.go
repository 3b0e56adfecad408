package main

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/redlease/redlease/examples/internal/extest"
	"github.com/redlease/redlease/examples/transfer/transferex"
	"github.com/redlease/redlease/internal/leaktest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, leaktest.Options()...) }

func TestTransfer(t *testing.T) {
	extest.Each(t, func(t *testing.T, c *redis.Client) {
		cfg := transferex.Config{Accounts: 3, Initial: 100, Workers: 6, Transfers: 10, TTL: 500 * time.Millisecond, Deadline: 5 * time.Second, Seed: 7}
		res, err := transferex.Run(context.Background(), c, extest.NewOutput(t), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Log(res.Verdict())
		if res.TotalBefore != 300 || res.TotalAfter != 300 || res.Done+res.Refused != 60 || res.Done == 0 || res.Opposite == 0 {
			t.Fatalf("result %+v", res)
		}
		for a, v := range res.Expected {
			if res.Balances[a] != v {
				t.Fatalf("%s: %d in Redis, %d in the ledger", a, res.Balances[a], v)
			}
		}
		if err := res.Check(); err != nil {
			t.Fatal(err)
		}
	})
}
