package main

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/redlease/redlease/internal/leaktest"
	"github.com/redlease/redlease/internal/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, leaktest.Options()...) }

var fencePair = regexp.MustCompile(`fence (\d+), then (\d+)`)

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

var ttlLine = regexp.MustCompile(`TTL (\S+); after Extend\(3s\): (\S+); after Refresh\(1s\): (\S+)`)

// Every step of the tour shows what it claims, on a fresh server.
func TestTour(t *testing.T) {
	backends(t, func(t *testing.T, c *redis.Client) {
		var out strings.Builder
		if err := run(context.Background(), c, &out); err != nil {
			t.Fatal(err)
		}
		s := out.String()
		t.Log("\n" + s)
		// Fences are shown as {F}: a busy attempt draws one too, so their
		// values depend on how often a waiter tried; their order does not.
		for _, want := range []string{
			`1. Lock`, `holding "demo:report" with fence {F}`,
			`2. TryLock`, `is locked by another owner`, `(mutex.ErrLocked: true)`,
			`3. Lock with a 200ms deadline`, `context.DeadlineExceeded true, mutex.ErrLocked true`,
			`4. Extend`,
			`5. Release`, `fence {F}, then {F}`,
			`6. Lost`, `Err: lease: not held`,
			`7. Guard`, `the holder (fence {F}): written`, `the lost lease (fence {F}): refused: `, `guard: lease: not held`,
			`8. A multilock`, `holding [demo:alice demo:bob] (fences {F} and {F})`,
			`TryLock of [demo:bob demo:carol]: multilock: trylock`, `mutex: "demo:bob" is locked`, `demo:carol locked: false`,
			`9. A semaphore with limit 2`, `semaphore: "demo:exports" has 0 free units, not enough (semaphore.ErrNoPermits: true; free: 0)`,
			`10. A read-write lock`, `two readers hold at once (fences {F} and {F})`, `TryLock: rwmutex: "demo:catalog" is locked`, `(rwmutex.ErrLocked: true)`,
			`after both Release, Lock got the write hold (fence {F})`,
		} {
			re := regexp.MustCompile(strings.ReplaceAll(regexp.QuoteMeta(want), `\{F\}`, `(\d+)`))
			if !re.MatchString(s) {
				t.Fatalf("the tour does not say %q", want)
			}
		}
		if f := fencePair.FindStringSubmatch(s); f == nil || atoi(f[2]) <= atoi(f[1]) {
			t.Fatalf("step 5: want a larger fence after the release, got %v", f)
		}
		m := ttlLine.FindStringSubmatch(s)
		if m == nil {
			t.Fatal("no TTL line")
		}
		var ttl [3]time.Duration
		for i := range ttl {
			ttl[i], _ = time.ParseDuration(m[i+1])
		}
		near := func(d, want time.Duration) bool { // the tour rounds to 100ms
			return d >= want-100*time.Millisecond && d <= want+100*time.Millisecond
		}
		if ttl[0] > 1800*time.Millisecond || !near(ttl[1]-ttl[0], 3*time.Second) || !near(ttl[2], time.Second) {
			t.Fatalf("TTLs %v: want at most 1.8s, 3s more after Extend, 1s after Refresh", ttl)
		}
		if n, err := c.Exists(context.Background(), "redlease:{demo:report}", "redlease:{demo:alice}", "redlease:{demo:bob}",
			"redlease:{demo:exports}:sem", "redlease:{demo:catalog}:rw").Result(); err != nil || n != 0 {
			t.Fatalf("%d lock keys left behind, %v", n, err)
		}
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
