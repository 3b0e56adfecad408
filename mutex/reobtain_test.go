package mutex_test

// Adversarial review findings. Each test forces one interleaving with the
// fault hook of lostreply_test.go and checks safety through the public API.

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/mutex"
)

// holdBack makes the next call of script return a lost reply without
// running it; the returned func runs it later (as a request queued behind a
// stalled server whose caller gave up with ContextTimeoutEnabled).
func holdBack(t *testing.T, s *redistest.Server, h *faultHook, script string) (runLate func()) {
	var held redis.Cmder
	h.once(script, func(ctx context.Context, cmd redis.Cmder, next redis.ProcessHook) error {
		held = cmd
		cmd.SetErr(errLost)
		return errLost
	})
	return func() {
		t.Helper()
		h.fired(t, script)
		if err := s.Client(t).Do(context.Background(), held.Args()...).Err(); err != nil && !errors.Is(err, redis.Nil) {
			t.Fatalf("late %s: %v", script, err)
		}
	}
}

// TestReviewCustomTokenLateReleaseDeletesReobtainedHold: with WithToken,
// lease L1 releases; its release request is queued (caller gets an error).
// The owner locks again with the same token: the acquire re-obtains the key
// (it still holds the token). The queued release then runs and deletes the
// key that L2 believes it holds.
func TestReviewCustomTokenLateReleaseDeletesReobtainedHold(t *testing.T) {
	s := redistest.Start(t)
	loadScripts(t, s)
	ctx := context.Background()
	name := uniqueName(t)
	c, h := hookedClient(t, s.Addr, false)
	m := newMutex(t, c, name, mutex.WithToken("svc-A"), mutex.WithTTL(10*time.Second))
	l1, err := m.TryLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	runLate := holdBack(t, s, h, "release")
	if err := l1.Release(ctx); err == nil {
		t.Fatal("harness: release with a lost reply returned nil")
	}
	l2, err := m.Lock(ctx)
	if err != nil {
		t.Fatalf("re-lock with the same token: %v", err)
	}
	releaseOnCleanup(t, l2)
	runLate()
	if believes(l2) {
		if n, _ := s.Client(t).Exists(ctx, lockKeyOf(name)).Result(); n == 0 {
			t.Errorf("L2 believes it holds %q (valid for %v) but the late release of L1 deleted the key", name, time.Until(l2.ValidUntil()).Round(time.Millisecond))
		}
	}
	checkNoOverlap(t, s, name, l2, time.Second)
}

// TestReviewCustomTokenLateRefreshShortensReobtainedHold: with WithToken,
// L1's Refresh to 200ms is in doubt (queued); L1 lowers its deadline and
// expires locally. The owner locks again with the same token: acquire
// re-obtains the key with its generation (0), and L2 counts 10s of validity.
// The queued Refresh carries generation 1 > 0, so it applies and sets the
// TTL to 200ms: a competitor takes the lock while L2 believes it holds it.
func TestReviewCustomTokenLateRefreshShortensReobtainedHold(t *testing.T) {
	s := redistest.Start(t)
	loadScripts(t, s)
	ctx := context.Background()
	name := uniqueName(t)
	c, h := hookedClient(t, s.Addr, false)
	m := newMutex(t, c, name, mutex.WithToken("svc-A"), mutex.WithTTL(10*time.Second))
	l1, err := m.TryLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	runLate := holdBack(t, s, h, "refresh")
	if err := l1.Refresh(ctx, 200*time.Millisecond); err == nil {
		t.Fatal("harness: refresh with a lost reply returned nil")
	}
	select { // the lowered deadline passes; the key still has ~10s
	case <-l1.Lost():
	case <-time.After(5 * time.Second):
		t.Fatalf("a Refresh to 200ms in doubt left the lease valid until %v", l1.ValidUntil())
	}
	l2, err := m.Lock(ctx)
	if err != nil {
		t.Fatalf("re-lock with the same token: %v", err)
	}
	releaseOnCleanup(t, l2)
	runLate()
	pttl, _ := s.Client(t).PTTL(ctx, lockKeyOf(name)).Result()
	if believes(l2) && pttl < time.Until(l2.ValidUntil()) {
		t.Errorf("late Refresh of L1 shortened the key to PTTL %v while L2 believes it is valid for %v", pttl, time.Until(l2.ValidUntil()).Round(time.Millisecond))
	}
	checkNoOverlap(t, s, name, l2, time.Second)
}

// TestReviewHandoffGrantTakenAfterItsValidity: waiter W is at the head and
// its own attempt is slow (blocked in flight). Meanwhile A releases and the
// release hands the lock to W (grant delivered). W's attempt then returns
// busy, and Obtain takes the grant from Granted without checking that its
// validity (counted from the handoff) already passed: Lock returns success
// with a lease that is already expired, and the handed-over key stays held
// by nobody until its TTL.
func TestReviewHandoffGrantTakenAfterItsValidity(t *testing.T) {
	s := redistest.Start(t)
	loadScripts(t, s)
	ctx := context.Background()
	name := uniqueName(t)
	ttl := mutex.WithTTL(300 * time.Millisecond)
	c, h := hookedClient(t, s.Addr, false)
	lA := tryLock(ctx, t, c, name, mutex.WithTTL(10*time.Second))
	base := h.count("acquire")
	wDone := lockAsync(ctx, t, newMutex(t, c, name, ttl))
	h.waitCalls(t, "acquire", base+2) // W tried, queued, tried again
	entered, before := make(chan struct{}), make(chan struct{})
	h.once("acquire", func(ctx context.Context, cmd redis.Cmder, next redis.ProcessHook) error {
		close(entered)
		<-before
		return next(ctx, cmd)
	})
	<-entered // W's next attempt is in flight
	if err := lA.Release(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond) // the grant's validity passes
	close(before)
	r := recv(t, wDone, "W's Lock")
	if r.err != nil {
		t.Logf("W's Lock: %v", r.err)
		return
	}
	if !believes(r.l) {
		t.Errorf("Lock returned success with a lease that is already lost (Err %v, ValidUntil %v ago); %s",
			r.l.Err(), -time.Until(r.l.ValidUntil()).Round(time.Millisecond), keyState(t, s, name))
	}
}
