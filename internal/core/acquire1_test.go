package core

import (
	"context"
	"errors"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/internal/scripts"
)

func TestParseAcquireInteger(t *testing.T) {
	f, busy, _, err := ParseAcquire(int64(42), 1)
	if err != nil || busy != 0 || len(f) != 1 || f[0] != 42 {
		t.Fatalf("fence reply: %v %d %v", f, busy, err)
	}
	_, busy, pttl, err := ParseAcquire(int64(-2-1500), 1)
	if err != nil || busy != 1 || pttl != 1500*time.Millisecond {
		t.Fatalf("busy reply: %d %v %v", busy, pttl, err)
	}
	if f, busy, _, err := ParseAcquire(int64(5), 3); err != nil || busy != 0 || len(f) != 3 || f[0] != 5 || f[2] != 7 {
		t.Fatalf("integer reply for 3 keys: %v %d %v", f, busy, err)
	}
	_, busy, pttl, err = ParseAcquire(int64(-1), 1)
	if err != nil || busy != 1 || pttl >= 0 {
		t.Fatalf("busy reply without TTL: %d %v %v", busy, pttl, err)
	}
	for _, bad := range []struct {
		r any
		n int
	}{{int64(0), 1}, {int64(-5), 2}, {int64(math.MaxInt64), 2}, {int64(5), 0}} {
		if _, _, _, err := ParseAcquire(bad.r, bad.n); !errors.Is(err, ErrReply) {
			t.Errorf("ParseAcquire(%v, %d): %v, want ErrReply", bad.r, bad.n, err)
		}
	}
}

// TestAcquire1RunTwice runs acquire1.lua as go-redis would after a lost
// reply, and as a busy attempt and a re-obtain, against a real Redis.
func TestAcquire1RunTwice(t *testing.T) { acquire1RunTwice(t, scripts.Acquire1) }

// TestAcquire1Fallback runs the same checks on the path a Redis before 7.0
// takes, which refuses SET NX GET: the script's SET is made to fail the same
// way here.
func TestAcquire1Fallback(t *testing.T) {
	src, err := os.ReadFile("../scripts/acquire1.lua")
	if err != nil {
		t.Fatal(err)
	}
	const get = "'NX', 'PX', ARGV[2], 'GET')"
	if strings.Count(string(src), get) != 1 {
		t.Fatalf("harness: acquire1.lua no longer has %s", get)
	}
	acquire1RunTwice(t, redis.NewScript(strings.Replace(string(src), get, "'NX', 'PX', ARGV[2], 'NOSUCHOPTION')", 1)))
}

func acquire1RunTwice(t *testing.T, script *redis.Script) {
	s := redistest.Start(t)
	c := s.Client(t)
	ctx := context.Background()
	keys := []string{"redlease:{a1}", "redlease:fence"}
	run := func(tok string, ttl int64, custom string) int64 {
		t.Helper()
		r, err := script.Run(ctx, c, keys, tok, ttl, custom).Int64()
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	f1 := run("t1", 5000, "0")
	if f1 <= 0 {
		t.Fatalf("first run: %d, want a fence", f1)
	}
	c.PExpire(ctx, keys[0], 1000*time.Millisecond)
	if f := run("t1", 5000, "0"); f != f1 {
		t.Fatalf("second run: fence %d, want the first run's %d", f, f1)
	}
	if ms := c.PTTL(ctx, keys[0]).Val(); ms < 4000*time.Millisecond {
		t.Fatalf("second run left PTTL %v, want it raised to the TTL", ms)
	}
	if r := run("t2", 5000, "0"); r > -2-4000 || r < -2-5000 {
		t.Fatalf("other token: %d, want -2 - pttl", r)
	}
	if v := c.Get(ctx, keys[0]).Val(); !HoldsFence(v, "t1", f1) {
		t.Fatalf("a busy attempt changed the key: %q", v)
	}
	c.Set(ctx, keys[0], "7:3:owner", 60*time.Second)
	f2 := run("owner", 5000, "1")
	if f2 <= f1 {
		t.Fatalf("re-obtain: fence %d, want above %d", f2, f1)
	}
	if v := c.Get(ctx, keys[0]).Val(); !HoldsFence(v, "owner", f2) || v[len(v)-len(":0:owner"):] != ":0:owner" {
		t.Fatalf("re-obtain left %q, want generation 0 and fence %d", v, f2)
	}
	if ms := c.PTTL(ctx, keys[0]).Val(); ms < 50*time.Second {
		t.Fatalf("re-obtain shortened the TTL to %v", ms)
	}
	c.Persist(ctx, keys[0])
	if r := run("t3", 5000, "0"); r != -1 {
		t.Fatalf("held without TTL: %d, want -1", r)
	}
}
