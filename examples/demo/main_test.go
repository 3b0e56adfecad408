package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/redlease/redlease/examples/counter/counterex"
	"github.com/redlease/redlease/examples/expiry/expiryex"
	"github.com/redlease/redlease/examples/internal/extest"
	"github.com/redlease/redlease/examples/transfer/transferex"
	"github.com/redlease/redlease/internal/leaktest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, leaktest.Options()...) }

func testConfig() Config {
	return Config{
		Counter:  counterex.Config{Workers: 3, Increments: 5, TTL: 500 * time.Millisecond, StaleTTL: 100 * time.Millisecond},
		Transfer: transferex.Config{Accounts: 3, Initial: 100, Workers: 4, Transfers: 8, TTL: 500 * time.Millisecond, Deadline: 5 * time.Second, Seed: 3},
		Expiry:   expiryex.Config{TTL: 300 * time.Millisecond, Renew: 30 * time.Millisecond, Step: 20 * time.Millisecond, Steps: 30, DeleteAfter: 120 * time.Millisecond},
	}
}

func TestDemo(t *testing.T) {
	extest.Each(t, func(t *testing.T, c *redis.Client) {
		out := extest.NewOutput(t)
		vs, err := run(context.Background(), c, out, testConfig())
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"counter without Guard or fencing", "counter with Guard", "counter with fencing", "transfers", "lost, deleted", "lost, expired"}
		if len(vs) != len(want) {
			t.Fatalf("%d verdicts, want %d: %+v", len(vs), len(want), vs)
		}
		for i, v := range vs {
			if v.Case != want[i] || !v.OK || !strings.HasSuffix(v.Line, "— OK") {
				t.Errorf("verdict %d: %+v", i, v)
			}
		}
		if !strings.Contains(vs[2].Line, "expected 15, got 15") || !strings.Contains(vs[0].Line, "expected 15, got 5") {
			t.Errorf("counter verdicts: %q, %q", vs[0].Line, vs[2].Line)
		}
	})
}

// TestTourExitStatus runs the whole tour on the embedded server (never
// $REDIS_ADDR): 0 when every verdict holds, 1 when one fails.
func TestTourExitStatus(t *testing.T) {
	t.Setenv("REDIS_ADDR", "")
	out := extest.NewOutput(t)
	if code := tour(context.Background(), out, testConfig()); code != 0 {
		t.Fatalf("tour exit status %d, want 0", code)
	}
	// A task that finishes before its lease is lost: the Lost-channel
	// verdicts fail, and so does the tour.
	cfg := testConfig()
	cfg.Counter.Workers, cfg.Counter.Increments, cfg.Counter.StaleTTL = 2, 2, 50*time.Millisecond
	cfg.Transfer.Workers, cfg.Transfer.Transfers = 2, 3
	cfg.Expiry = expiryex.Config{TTL: 300 * time.Millisecond, Renew: 30 * time.Millisecond, Step: 10 * time.Millisecond, Steps: 3, DeleteAfter: 100 * time.Millisecond}
	if code := tour(context.Background(), out, cfg); code != 1 {
		t.Fatalf("tour exit status %d with failing verdicts, want 1", code)
	}
	if s := out.String(); !strings.Contains(s, "— FAILED") {
		t.Fatalf("no FAILED verdict printed:\n%s", s)
	}
}
