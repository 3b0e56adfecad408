package main

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/redlease/redlease/internal/leaktest"
	"github.com/redlease/redlease/internal/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, leaktest.Options()...) }

var summary = regexp.MustCompile(`120 transfers in \S+: (\d+) made, (\d+) refused`)

// Money is conserved, no balance goes negative, every transfer is made or
// refused.
func TestRun(t *testing.T) {
	backends(t, func(t *testing.T, c *redis.Client) {
		var out strings.Builder
		if err := run(context.Background(), c, &out); err != nil {
			t.Fatal(err)
		}
		t.Log("\n" + out.String())
		m := summary.FindStringSubmatch(out.String())
		if m == nil {
			t.Fatal("no summary line")
		}
		made, _ := strconv.Atoi(m[1])
		refused, _ := strconv.Atoi(m[2])
		if made+refused != 120 || made == 0 {
			t.Fatalf("%d made + %d refused, want 120 with some made", made, refused)
		}
		checkBooks(t, c)
	})
}

// Workers moving money both ways between the same two accounts at once
// finish: no deadlock.
func TestOppositeTransfers(t *testing.T) {
	backends(t, func(t *testing.T, c *redis.Client) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, a := range accounts {
			if err := c.Set(ctx, balance(a), 100, 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for w := range errs {
			src, dst := accounts[0], accounts[1]
			if w%2 == 1 {
				src, dst = dst, src
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 25 {
					if _, err := transfer(ctx, c, src, dst, 10); err != nil {
						errs[w] = err
						return
					}
				}
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		checkBooks(t, c)
	})
}

func checkBooks(t *testing.T, c *redis.Client) {
	t.Helper()
	total := int64(0)
	for _, a := range accounts {
		v, err := c.Get(context.Background(), balance(a)).Int64()
		if err != nil || v < 0 {
			t.Fatalf("%s: balance %d, %v", a, v, err)
		}
		total += v
	}
	if total != 300 {
		t.Fatalf("total %d, want 300", total)
	}
}

// backends runs fn against a real redis-server and against the example's
// embedded miniredis.
func backends(t *testing.T, fn func(t *testing.T, c *redis.Client)) {
	for _, name := range []string{"redis-server", "miniredis"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			addr := ""
			if name == "redis-server" {
				addr = redistest.Start(t).Addr
			}
			c, closeRedis, err := connect(addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(closeRedis)
			fn(t, c)
		})
	}
}
