package main

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/redlease/redlease/internal/leaktest"
	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
	"github.com/redlease/redlease/rwmutex"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, leaktest.Options()...) }

const rwKey = "redlease:{" + name + "}:rw"

var peakLine = regexp.MustCompile(`readers at once: at most (\d+)`)

// The example runs to the end: readers overlapped, never with the writer,
// the final config is the last write, Guard refuses a read lease, and only
// the config and the fence counter are left.
func TestReadWrite(t *testing.T) {
	backends(t, func(t *testing.T, c *redis.Client) {
		var out strings.Builder
		if err := run(context.Background(), c, &out); err != nil {
			t.Fatal(err)
		}
		s := out.String()
		t.Log("\n" + s)
		for _, want := range []string{
			"3 updates: returned <nil>", "a reader and the writer at once: 0 times", `last write "version=4"`,
			`final config "version=4"`, "Guard needs an exclusive lock", "(ErrInvalid: true)",
		} {
			if !strings.Contains(s, want) {
				t.Fatalf("output lacks %q", want)
			}
		}
		m := peakLine.FindStringSubmatch(s)
		if m == nil {
			t.Fatal("no peak line")
		}
		if n, _ := strconv.Atoi(m[1]); n < 2 {
			t.Fatalf("readers never overlapped (at most %d at once)", n)
		}
		if v, err := c.Get(context.Background(), configKey).Result(); err != nil || v != "version=4" {
			t.Fatalf("config %q, %v; want the last write version=4", v, err)
		}
		onlyConfigLeft(t, c)
	})
}

// More readers and updates: readers overlap, never the writer, and the
// config is the writer's last Guarded write.
func TestSession(t *testing.T) {
	backends(t, func(t *testing.T, c *redis.Client) {
		ctx := context.Background()
		st, err := session(ctx, newRW(t, c), c, 8, 4, 5, t.Logf)
		if err != nil {
			t.Fatal(err)
		}
		if st.peakReaders < 2 {
			t.Fatalf("readers never overlapped (at most %d at once)", st.peakReaders)
		}
		if n := st.mixed.Load(); n != 0 {
			t.Fatalf("a reader and the writer held at once %d times", n)
		}
		if st.lastWrite != "version=5" {
			t.Fatalf("last write %q, want version=5", st.lastWrite)
		}
		if v, err := c.Get(ctx, configKey).Result(); err != nil || v != st.lastWrite {
			t.Fatalf("config %q, %v; want the last write %q", v, err, st.lastWrite)
		}
		onlyConfigLeft(t, c)
	})
}

// A writer whose hold is gone writes nothing: Guard returns ErrNotHeld and
// the config keeps the last write made under a hold.
func TestLostWriteRefused(t *testing.T) {
	backends(t, func(t *testing.T, c *redis.Client) {
		ctx := context.Background()
		rw := newRW(t, c)
		if v, err := update(ctx, rw, c, nil); err != nil || v != "version=1" {
			t.Fatalf("update: %q, %v", v, err)
		}
		l, err := rw.Lock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Del(ctx, rwKey).Err(); err != nil { // the write hold is wiped
			t.Fatal(err)
		}
		if _, err := write(ctx, l, c, nil); !errors.Is(err, lease.ErrNotHeld) {
			t.Fatalf("write without the hold: %v, want lease.ErrNotHeld", err)
		}
		_ = l.Release(ctx)
		if v, err := c.Get(ctx, configKey).Result(); err != nil || v != "version=1" {
			t.Fatalf("config %q, %v; want version=1", v, err)
		}
		onlyConfigLeft(t, c)
	})
}

// onlyConfigLeft fails unless the only keys are the config and the fence
// counter: no hold, no claim, no hash.
func onlyConfigLeft(t *testing.T, c *redis.Client) {
	t.Helper()
	keys, err := c.Keys(context.Background(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	if want := []string{"redlease:fence", configKey}; !slices.Equal(keys, want) {
		t.Fatalf("keys %q, want %q", keys, want)
	}
}

func newRW(t *testing.T, c *redis.Client) *rwmutex.RWMutex {
	t.Helper()
	rw, err := rwmutex.New(c, name, mutex.WithTTL(time.Second), mutex.WithRenewInterval(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	return rw
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
