package mutex_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/core"
	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/mutex"
)

// publishes counts the wake-up messages sent since before (SPUBLISH and
// PUBLISH, Lua-internal included).
func publishes(t *testing.T, c *redis.Client, before map[string]int64) int64 {
	t.Helper()
	after, err := redistest.CommandCalls(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	return after["spublish"] - before["spublish"] + after["publish"] - before["publish"]
}

func commandCalls(t *testing.T, c *redis.Client) map[string]int64 {
	t.Helper()
	m, err := redistest.CommandCalls(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// marked reports whether the lock key of name holds a hold marked by a
// waiter ("<fence>:<gen>w:<token>").
func marked(t *testing.T, c *redis.Client, name string) bool {
	t.Helper()
	v, err := c.Get(context.Background(), lockKeyOf(name)).Result()
	if err != nil {
		t.Fatalf("GET %s: %v", lockKeyOf(name), err)
	}
	f, rest, _ := strings.Cut(v, ":")
	g, _, _ := strings.Cut(rest, ":")
	return f != "" && strings.HasSuffix(g, "w")
}

// TestUnmarkedReleaseSendsNoPublish: a release that no waiter tried sends no
// wake-up message; one whose hold a busy attempt marked sends one.
func TestUnmarkedReleaseSendsNoPublish(t *testing.T) {
	s, c := startRedis(t)
	other := s.Client(t) // another process's client
	ctx := context.Background()
	name := uniqueName(t)
	m := newMutex(t, c, name)

	l, err := m.TryLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if marked(t, c, name) {
		t.Fatal("a fresh hold is marked")
	}
	// The lease's revocation notices open the client's subscription in the
	// background (its SPUBLISH probe is not a wake-up): let it settle first.
	redistest.WaitSubscribed(t, other, "redlease:revoked")
	before := commandCalls(t, c)
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if n := publishes(t, c, before); n != 0 {
		t.Fatalf("unmarked release: %d wake-up messages, want 0", n)
	}

	l, err = m.TryLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newMutex(t, other, name).TryLock(ctx); !errors.Is(err, mutex.ErrLocked) {
		t.Fatalf("other TryLock: %v, want ErrLocked", err)
	}
	if !marked(t, c, name) {
		t.Fatal("a busy attempt did not mark the hold")
	}
	if v, _ := c.Get(ctx, lockKeyOf(name)).Result(); !core.HoldsFence(v, l.Token(), l.Fence()) {
		t.Fatalf("marked value %q is not the hold of %s/%d", v, l.Token(), l.Fence())
	}
	if owned, err := l.Owned(ctx); err != nil || !owned {
		t.Fatalf("Owned on a marked hold: %v %v", owned, err)
	}
	before = commandCalls(t, c)
	if err := l.Release(ctx); err != nil {
		t.Fatalf("release of a marked hold: %v", err)
	}
	if n := publishes(t, c, before); n != 1 {
		t.Fatalf("marked release: %d wake-up messages, want 1", n)
	}
	if n, _ := c.Exists(ctx, lockKeyOf(name)).Result(); n != 0 {
		t.Fatal("marked hold not deleted")
	}
}

// TestMarkedReleaseWakesRemoteWaiter: a waiter in another process whose
// fallback backoff is 10 minutes gets the lock as soon as the holder
// releases, because its attempt marked the hold and the release published.
func TestMarkedReleaseWakesRemoteWaiter(t *testing.T) {
	s, c := startRedis(t)
	other := s.Client(t)
	ctx := context.Background()
	name := uniqueName(t)
	holder, err := newMutex(t, c, name, mutex.WithTTL(time.Minute)).TryLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slow := func() backoff.BackOff { return backoff.NewConstantBackOff(10 * time.Minute) }
	w := newMutex(t, other, name, mutex.WithTTL(time.Minute), mutex.WithBackoff(slow))
	type result struct {
		l   interface{ Release(context.Context) error }
		err error
	}
	done := make(chan result, 1)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	go func() {
		l, err := w.Lock(wctx)
		done <- result{l, err}
	}()
	// The waiter subscribes, then attempts (marking the hold): wait for both.
	deadline := time.Now().Add(10 * time.Second)
	for {
		subs, err := c.PubSubShardNumSub(ctx, lockKeyOf(name)+":wake").Result()
		if err != nil {
			t.Fatal(err)
		}
		if subs[lockKeyOf(name)+":wake"] > 0 && marked(t, c, name) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the waiter did not subscribe and mark the hold")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // let the waiter's attempt after Join complete
	if err := holder.Release(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("waiter: %v", r.err)
		}
		_ = r.l.Release(ctx)
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter was not woken by the release (its backoff is 10 minutes)")
	}
}

// TestProlongKeepsMark: renewal, Extend and Refresh rewrite the value's
// generation and keep the waiter's mark, so the release still publishes.
func TestProlongKeepsMark(t *testing.T) {
	s, c := startRedis(t)
	other := s.Client(t)
	ctx := context.Background()
	name := uniqueName(t)
	l, err := newMutex(t, c, name, mutex.WithTTL(time.Second), mutex.WithRenewInterval(100*time.Millisecond)).TryLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newMutex(t, other, name).TryLock(ctx); !errors.Is(err, mutex.ErrLocked) {
		t.Fatalf("other TryLock: %v, want ErrLocked", err)
	}
	if err := l.Extend(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := l.Refresh(ctx, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	// Renewals raise the generation to the lease's (2 after Extend and
	// Refresh); a few renewal intervals pass.
	time.Sleep(400 * time.Millisecond)
	v, _ := c.Get(ctx, lockKeyOf(name)).Result()
	if !marked(t, c, name) || !core.HoldsFence(v, l.Token(), l.Fence()) || !strings.Contains(v, ":2w:") {
		t.Fatalf("after extend, refresh and renewals the value is %q, want generation 2, marked, the lease's hold", v)
	}
	if owned, err := l.Owned(ctx); err != nil || !owned {
		t.Fatalf("Owned: %v %v", owned, err)
	}
	before := commandCalls(t, c)
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if n := publishes(t, c, before); n != 1 {
		t.Fatalf("release after prolonging a marked hold: %d wake-up messages, want 1", n)
	}
}

// TestReobtainKeepsMark: a custom token's re-obtain takes the hold over with
// a new fence and keeps the mark of the waiter that tried the earlier hold.
func TestReobtainKeepsMark(t *testing.T) {
	s, c := startRedis(t)
	other := s.Client(t)
	ctx := context.Background()
	name := uniqueName(t)
	first, err := newMutex(t, c, name, mutex.WithToken("owner:1")).TryLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newMutex(t, other, name).TryLock(ctx); !errors.Is(err, mutex.ErrLocked) {
		t.Fatalf("other TryLock: %v, want ErrLocked", err)
	}
	again, err := newMutex(t, c, name, mutex.WithToken("owner:1"), mutex.WithAutoRenew(false)).TryLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if again.Fence() <= first.Fence() || !marked(t, c, name) {
		v, _ := c.Get(ctx, lockKeyOf(name)).Result()
		t.Fatalf("re-obtain: fence %d after %d, value %q: want a larger fence, marked", again.Fence(), first.Fence(), v)
	}
	_ = first.Release(ctx) // ErrNotHeld: the hold was taken over
	before := commandCalls(t, c)
	if err := again.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if n := publishes(t, c, before); n != 1 {
		t.Fatalf("release of a re-obtained marked hold: %d wake-up messages, want 1", n)
	}
}

// TestMarkedHoldInspectGuardRevoke: a hold a waiter marked is still its
// holder's for Owned, Inspect and Guard, and Revoke by its token removes it
// and ends the lease.
func TestMarkedHoldInspectGuardRevoke(t *testing.T) {
	s, c := startRedis(t)
	other := s.Client(t)
	ctx := context.Background()
	name := uniqueName(t)
	l, err := newMutex(t, c, name).TryLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newMutex(t, other, name).TryLock(ctx); !errors.Is(err, mutex.ErrLocked) {
		t.Fatalf("other TryLock: %v, want ErrLocked", err)
	}
	if !marked(t, c, name) {
		t.Fatal("the busy attempt did not mark the hold")
	}
	if owned, err := l.Owned(ctx); err != nil || !owned {
		t.Fatalf("Owned of a marked hold: %v %v", owned, err)
	}
	st, err := newMutex(t, other, name).Inspect(ctx)
	if err != nil || !st.Held || st.Token != l.Token() || st.Fence != l.Fence() {
		t.Fatalf("Inspect of a marked hold: %+v %v; want token %q fence %d", st, err, l.Token(), l.Fence())
	}
	data := "{" + name + "}:data"
	if err := l.Guard(ctx, func(p redis.Pipeliner) error { return p.Set(ctx, data, "x", 0).Err() }); err != nil {
		t.Fatalf("Guard on a marked hold: %v", err)
	}
	if err := newMutex(t, other, name).Revoke(ctx, l.Token()); err != nil {
		t.Fatalf("Revoke of a marked hold: %v", err)
	}
	select {
	case <-l.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("the revoked lease did not end")
	}
	if n := c.Exists(ctx, lockKeyOf(name)).Val(); n != 0 {
		t.Fatal("Revoke left the marked hold")
	}
}
