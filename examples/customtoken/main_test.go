package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/redlease/redlease/examples/customtoken/customtokenex"
	"github.com/redlease/redlease/examples/internal/extest"
	"github.com/redlease/redlease/internal/leaktest"
	"github.com/redlease/redlease/mutex"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, leaktest.Options()...) }

func TestCustomToken(t *testing.T) {
	extest.Each(t, func(t *testing.T, c *redis.Client) {
		res, err := customtokenex.Run(context.Background(), c, extest.NewOutput(t), customtokenex.Config{TTL: 300 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(res.Token, "report-builder@") || res.LeaseToken != res.Token {
			t.Fatalf("result %+v", res)
		}
		if !errors.Is(res.OtherErr, mutex.ErrLocked) || !errors.Is(res.EmptyErr, mutex.ErrInvalid) {
			t.Fatalf("result %+v", res)
		}
		if err := res.Check(); err != nil {
			t.Fatal(err)
		}
		if n, _ := c.Exists(context.Background(), "redlease:{customtoken:resource}").Result(); n != 0 {
			t.Fatal("lock key left behind")
		}
	})
}

func TestOwnerTokensDiffer(t *testing.T) {
	if a, b := customtokenex.OwnerToken("x"), customtokenex.OwnerToken("x"); a == b {
		t.Fatalf("two owners got the same token %q", a)
	}
}
