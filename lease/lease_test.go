package lease_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/redlease/redlease/internal/core"
	"github.com/redlease/redlease/internal/leaktest"
	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, leaktest.Options()...) }

var seq atomic.Int64

func lockKey(name string) string { return "redlease:{" + name + "}" }

// acquire takes a fresh lock named after the test.
func acquire(t *testing.T, c redis.UniversalClient, opts ...mutex.Option) (*lease.Lease, string) {
	t.Helper()
	name := fmt.Sprintf("%s-%d", t.Name(), seq.Add(1))
	m, err := mutex.New(c, name, opts...)
	if err != nil {
		t.Fatal(err)
	}
	l, err := m.TryLock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Release(context.Background()) })
	return l, name
}

func TestValidUntilCountsFromSend(t *testing.T) {
	_, c := start(t)
	sent := time.Now()
	l, _ := acquire(t, c, mutex.WithTTL(time.Second), mutex.WithDriftFactor(0.1), mutex.WithAutoRenew(false))
	// sent + TTL×(1−drift) − margin, and the request went out after sent.
	if max := sent.Add(900 * time.Millisecond); l.ValidUntil().After(max.Add(50 * time.Millisecond)) {
		t.Fatalf("ValidUntil is %v after the send time, want at most ~895ms", l.ValidUntil().Sub(sent))
	}
	if l.ValidUntil().Sub(sent) > 900*time.Millisecond+50*time.Millisecond || l.ValidUntil().Sub(sent) <= 0 {
		t.Fatalf("ValidUntil - sent = %v", l.ValidUntil().Sub(sent))
	}
}

func waitLost(t *testing.T, l *lease.Lease, limit time.Duration) time.Time {
	t.Helper()
	select {
	case <-l.Lost():
		return time.Now()
	case <-time.After(limit):
		t.Fatalf("Lost not closed within %v", limit)
	}
	return time.Time{}
}

func TestReleaseClosesLost(t *testing.T) {
	_, c := start(t)
	l, name := acquire(t, c)
	if l.Err() != nil {
		t.Fatalf("Err while held: %v", l.Err())
	}
	if a, b := l.Lost(), l.Lost(); a != b {
		t.Fatal("Lost returns different channels")
	}
	if err := l.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Lost():
	default:
		t.Fatal("Lost still open after Release returned")
	}
	if l.Err() != lease.ErrReleased {
		t.Fatalf("Err = %v, want ErrReleased", l.Err())
	}
	if n, _ := c.Exists(context.Background(), lockKey(name)).Result(); n != 0 {
		t.Fatal("key left after Release")
	}
	if err := l.Release(context.Background()); !errors.Is(err, lease.ErrReleased) {
		t.Fatalf("second Release: %v, want ErrReleased", err)
	}
}

func TestReleaseWhenRedisFailsStillCloses(t *testing.T) {
	s, c := start(t)
	l, _ := acquire(t, c)
	s.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := l.Release(ctx); err == nil {
		t.Fatal("Release with Redis down returned nil")
	}
	if l.Err() != lease.ErrReleased {
		t.Fatalf("Err = %v, want ErrReleased", l.Err())
	}
}

func TestExpiresWithoutRenewal(t *testing.T) {
	_, c := start(t)
	l, name := acquire(t, c, mutex.WithTTL(300*time.Millisecond), mutex.WithAutoRenew(false))
	at := waitLost(t, l, 2*time.Second)
	if l.Err() != lease.ErrExpired {
		t.Fatalf("Err = %v, want ErrExpired", l.Err())
	}
	if at.Before(l.ValidUntil()) {
		t.Fatalf("Lost closed %v before ValidUntil", l.ValidUntil().Sub(at))
	}
	// Release after expiry deletes nothing and reports the expiry.
	other, err := mutex.New(c, name)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for {
		if ok, _ := other.Locked(ctx); !ok {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	ol, err := other.TryLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ol.Release(ctx)
	if err := l.Release(ctx); !errors.Is(err, lease.ErrExpired) {
		t.Fatalf("Release after expiry: %v, want ErrExpired", err)
	}
	if v, _ := c.Get(ctx, lockKey(name)).Result(); !core.Holds(v, ol.Token()) {
		t.Fatal("Release of an expired lease touched the new holder's key")
	}
}

func TestAutoRenewKeepsLease(t *testing.T) {
	_, c := start(t)
	// Generous margins: a renewal may be late on a loaded machine.
	l, name := acquire(t, c, mutex.WithTTL(600*time.Millisecond), mutex.WithRenewInterval(100*time.Millisecond))
	first := l.ValidUntil()
	time.Sleep(1500 * time.Millisecond) // several TTLs
	if l.Err() != nil {
		t.Fatalf("auto-renewed lease lost: %v", l.Err())
	}
	if !l.ValidUntil().After(first) {
		t.Fatal("ValidUntil did not move")
	}
	if v, _ := c.Get(context.Background(), lockKey(name)).Result(); !core.Holds(v, l.Token()) {
		t.Fatal("key no longer holds the token")
	}
}

func TestNotHeldWhenKeyTaken(t *testing.T) {
	_, c := start(t)
	ctx := context.Background()
	l, name := acquire(t, c, mutex.WithTTL(2*time.Second), mutex.WithRenewInterval(50*time.Millisecond))
	// Another owner takes the key behind the lease's back.
	c.Set(ctx, lockKey(name), "intruder", time.Minute)
	waitLost(t, l, 2*time.Second)
	if l.Err() != lease.ErrNotHeld {
		t.Fatalf("Err = %v, want ErrNotHeld", l.Err())
	}
	if err := l.Release(ctx); !errors.Is(err, lease.ErrNotHeld) {
		t.Fatalf("Release after loss: %v", err)
	}
	if v, _ := c.Get(ctx, lockKey(name)).Result(); v != "intruder" {
		t.Fatalf("Release deleted another owner's key (now %q)", v)
	}
}

func TestReleaseOfKeyTakenByOther(t *testing.T) {
	// redis-py: release of a lock that expired and was taken by another client.
	_, c := start(t)
	ctx := context.Background()
	l, name := acquire(t, c, mutex.WithAutoRenew(false))
	c.Del(ctx, lockKey(name))
	other, _ := mutex.New(c, name)
	ol, err := other.TryLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ol.Release(ctx)
	if err := l.Release(ctx); !errors.Is(err, lease.ErrNotHeld) {
		t.Fatalf("Release: %v, want ErrNotHeld", err)
	}
	if v, _ := c.Get(ctx, lockKey(name)).Result(); !core.Holds(v, ol.Token()) {
		t.Fatal("the other owner's key was touched")
	}
	if err := l.Extend(ctx, time.Second); err == nil {
		t.Fatal("Extend after release succeeded")
	}
}

func TestExtendAndRefresh(t *testing.T) {
	_, c := start(t)
	ctx := context.Background()
	l, _ := acquire(t, c, mutex.WithTTL(time.Second), mutex.WithAutoRenew(false))
	before := l.ValidUntil()
	if err := l.Extend(ctx, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	ttl, err := l.TTL(ctx)
	if err != nil || ttl <= 2*time.Second || ttl > 3*time.Second {
		t.Fatalf("TTL after Extend(2s) of a 1s lock: %v %v", ttl, err)
	}
	if d := l.ValidUntil().Sub(before); d < 1500*time.Millisecond {
		t.Fatalf("ValidUntil moved by %v", d)
	}
	if err := l.Refresh(ctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if ttl, _ := l.TTL(ctx); ttl <= 4*time.Second || ttl > 5*time.Second {
		t.Fatalf("TTL after Refresh(5s): %v", ttl)
	}
	if err := l.Refresh(ctx, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if ttl, _ := l.TTL(ctx); ttl > 200*time.Millisecond {
		t.Fatalf("TTL after Refresh(200ms): %v", ttl)
	}
	for _, bad := range []error{l.Extend(ctx, 0), l.Extend(ctx, -time.Second), l.Refresh(ctx, 0), l.Refresh(ctx, time.Millisecond)} {
		if !errors.Is(bad, lease.ErrInvalid) {
			t.Fatalf("bad argument: %v, want ErrInvalid", bad)
		}
	}
	waitLost(t, l, 2*time.Second)
	if l.Err() != lease.ErrExpired {
		t.Fatalf("Err = %v", l.Err())
	}
	if err := l.Extend(ctx, time.Second); !errors.Is(err, lease.ErrExpired) {
		t.Fatalf("Extend after expiry: %v", err)
	}
}

func TestRenewalDoesNotShortenExtend(t *testing.T) {
	_, c := start(t)
	ctx := context.Background()
	l, _ := acquire(t, c, mutex.WithTTL(time.Second), mutex.WithRenewInterval(50*time.Millisecond))
	if err := l.Extend(ctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if ttl, _ := l.TTL(ctx); ttl < 4*time.Second {
		t.Fatalf("renewal shortened an extended TTL to %v", ttl)
	}
}

func TestOwnedAndTTL(t *testing.T) {
	_, c := start(t)
	ctx := context.Background()
	l, name := acquire(t, c)
	if ok, err := l.Owned(ctx); !ok || err != nil {
		t.Fatalf("Owned: %v %v", ok, err)
	}
	c.Del(ctx, lockKey(name))
	if ok, err := l.Owned(ctx); ok || err != nil {
		t.Fatalf("Owned after DEL: %v %v", ok, err)
	}
	if l.Err() != lease.ErrNotHeld {
		t.Fatalf("Owned=false did not end the lease: %v", l.Err())
	}
	if _, err := l.TTL(ctx); !errors.Is(err, lease.ErrNotHeld) {
		t.Fatalf("TTL: %v", err)
	}
}

func TestContextCause(t *testing.T) {
	_, c := start(t)
	l, name := acquire(t, c, mutex.WithTTL(2*time.Second), mutex.WithRenewInterval(50*time.Millisecond))
	ctx, cancel := l.Context(context.Background())
	defer cancel()
	ctx2, cancel2 := l.Context(context.Background())
	cancel2()
	if ctx2.Err() == nil || context.Cause(ctx2) != context.Canceled {
		t.Fatalf("cancel func: %v %v", ctx2.Err(), context.Cause(ctx2))
	}
	if ctx.Err() != nil {
		t.Fatal("context done while the lease is held")
	}
	c.Del(context.Background(), lockKey(name))
	select {
	case <-ctx.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("context not canceled after loss")
	}
	if !errors.Is(context.Cause(ctx), lease.ErrNotHeld) {
		t.Fatalf("Cause = %v", context.Cause(ctx))
	}
	// Parent cancellation propagates too.
	_, c2 := start(t)
	l2, _ := acquire(t, c2)
	parent, pcancel := context.WithCancel(context.Background())
	ctx3, cancel3 := l2.Context(parent)
	defer cancel3()
	pcancel()
	<-ctx3.Done()
	if l2.Err() != nil {
		t.Fatal("parent cancellation ended the lease")
	}
}

func TestGuard(t *testing.T) {
	_, c := start(t)
	ctx := context.Background()
	l, name := acquire(t, c, mutex.WithTTL(time.Second), mutex.WithRenewInterval(20*time.Millisecond))
	data := "{" + name + "}:data"
	for i := 0; i < 20; i++ {
		if err := l.Guard(ctx, func(p redis.Pipeliner) error {
			p.Incr(ctx, data)
			return nil
		}); err != nil {
			t.Fatalf("Guard #%d: %v", i, err)
		}
	}
	if v, _ := c.Get(ctx, data).Int(); v != 20 {
		t.Fatalf("guarded counter %d, want 20", v)
	}
	c.Set(ctx, lockKey(name), "intruder", time.Minute)
	err := l.Guard(ctx, func(p redis.Pipeliner) error {
		p.Incr(ctx, data)
		return nil
	})
	if !errors.Is(err, lease.ErrNotHeld) {
		t.Fatalf("Guard after takeover: %v", err)
	}
	if v, _ := c.Get(ctx, data).Int(); v != 20 {
		t.Fatalf("stale guarded write applied: %d", v)
	}
}

func TestRedisKilledLostByDeadline(t *testing.T) {
	s, c := start(t)
	l, _ := acquire(t, c, mutex.WithTTL(400*time.Millisecond))
	s.Kill()
	at := waitLost(t, l, 3*time.Second)
	if l.Err() != lease.ErrExpired {
		t.Fatalf("Err = %v, want ErrExpired", l.Err())
	}
	// The timer fires at ValidUntil; allow scheduling slack only.
	if late := at.Sub(l.ValidUntil()); late > 500*time.Millisecond {
		t.Fatalf("Lost closed %v after the deadline", late)
	}
}

func TestRedisRestartedScriptsStillRun(t *testing.T) {
	s, c := start(t)
	ctx := context.Background()
	l, name := acquire(t, c, mutex.WithTTL(500*time.Millisecond), mutex.WithRenewInterval(50*time.Millisecond))
	s.Restart() // empty: keys and script cache gone
	waitLost(t, l, 3*time.Second)
	if err := l.Err(); err != lease.ErrNotHeld && err != lease.ErrExpired {
		t.Fatalf("Err = %v", err)
	}
	m, _ := mutex.New(c, name)
	l2, err := m.Lock(ctx) // EVALSHA → NOSCRIPT → EVAL
	if err != nil {
		t.Fatalf("Lock after restart: %v", err)
	}
	if l2.Fence() != 1 {
		t.Logf("fence after an empty restart: %d", l2.Fence())
	}
	if err := l2.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

func start(t *testing.T) (*redistest.Server, *redis.Client) {
	t.Helper()
	s := redistest.Start(t)
	return s, s.Client(t)
}

func TestGuardAfterExpiryWritesNothing(t *testing.T) {
	_, c := start(t)
	ctx := context.Background()
	l, name := acquire(t, c, mutex.WithTTL(100*time.Millisecond), mutex.WithAutoRenew(false))
	waitLost(t, l, 2*time.Second)
	data := "{" + name + "}:data"
	err := l.Guard(ctx, func(p redis.Pipeliner) error {
		p.Incr(ctx, data)
		return nil
	})
	if !errors.Is(err, lease.ErrNotHeld) || !errors.Is(err, lease.ErrExpired) {
		t.Fatalf("Guard after expiry: %v, want ErrNotHeld and ErrExpired", err)
	}
	if n, _ := c.Exists(ctx, data).Result(); n != 0 {
		t.Fatal("a guarded write after expiry was applied")
	}
}
