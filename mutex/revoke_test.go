package mutex_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
)

// notifyWithin bounds how long a reachable holder may take to learn of a
// revocation; without the notice it would learn at its next renewal (10s)
// and a waiter would wake at the holder's expiry (30s).
const notifyWithin = 5 * time.Second

// longHold is a holder's configuration in these tests: TTL 30s, renewal
// every 10s.
func longHold() []mutex.Option {
	return []mutex.Option{mutex.WithTTL(30 * time.Second), mutex.WithRenewInterval(10 * time.Second)}
}

// noBackoff makes a waiter depend on wake-ups: its fallback retry is
// minutes away (capped by the holder's TTL, 30s).
func noBackoff() mutex.Option {
	return mutex.WithBackoff(func() backoff.BackOff { return backoff.NewConstantBackOff(10 * time.Minute) })
}

// waitLost waits until l ends and checks that it was revoked.
func waitLost(t *testing.T, l *lease.Lease, within time.Duration) {
	t.Helper()
	select {
	case <-l.Lost():
	case <-time.After(within):
		t.Fatalf("the holder's Lost did not close within %v of the revocation", within)
	}
	if err := l.Err(); !errors.Is(err, lease.ErrRevoked) || !errors.Is(err, lease.ErrNotHeld) {
		t.Fatalf("Err() = %v, want one matching ErrRevoked and ErrNotHeld", err)
	}
}

// waitWaiters polls Inspect until at least n processes wait for m.
func waitWaiters(t *testing.T, m *mutex.Mutex, n int64) mutex.Status {
	t.Helper()
	deadline := time.Now().Add(notifyWithin)
	for {
		st, err := m.Inspect(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.Waiters >= n {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("Inspect shows %d waiters, want at least %d", st.Waiters, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// revokeScenario: a holder on client a, an operator on client b and a
// waiter on client c. The operator inspects the lock, revokes it with the
// token it saw; the holder learns at once, the waiter is woken and takes
// the lock, and neither a stale Revoke nor a repeated one touches it.
func revokeScenario(t *testing.T, a, b, c redis.UniversalClient, name string) {
	ctx := context.Background()
	holder, err := newMutex(t, a, name, longHold()...).Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	op := newMutex(t, b, name)
	st, err := op.Inspect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Held || st.Name != name || st.Token != holder.Token() || st.Fence != holder.Fence() || st.Waiters != 0 {
		t.Fatalf("Inspect = %+v, want held by token %s fence %d, no waiters", st, holder.Token(), holder.Fence())
	}
	if st.TTL <= 20*time.Second || st.TTL > 30*time.Second {
		t.Fatalf("Inspect TTL = %v, want about 30s", st.TTL)
	}

	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	got := make(chan *lease.Lease, 1)
	errs := make(chan error, 1)
	go func() {
		l, err := newMutex(t, c, name, append(longHold(), noBackoff())...).Lock(wctx)
		if err != nil {
			errs <- err
			return
		}
		got <- l
	}()
	st = waitWaiters(t, op, 1)

	revokedAt := time.Now()
	if err := op.Revoke(ctx, st.Token); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	waitLost(t, holder, notifyWithin)
	var next *lease.Lease
	select {
	case next = <-got:
	case err := <-errs:
		t.Fatalf("waiter: %v", err)
	case <-time.After(notifyWithin):
		t.Fatalf("the waiter was not woken by the revocation")
	}
	t.Logf("holder notified and waiter acquired %v after Revoke", time.Since(revokedAt))
	defer next.Release(ctx)
	if next.Fence() <= holder.Fence() {
		t.Fatalf("fence %d after %d", next.Fence(), holder.Fence())
	}
	if err := holder.Release(ctx); !errors.Is(err, lease.ErrRevoked) {
		t.Fatalf("Release after revocation = %v, want ErrRevoked", err)
	}
	// Repeated, then stale: neither touches the new holder.
	if err := op.Revoke(ctx, holder.Token()); err != nil {
		t.Fatalf("second Revoke with the revoked token = %v, want nil (already revoked)", err)
	}
	if err := op.Revoke(ctx, "not-a-holder"); !errors.Is(err, mutex.ErrNotHeld) {
		t.Fatalf("Revoke with another token = %v, want ErrNotHeld", err)
	}
	if st, err := op.Inspect(ctx); err != nil || st.Token != next.Token() || st.Fence != next.Fence() {
		t.Fatalf("after stale revocations Inspect = %+v, %v; want the new holder %s", st, err, next.Token())
	}
	select {
	case <-next.Lost():
		t.Fatalf("the new holder was lost: %v", next.Err())
	default:
	}
}

func TestRevoke(t *testing.T) {
	s := redistest.Start(t)
	revokeScenario(t, s.Client(t), s.Client(t), s.Client(t), uniqueName(t))
}

func TestRevokeCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3, 0)
	a, b, c := cl.Client(t), cl.Client(t), cl.Client(t)
	for i := 0; i < 3; i++ { // names in different slots, most likely on different masters
		revokeScenario(t, a, b, c, fmt.Sprintf("%s-%d", uniqueName(t), i))
	}
}

func TestInspectFree(t *testing.T) {
	_, c := startRedis(t)
	st, err := newMutex(t, c, uniqueName(t)).Inspect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Held || st.Token != "" || st.Fence != 0 || st.TTL >= 0 || st.Waiters != 0 {
		t.Fatalf("Inspect of a free lock = %+v", st)
	}
}

func TestRevokeBadInput(t *testing.T) {
	_, c := startRedis(t)
	m := newMutex(t, c, uniqueName(t))
	if err := m.Revoke(context.Background(), ""); !errors.Is(err, mutex.ErrInvalid) {
		t.Fatalf("Revoke with an empty token = %v, want ErrInvalid", err)
	}
	var nilCtx context.Context
	if err := m.Revoke(nilCtx, "x"); !errors.Is(err, mutex.ErrInvalid) {
		t.Fatalf("Revoke with a nil ctx = %v, want ErrInvalid", err)
	}
	if _, err := m.Inspect(nilCtx); !errors.Is(err, mutex.ErrInvalid) {
		t.Fatalf("Inspect with a nil ctx = %v, want ErrInvalid", err)
	}
	if err := m.Revoke(context.Background(), "nobody"); !errors.Is(err, mutex.ErrNotHeld) {
		t.Fatalf("Revoke of a free lock = %v, want ErrNotHeld", err)
	}
}

// TestRevokeStaleToken: a token whose hold was released (not revoked)
// revokes nothing, and the holder that came after keeps the lock.
func TestRevokeStaleToken(t *testing.T) {
	_, c := startRedis(t)
	ctx := context.Background()
	m := newMutex(t, c, uniqueName(t))
	first, err := m.TryLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stale := first.Token()
	first.Release(ctx)
	second, err := m.TryLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Release(ctx)
	if err := m.Revoke(ctx, stale); !errors.Is(err, mutex.ErrNotHeld) {
		t.Fatalf("Revoke with a released token = %v, want ErrNotHeld", err)
	}
	if ok, err := second.Owned(ctx); !ok || err != nil {
		t.Fatalf("the current holder lost its lock to a stale Revoke: %v, %v", ok, err)
	}
}

// TestRevokeReplayedLate: the revoke script runs, a new holder takes the
// lock, and then go-redis resends the script (its reply was lost). The
// second run must not delete the new hold.
func TestRevokeReplayedLate(t *testing.T) {
	s := redistest.Start(t)
	loadScripts(t, s)
	ctx := context.Background()
	name := uniqueName(t)
	holder, err := newMutex(t, s.Client(t), name, longHold()...).Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	opc, hook := hookedClient(t, s.Addr, false)
	newHolder := make(chan *lease.Lease, 1)
	other := newMutex(t, s.Client(t), name)
	hook.once("revoke", func(ctx context.Context, cmd redis.Cmder, next redis.ProcessHook) error {
		if err := next(ctx, cmd); err != nil {
			return err
		}
		l, err := other.TryLock(ctx) // the key is free: the first run deleted it
		if err != nil {
			return fmt.Errorf("harness: TryLock between the runs: %w", err)
		}
		newHolder <- l
		return next(ctx, cmd)
	})
	if err := newMutex(t, opc, name).Revoke(ctx, holder.Token()); err != nil {
		t.Fatalf("Revoke whose first reply was lost = %v, want nil (its own first run revoked the hold)", err)
	}
	hook.fired(t, "revoke")
	waitLost(t, holder, notifyWithin)
	l := <-newHolder
	defer l.Release(ctx)
	if ok, err := l.Owned(ctx); !ok || err != nil {
		t.Fatalf("the second run of revoke deleted the new holder: %v, %v", ok, err)
	}
}

// TestRevokeLostReply: the revocation ran but its reply never came; the
// holder is told anyway, and Revoke again reports success without touching
// anything.
func TestRevokeLostReply(t *testing.T) {
	s := redistest.Start(t)
	loadScripts(t, s)
	ctx := context.Background()
	name := uniqueName(t)
	holder, err := newMutex(t, s.Client(t), name, longHold()...).Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	opc, hook := hookedClient(t, s.Addr, false)
	op := newMutex(t, opc, name)
	hook.once("revoke", lostReply(nil, nil, nil))
	if err := op.Revoke(ctx, holder.Token()); err == nil {
		t.Fatal("Revoke with a lost reply returned nil")
	}
	waitLost(t, holder, notifyWithin)
	if err := op.Revoke(ctx, holder.Token()); err != nil {
		t.Fatalf("Revoke after a lost reply = %v, want nil (already revoked)", err)
	}
	if n := hook.count("revoke"); n != 2 {
		t.Fatalf("%d revoke calls, want 2", n)
	}
}

// delayedDials delays every dial of a client after its first: the first is
// its pool's, the second its revocation listener's subscription.
type delayedDials struct {
	n     atomic.Int32
	delay time.Duration
}

func (d *delayedDials) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if d.n.Add(1) > 1 {
			time.Sleep(d.delay)
		}
		return next(ctx, network, addr)
	}
}

func (d *delayedDials) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (d *delayedDials) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestRevokeBeforeSubscribed: a revocation right after Lock, published
// while the holder's notice subscription is still being opened, is found
// when the subscription is confirmed (its tombstone), not at the next
// renewal.
func TestRevokeBeforeSubscribed(t *testing.T) {
	s := redistest.Start(t)
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		a := redis.NewClient(&redis.Options{Addr: s.Addr, DialTimeout: time.Second})
		a.AddHook(&delayedDials{delay: 300 * time.Millisecond})
		t.Cleanup(func() { _ = a.Close() })
		name := uniqueName(t)
		holder, err := newMutex(t, a, name, longHold()...).Lock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := newMutex(t, s.Client(t), name).Revoke(ctx, holder.Token()); err != nil {
			t.Fatal(err)
		}
		waitLost(t, holder, notifyWithin)
	}
}

// TestRevokeCustomToken: Revoke by a custom token removes whichever hold has
// it now.
func TestRevokeCustomToken(t *testing.T) {
	_, c := startRedis(t)
	ctx := context.Background()
	name := uniqueName(t)
	m := newMutex(t, c, name, mutex.WithToken("owner-7"))
	l, err := m.TryLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := newMutex(t, c, name).Revoke(ctx, "owner-7"); err != nil {
		t.Fatal(err)
	}
	waitLost(t, l, notifyWithin)
	again, err := m.TryLock(ctx)
	if err != nil {
		t.Fatalf("re-acquire after revocation: %v", err)
	}
	defer again.Release(ctx)
	if again.Fence() <= l.Fence() {
		t.Fatalf("fence %d after %d", again.Fence(), l.Fence())
	}
	select {
	case <-again.Lost():
		t.Fatalf("the re-acquired lease was lost: %v (an earlier notice matched it)", again.Err())
	case <-time.After(100 * time.Millisecond):
	}
}
