package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/redlease/redlease/internal/leaktest"
	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, leaktest.Options()...) }

func TestRun(t *testing.T) {
	backends(t, func(t *testing.T, c *redis.Client) {
		var out strings.Builder
		if err := run(context.Background(), c, &out); err != nil {
			t.Fatal(err)
		}
		t.Log("\n" + out.String())
		if got := strings.Count(out.String(), "lock held afterwards: false"); got != 4 {
			t.Fatalf("the lock was free after %d of 4 sections", got)
		}
	})
}

// However a section ends, withLock returns its error and the lock is free.
func TestWithLock(t *testing.T) {
	backends(t, func(t *testing.T, c *redis.Client) {
		ctx := context.Background()
		m, err := mutex.New(c, "defer:test", mutex.WithRenewInterval(50*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		free := func(when string) {
			t.Helper()
			if locked, err := m.Locked(ctx); err != nil || locked {
				t.Fatalf("%s: locked %v, %v; want free", when, locked, err)
			}
		}
		errWork := errors.New("work")
		if err := withLock(ctx, m, func(context.Context) error { return errWork }); !errors.Is(err, errWork) {
			t.Fatalf("failing section: got %v, want %v", err, errWork)
		}
		free("after a failing section")

		func() {
			defer func() {
				if r := recover(); r != "boom" {
					t.Fatalf("recovered %v, want the section's panic", r)
				}
			}()
			_ = withLock(ctx, m, func(context.Context) error { panic("boom") })
		}()
		free("after a panicking section")

		// A lost lease cancels the section's context; the failed release
		// is reported with the section's error.
		err = withLock(ctx, m, func(ctx context.Context) error {
			if err := c.Del(ctx, "redlease:{defer:test}").Err(); err != nil {
				return err
			}
			<-ctx.Done()
			return context.Cause(ctx)
		})
		if !errors.Is(err, lease.ErrNotHeld) || !strings.Contains(err.Error(), "release") {
			t.Fatalf("lost lease: got %v, want ErrNotHeld from the section and from the release", err)
		}
		free("after a lost lease")
	})
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
