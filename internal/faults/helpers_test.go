//go:build faults

package faults

import (
	"context"
	_ "embed"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/redlease/redlease/internal/history"
	"github.com/redlease/redlease/internal/leaktest"
	"github.com/redlease/redlease/lease"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(childMain())
	}
	goleak.VerifyTestMain(m, leaktest.Options()...)
}

//go:embed testdata/fenced_incr.lua
var fencedIncrSrc string

var fencedIncr = redis.NewScript(fencedIncrSrc)

// track records l's critical section in rec: from now until the earlier of
// the returned end func (call it just before Release) and the moment Lost
// closes.
func track(rec *history.Recorder, client string, l *lease.Lease) (end func()) {
	sec := rec.Begin(client, l.Name(), l.Fence())
	ctx, cancel := l.Context(context.Background())
	stop := context.AfterFunc(ctx, sec.End)
	return func() {
		sec.End()
		stop()
		cancel()
	}
}

// checkHistory fails t on any overlap and returns the number of intervals.
func checkHistory(t *testing.T, rec *history.Recorder) int {
	t.Helper()
	ivs := rec.Intervals()
	for _, v := range history.CheckOverlaps(ivs) {
		t.Errorf("violation: %s", v)
	}
	return len(ivs)
}

func newClient(t testing.TB, addr string, readTimeout time.Duration) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 500 * time.Millisecond,
		ReadTimeout: readTimeout, WriteTimeout: readTimeout, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func waitFor(t *testing.T, what string, limit time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// lockKeysLeft lists lock keys (not fence counters) still in Redis.
func lockKeysLeft(ctx context.Context, c redis.UniversalClient) []string {
	out, _ := lockKeys(ctx, c)
	return out
}

func result(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Logf("RESULT %s: %s", t.Name(), fmt.Sprintf(format, args...))
}
