package exredis

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/redlease/redlease/internal/leaktest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, leaktest.Options()...) }

// The embedded server's clock follows real time: a key set with a TTL is
// gone once the TTL has passed, and not much earlier.
func TestEmbeddedClock(t *testing.T) {
	t.Setenv("REDIS_ADDR", "") // never a real server here
	ctx := context.Background()
	c, cleanup, err := Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	if err := c.Set(ctx, "k", "v", 150*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if n, _ := c.Exists(ctx, "k").Result(); n != 1 {
		t.Fatal("key expired before its TTL")
	}
	if pttl, _ := c.PTTL(ctx, "k").Result(); pttl <= 0 || pttl > 60*time.Millisecond {
		t.Fatalf("PTTL %v after 100ms of a 150ms TTL", pttl)
	}
	deadline := time.Now().Add(time.Second)
	for {
		n, err := c.Exists(ctx, "k").Result()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("key still there 1s after its TTL")
		}
		time.Sleep(5 * time.Millisecond)
	}
	other := Another(c)
	defer other.Close()
	if err := other.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
}

func TestCloseIdempotent(t *testing.T) {
	e, err := StartEmbedded()
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
	e.Close()
}

// Lua scripts (every redlease operation is one) and MULTI/EXEC run on the
// embedded server without blocking its clock, and keys they set age from
// the moment they were set.
func TestEmbeddedScripts(t *testing.T) {
	e, err := StartEmbedded()
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	c := NewClient(e.Addr())
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i := 0; i < 50; i++ {
		if err := c.Eval(ctx, "redis.call('set', KEYS[1], 'v', 'PX', 200); return redis.call('pttl', KEYS[1])", []string{"s"}).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, "m", "v", 200*time.Millisecond)
			p.PTTL(ctx, "m")
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(20 * time.Millisecond)
	for _, k := range []string{"s", "m"} {
		if pttl, err := c.PTTL(ctx, k).Result(); err != nil || pttl < 170*time.Millisecond {
			t.Fatalf("%s: PTTL %v %v 20ms after a 200ms SET", k, pttl, err)
		}
	}
}
