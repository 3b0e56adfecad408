package rwmutex_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
	"github.com/redlease/redlease/rwmutex"
)

const notifyWithin = 5 * time.Second

var longHold = []mutex.Option{mutex.WithTTL(30 * time.Second), mutex.WithRenewInterval(10 * time.Second), slow}

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

func inspectUntil(t *testing.T, m *rwmutex.RWMutex, ok func(rwmutex.Status) bool) rwmutex.Status {
	t.Helper()
	deadline := time.Now().Add(notifyWithin)
	for {
		st, err := m.Inspect(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("Inspect = %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// rwRevokeScenario: two readers (clients r1, r2) and a writer waiting in
// Lock (client w); the operator (client b) revokes one reader — the other
// keeps its hold and the writer still waits — then the other; the writer is
// woken, and then revoked in turn, which wakes a waiting reader.
func rwRevokeScenario(t *testing.T, r1c, r2c, wc, b redis.UniversalClient, name string) {
	ctx := context.Background()
	r1, err := newRW(t, r1c, name, longHold...).RLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := newRW(t, r2c, name, longHold...).RLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	got := make(chan *lease.Lease, 1)
	errs := make(chan error, 1)
	go func() {
		l, err := newRW(t, wc, name, longHold...).Lock(wctx)
		if err != nil {
			errs <- err
			return
		}
		got <- l
	}()
	op := newRW(t, b, name)
	st := inspectUntil(t, op, func(s rwmutex.Status) bool { return s.Waiters >= 1 && s.WriterWaiting })
	if st.Name != name || st.Writer != nil || len(st.Readers) != 2 ||
		st.Readers[0].Token != r1.Token() || st.Readers[0].Fence != r1.Fence() ||
		st.Readers[1].Token != r2.Token() || st.Readers[1].Fence != r2.Fence() ||
		st.Readers[0].TTL <= 20*time.Second || st.Readers[0].TTL > 30*time.Second {
		t.Fatalf("Inspect = %+v, want readers %s/%d and %s/%d", st, r1.Token(), r1.Fence(), r2.Token(), r2.Fence())
	}

	if err := op.Revoke(ctx, r1.Token()); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	waitRevoked(t, r1)
	if ok, err := r2.Owned(ctx); !ok || err != nil {
		t.Fatalf("the other reader lost its hold: %v, %v", ok, err)
	}
	select {
	case <-got:
		t.Fatal("the writer got in while a reader held")
	case err := <-errs:
		t.Fatalf("writer: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	if err := op.Revoke(ctx, r2.Token()); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	waitRevoked(t, r2)
	var w *lease.Lease
	select {
	case w = <-got:
	case err := <-errs:
		t.Fatalf("writer: %v", err)
	case <-time.After(notifyWithin):
		t.Fatal("the writer was not woken by the revocation")
	}
	st = inspectUntil(t, op, func(s rwmutex.Status) bool { return true })
	if st.Writer == nil || st.Writer.Token != w.Token() || st.Writer.Fence != w.Fence() || len(st.Readers) != 0 || st.WriterWaiting {
		t.Fatalf("Inspect = %+v, want the writer %s/%d", st, w.Token(), w.Fence())
	}

	rgot := make(chan *lease.Lease, 1)
	go func() {
		l, err := newRW(t, r1c, name, longHold...).RLock(wctx)
		if err != nil {
			errs <- err
			return
		}
		rgot <- l
	}()
	inspectUntil(t, op, func(s rwmutex.Status) bool { return s.Waiters >= 1 })
	if err := op.Revoke(ctx, w.Token()); err != nil {
		t.Fatalf("Revoke of the writer: %v", err)
	}
	waitRevoked(t, w)
	select {
	case l := <-rgot:
		_ = l.Release(ctx)
	case err := <-errs:
		t.Fatalf("reader: %v", err)
	case <-time.After(notifyWithin):
		t.Fatal("the waiting reader was not woken by the revocation of the writer")
	}
	if err := op.Revoke(ctx, w.Token()); err != nil {
		t.Fatalf("second Revoke = %v, want nil (already revoked)", err)
	}
	if err := op.Revoke(ctx, "nobody"); !errors.Is(err, lease.ErrNotHeld) {
		t.Fatalf("Revoke with another token = %v, want ErrNotHeld", err)
	}
}

func TestRevoke(t *testing.T) {
	s := redistest.Start(t)
	rwRevokeScenario(t, s.Client(t), s.Client(t), s.Client(t), s.Client(t), uniqueName(t))
}

func TestRevokeCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3, 0)
	for i := 0; i < 2; i++ {
		rwRevokeScenario(t, cl.Client(t), cl.Client(t), cl.Client(t), cl.Client(t), fmt.Sprintf("%s-%d", uniqueName(t), i))
	}
}

// TestRevokeTwice: a revoke script that runs twice (its first reply lost)
// reports success, and revocation of a stale token touches nothing.
func TestRevokeTwice(t *testing.T) {
	s, c := startRedis(t)
	ctx := context.Background()
	name := uniqueName(t)
	m := newRW(t, c, name, longHold...)
	w, err := m.TryLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	twice := s.Client(t)
	twice.AddHook(twiceHook{})
	if err := newRW(t, twice, name).Revoke(ctx, w.Token()); err != nil {
		t.Fatalf("doubled Revoke = %v, want nil", err)
	}
	waitRevoked(t, w)
	r, err := m.TryRLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release(ctx)
	if err := m.Revoke(ctx, w.Token()); err != nil {
		t.Fatalf("Revoke of the revoked writer again = %v, want nil", err)
	}
	if ok, err := r.Owned(ctx); !ok || err != nil {
		t.Fatalf("a stale Revoke removed the reader: %v, %v", ok, err)
	}
	var nilCtx context.Context
	if err := m.Revoke(ctx, ""); !errors.Is(err, rwmutex.ErrInvalid) {
		t.Fatalf("Revoke with an empty token = %v", err)
	}
	if err := m.Revoke(nilCtx, "x"); !errors.Is(err, rwmutex.ErrInvalid) {
		t.Fatalf("Revoke with a nil ctx = %v", err)
	}
	if _, err := m.Inspect(nilCtx); !errors.Is(err, rwmutex.ErrInvalid) {
		t.Fatalf("Inspect with a nil ctx = %v", err)
	}
}
