package multilock_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/multilock"
	"github.com/redlease/redlease/mutex"
)

// multiRevokeScenario: a MultiLock lease over 5 names (client a); the
// operator (client b) inspects the set and revokes it by token: every name
// is freed, the holder learns at once, and a Mutex of one name (client c)
// that waited is woken.
func multiRevokeScenario(t *testing.T, a, b, c redis.UniversalClient) {
	ctx := context.Background()
	ns := names(t, 5)
	opts := []mutex.Option{mutex.WithTTL(30 * time.Second), mutex.WithRenewInterval(10 * time.Second)}
	ml, err := multilock.New(a, ns, opts...)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ml.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	op, err := multilock.New(b, ns)
	if err != nil {
		t.Fatal(err)
	}
	sts, err := op.Inspect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	order := op.Names()
	if len(sts) != len(order) {
		t.Fatalf("%d statuses for %d names", len(sts), len(order))
	}
	for i, st := range sts {
		if st.Name != order[i] || !st.Held || st.Token != l.Token() || st.Fence != l.FenceOf(st.Name) || st.TTL <= 20*time.Second {
			t.Fatalf("status %d = %+v, want %q held by %s with fence %d", i, st, order[i], l.Token(), l.FenceOf(order[i]))
		}
	}

	one, _ := mutex.New(c, order[2], append(opts, mutex.WithBackoff(nil))[:2]...)
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	got := make(chan *lease.Lease, 1)
	go func() {
		w, err := one.Lock(wctx)
		if err != nil {
			t.Error(err)
			close(got)
			return
		}
		got <- w
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := one.Inspect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Waiters >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no waiter seen")
		}
		time.Sleep(10 * time.Millisecond)
	}

	if err := op.Revoke(ctx, l.Token()); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	select {
	case <-l.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("the holder was not told within 5s")
	}
	if err := l.Err(); !errors.Is(err, lease.ErrRevoked) || !errors.Is(err, lease.ErrNotHeld) {
		t.Fatalf("Err() = %v, want ErrRevoked", err)
	}
	select {
	case w, ok := <-got:
		if !ok {
			t.FailNow()
		}
		defer w.Release(ctx)
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter of one name was not woken")
	}
	sts, err = op.Inspect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range sts {
		if st.Held && st.Token == l.Token() {
			t.Fatalf("%q still held by the revoked token", st.Name)
		}
	}
	if err := op.Revoke(ctx, l.Token()); err != nil {
		t.Fatalf("second Revoke = %v, want nil (already revoked)", err)
	}
	if err := op.Revoke(ctx, "nobody"); !errors.Is(err, mutex.ErrNotHeld) {
		t.Fatalf("Revoke with another token = %v, want ErrNotHeld", err)
	}
}

func TestRevoke(t *testing.T) {
	s := redistest.Start(t)
	multiRevokeScenario(t, s.Client(t), s.Client(t), s.Client(t))
}

func TestRevokeCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3, 0)
	multiRevokeScenario(t, cl.Client(t), cl.Client(t), cl.Client(t))
}
