package multilock_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/multilock"
	"github.com/redlease/redlease/mutex"
)

// TestReviewRevokeOneNameReleaseFreesTheOthers: an operator revokes one name
// of a MultiLock lease (with a Mutex of that name). The lease ends with
// ErrRevoked; its Release must still free the names it holds — before the
// fix it deleted nothing, and the other names stayed locked by no one until
// their TTL (30s) ran out.
func TestReviewRevokeOneNameReleaseFreesTheOthers(t *testing.T) {
	s := redistest.Start(t)
	ctx := context.Background()
	ns := names(t, 3)
	opts := []mutex.Option{mutex.WithTTL(30 * time.Second), mutex.WithRenewInterval(10 * time.Second)}
	ml, err := multilock.New(s.Client(t), ns, opts...)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ml.TryLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	op, err := mutex.New(s.Client(t), ns[1])
	if err != nil {
		t.Fatal(err)
	}
	if err := op.Revoke(ctx, l.Token()); err != nil {
		t.Fatalf("Revoke %q: %v", ns[1], err)
	}
	select {
	case <-l.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("the holder was not told within 5s")
	}
	if err := l.Err(); !errors.Is(err, lease.ErrRevoked) {
		t.Fatalf("Err() = %v, want ErrRevoked", err)
	}
	if err := l.Release(ctx); !errors.Is(err, lease.ErrRevoked) {
		t.Fatalf("Release of the revoked lease = %v, want an error wrapping ErrRevoked", err)
	}
	for _, n := range ns {
		m, err := mutex.New(s.Client(t), n)
		if err != nil {
			t.Fatal(err)
		}
		o, err := m.TryLock(ctx)
		if err != nil {
			t.Fatalf("TryLock %q after the revoked lease's Release: %v (the name stays locked by no one)", n, err)
		}
		_ = o.Release(ctx)
	}
}
