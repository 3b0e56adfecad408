package semaphore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
	"github.com/redlease/redlease/semaphore"
)

const notifyWithin = 5 * time.Second

var longHold = []mutex.Option{
	mutex.WithTTL(30 * time.Second), mutex.WithRenewInterval(10 * time.Second),
	mutex.WithBackoff(func() backoff.BackOff { return backoff.NewConstantBackOff(10 * time.Minute) }),
}

func waitRevoked(t *testing.T, l *lease.Lease) {
	t.Helper()
	select {
	case <-l.Lost():
	case <-time.After(notifyWithin):
		t.Fatalf("the holder's Lost did not close within %v of the revocation", notifyWithin)
	}
	if err := l.Err(); !errors.Is(err, lease.ErrRevoked) || !errors.Is(err, lease.ErrNotHeld) {
		t.Fatalf("Err() = %v, want one matching ErrRevoked and ErrNotHeld", err)
	}
}

// semRevokeScenario: two holders of one unit each (clients a1, a2) of a
// 3-unit semaphore, a waiter for 2 units (client c), an operator (client
// b). Revoking one holder tells it at once, wakes the waiter, and leaves
// the other holder alone.
func semRevokeScenario(t *testing.T, a1, a2, b, c redis.UniversalClient, name string) {
	ctx := context.Background()
	h1, err := newSem(t, a1, name, 3, longHold...).Acquire(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	h2, err := newSem(t, a2, name, 3, longHold...).Acquire(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Release(ctx)
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	got := make(chan *lease.Lease, 1)
	errs := make(chan error, 1)
	go func() {
		l, err := newSem(t, c, name, 3, longHold...).Acquire(wctx, 2)
		if err != nil {
			errs <- err
			return
		}
		got <- l
	}()
	op := newSem(t, b, name, 3)
	var st semaphore.Status
	deadline := time.Now().Add(notifyWithin)
	for st.Waiters < 1 {
		if st, err = op.Inspect(ctx); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("Inspect = %+v: no waiter", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st.Name != name || st.Limit != 3 || st.Used != 2 || len(st.Holders) != 2 ||
		st.Holders[0].Token != h1.Token() || st.Holders[0].Fence != h1.Fence() || st.Holders[0].Units != 1 ||
		st.Holders[1].Token != h2.Token() || st.Holders[1].Fence != h2.Fence() ||
		st.Holders[0].TTL <= 20*time.Second || st.Holders[0].TTL > 30*time.Second {
		t.Fatalf("Inspect = %+v, want holders %s/%d and %s/%d", st, h1.Token(), h1.Fence(), h2.Token(), h2.Fence())
	}

	if err := op.Revoke(ctx, h1.Token()); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	waitRevoked(t, h1)
	select {
	case l := <-got:
		defer l.Release(ctx)
	case err := <-errs:
		t.Fatalf("waiter: %v", err)
	case <-time.After(notifyWithin):
		t.Fatal("the waiter was not woken by the revocation")
	}
	if ok, err := h2.Owned(ctx); !ok || err != nil {
		t.Fatalf("the other holder lost its units: %v, %v", ok, err)
	}
	if err := op.Revoke(ctx, h1.Token()); err != nil {
		t.Fatalf("second Revoke = %v, want nil (already revoked)", err)
	}
	if err := op.Revoke(ctx, "nobody"); !errors.Is(err, lease.ErrNotHeld) {
		t.Fatalf("Revoke with another token = %v, want ErrNotHeld", err)
	}
	if st, err := op.Inspect(ctx); err != nil || st.Used != 3 || len(st.Holders) != 2 {
		t.Fatalf("after the waiter acquired: Inspect = %+v, %v; want 3 units in 2 holds", st, err)
	}
	if err := h1.Release(ctx); !errors.Is(err, lease.ErrRevoked) {
		t.Fatalf("Release after revocation = %v, want ErrRevoked", err)
	}
}

func TestRevoke(t *testing.T) {
	s := redistest.Start(t)
	semRevokeScenario(t, s.Client(t), s.Client(t), s.Client(t), s.Client(t), uniqueName(t))
}

func TestRevokeCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3, 0)
	for i := 0; i < 2; i++ {
		semRevokeScenario(t, cl.Client(t), cl.Client(t), cl.Client(t), cl.Client(t), fmt.Sprintf("%s-%d", uniqueName(t), i))
	}
}

// TestRevokeTwice: a revoke script that runs twice (its first reply lost)
// reports success and frees the hold's units once.
func TestRevokeTwice(t *testing.T) {
	s, c := startRedis(t)
	ctx := context.Background()
	name := uniqueName(t)
	sem := newSem(t, c, name, 2, longHold...)
	h1, err := sem.Acquire(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	h2, err := sem.Acquire(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Release(ctx)
	twice := s.Client(t)
	twice.AddHook(twiceHook{})
	if err := newSem(t, twice, name, 2).Revoke(ctx, h1.Token()); err != nil {
		t.Fatalf("doubled Revoke = %v, want nil", err)
	}
	waitRevoked(t, h1)
	if free, _ := sem.Available(ctx); free != 1 {
		t.Fatalf("free %d after revoking one of two units, want 1", free)
	}
	if ok, err := h2.Owned(ctx); !ok || err != nil {
		t.Fatalf("the other holder lost its units: %v, %v", ok, err)
	}
	var nilCtx context.Context
	if err := sem.Revoke(ctx, ""); !errors.Is(err, semaphore.ErrInvalid) {
		t.Fatalf("Revoke with an empty token = %v", err)
	}
	if err := sem.Revoke(nilCtx, "x"); !errors.Is(err, semaphore.ErrInvalid) {
		t.Fatalf("Revoke with a nil ctx = %v", err)
	}
	if _, err := sem.Inspect(nilCtx); !errors.Is(err, semaphore.ErrInvalid) {
		t.Fatalf("Inspect with a nil ctx = %v", err)
	}
}
