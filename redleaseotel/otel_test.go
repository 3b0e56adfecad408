package redleaseotel_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/redlease/redlease/internal/faultproxy"
	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/multilock"
	"github.com/redlease/redlease/mutex"
	"github.com/redlease/redlease/redleaseotel"
	"github.com/redlease/redlease/rwmutex"
	"github.com/redlease/redlease/semaphore"
)

type attrs = map[string]string

func waitLost(t *testing.T, l *lease.Lease) {
	t.Helper()
	select {
	case <-l.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("lease not lost within 5s")
	}
}

// TestMetricsScenario runs a scripted scenario on one mutex — acquire,
// contend, give up, a handoff to a waiter, release, a lease lost by expiry
// with auto-renewal off and one lost by a failed renewal — and checks every
// metric and the Lock spans.
func TestMetricsScenario(t *testing.T) {
	s := newSDK(t)
	c := redistest.Start(t).Client(t)
	ctx := context.Background()
	const name = "otel-scenario"
	m, err := mutex.New(c, name, mutex.WithObserver(s.obs))
	if err != nil {
		t.Fatal(err)
	}
	mk := attrs{redleaseotel.AttrKind: "mutex", redleaseotel.AttrName: name}

	// Acquire, then contend: a TryLock finds it busy, a Lock gives up.
	l1, err := m.TryLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.wantSum(redleaseotel.MetricLeaseActive, mk, 1)
	if _, err := m.TryLock(ctx); !errors.Is(err, mutex.ErrLocked) {
		t.Fatalf("TryLock on a held lock: %v, want ErrLocked", err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err = m.Lock(short)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock past its deadline: %v, want DeadlineExceeded", err)
	}

	// A waiter queues; the release hands the lock to it.
	type result struct {
		l   *lease.Lease
		err error
	}
	got := make(chan result, 1)
	go func() {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		l, err := m.Lock(wctx)
		got <- result{l, err}
	}()
	s.waitSum(redleaseotel.MetricWaitActive, mk, 1)
	if err := l1.Release(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil {
		t.Fatal(r.err)
	}
	s.wantSum(redleaseotel.MetricWaitActive, mk, 0)
	s.wantSum(redleaseotel.MetricHandoffs, mk, 1)
	if err := r.l.Release(ctx); err != nil {
		t.Fatal(err)
	}

	// Lost by expiry, auto-renewal off: a Release afterwards is no release.
	mExp, _ := mutex.New(c, name+"-exp", mutex.WithObserver(s.obs), mutex.WithAutoRenew(false), mutex.WithTTL(100*time.Millisecond))
	lExp, err := mExp.TryLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitLost(t, lExp)
	if err := lExp.Release(ctx); !errors.Is(err, lease.ErrExpired) {
		t.Fatalf("Release after expiry: %v, want ErrExpired", err)
	}

	// A renewal that finds the key gone fails and loses the lease.
	mRen, _ := mutex.New(c, name+"-ren", mutex.WithObserver(s.obs), mutex.WithTTL(time.Second), mutex.WithRenewInterval(50*time.Millisecond))
	lRen, err := mRen.TryLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Del(ctx, "redlease:{"+name+"-ren}").Err(); err != nil {
		t.Fatal(err)
	}
	waitLost(t, lRen)
	if !errors.Is(lRen.Err(), lease.ErrNotHeld) {
		t.Fatalf("lease err %v, want ErrNotHeld", lRen.Err())
	}

	// Every metric, by its attributes.
	try := func(outcome string) attrs {
		return attrs{redleaseotel.AttrKind: "mutex", redleaseotel.AttrName: name, redleaseotel.AttrBlocking: "false", redleaseotel.AttrOutcome: outcome}
	}
	lock := func(outcome string) attrs {
		return attrs{redleaseotel.AttrKind: "mutex", redleaseotel.AttrName: name, redleaseotel.AttrBlocking: "true", redleaseotel.AttrOutcome: outcome}
	}
	s.wantCount(redleaseotel.MetricWaitDuration, try("acquired"), 1)
	s.wantCount(redleaseotel.MetricWaitDuration, try("busy"), 1)
	s.wantCount(redleaseotel.MetricWaitDuration, lock("canceled"), 1)
	s.wantCount(redleaseotel.MetricWaitDuration, lock("acquired"), 1)
	s.wantCount(redleaseotel.MetricWaitDuration, attrs{redleaseotel.AttrKind: "mutex"}, 6) // 4 above + the two other mutexes' TryLocks
	s.wantSum(redleaseotel.MetricAcquisitions, attrs{redleaseotel.AttrName: name, redleaseotel.AttrBlocking: "false"}, 1)
	s.wantSum(redleaseotel.MetricAcquisitions, attrs{redleaseotel.AttrName: name, redleaseotel.AttrBlocking: "true"}, 1)
	s.wantSum(redleaseotel.MetricAcquisitions, attrs{redleaseotel.AttrKind: "mutex"}, 4)
	s.wantSum(redleaseotel.MetricReleases, attrs{redleaseotel.AttrName: name, redleaseotel.AttrErrorType: ""}, 2)
	s.wantSum(redleaseotel.MetricReleases, attrs{}, 2)
	s.wantSum(redleaseotel.MetricLeaseLosses, attrs{redleaseotel.AttrName: name + "-exp", redleaseotel.AttrLossReason: "expired"}, 1)
	s.wantSum(redleaseotel.MetricLeaseLosses, attrs{redleaseotel.AttrName: name + "-ren", redleaseotel.AttrLossReason: "not_held"}, 1)
	s.wantSum(redleaseotel.MetricLeaseLosses, attrs{}, 2)
	// The renewal reports its failure after the loss it caused.
	s.waitSum(redleaseotel.MetricRenewalFailures, attrs{redleaseotel.AttrName: name + "-ren", redleaseotel.AttrErrorType: "not_held"}, 1)
	s.wantSum(redleaseotel.MetricRenewalFailures, attrs{}, 1)
	s.wantSum(redleaseotel.MetricHandoffs, attrs{}, 1)
	s.wantSum(redleaseotel.MetricLeaseActive, attrs{}, 0)
	s.wantSum(redleaseotel.MetricWaitActive, attrs{}, 0)

	// Units and instruments, as the README lists them.
	units := map[string]string{
		redleaseotel.MetricWaitDuration:    "s",
		redleaseotel.MetricAcquisitions:    "{acquisition}",
		redleaseotel.MetricReleases:        "{release}",
		redleaseotel.MetricHandoffs:        "{handoff}",
		redleaseotel.MetricWaitActive:      "{waiter}",
		redleaseotel.MetricLeaseActive:     "{lease}",
		redleaseotel.MetricLeaseLosses:     "{lease}",
		redleaseotel.MetricRenewalFailures: "{failure}",
	}
	all := s.collect()
	for name, unit := range units {
		m, ok := all[name]
		if !ok {
			t.Errorf("metric %s not recorded", name)
			continue
		}
		if m.Unit != unit {
			t.Errorf("%s unit %q, want %q", name, m.Unit, unit)
		}
		if sum, ok := m.Data.(metricdata.Sum[int64]); ok {
			upDown := name == redleaseotel.MetricWaitActive || name == redleaseotel.MetricLeaseActive
			if sum.IsMonotonic == upDown {
				t.Errorf("%s monotonic %v, want %v", name, sum.IsMonotonic, !upDown)
			}
		}
	}
	if len(all) != len(units) {
		t.Errorf("%d metrics recorded, want %d", len(all), len(units))
	}

	// One span per Lock, none per TryLock.
	spans := s.spans.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2 (one per Lock)", len(spans))
	}
	for i, want := range []struct {
		outcome string
		status  codes.Code
	}{{"canceled", codes.Error}, {"acquired", codes.Unset}} {
		sp := spans[i]
		a := spanAttrs(sp)
		if sp.Name() != redleaseotel.SpanName || a[redleaseotel.AttrKind] != "mutex" || a[redleaseotel.AttrName] != name || a[redleaseotel.AttrOutcome] != want.outcome {
			t.Errorf("span %d: %s %v, want %s with kind mutex, name %s, outcome %s", i, sp.Name(), a, redleaseotel.SpanName, name, want.outcome)
		}
		if sp.Status().Code != want.status {
			t.Errorf("span %d status %v, want %v", i, sp.Status(), want.status)
		}
	}
	if d := spans[0].EndTime().Sub(spans[0].StartTime()); d < 50*time.Millisecond {
		t.Errorf("the canceled Lock's span lasted %v: it must cover the 50ms wait", d)
	}
}

// TestWithoutNameAttribute: WithNameAttribute(false) keeps the name out of
// spans and metrics.
func TestWithoutNameAttribute(t *testing.T) {
	s := newSDK(t, redleaseotel.WithNameAttribute(false))
	c := redistest.Start(t).Client(t)
	ctx := context.Background()
	m, _ := mutex.New(c, "secret-name", mutex.WithObserver(s.obs))
	l, err := m.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	spans := s.spans.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1", len(spans))
	}
	a := spanAttrs(spans[0])
	if _, ok := a[redleaseotel.AttrName]; ok || a[redleaseotel.AttrKind] != "mutex" || a[redleaseotel.AttrOutcome] != "acquired" {
		t.Errorf("span attributes %v: want kind and outcome, no name", a)
	}
	noName := attrs{redleaseotel.AttrName: "", redleaseotel.AttrKind: "mutex"}
	s.wantSum(redleaseotel.MetricAcquisitions, noName, 1)
	s.wantSum(redleaseotel.MetricAcquisitions, attrs{}, 1)
	s.wantSum(redleaseotel.MetricReleases, noName, 1)
	s.wantCount(redleaseotel.MetricWaitDuration, noName, 1)
}

// TestKinds: each kind of lock reports its own kind.
func TestKinds(t *testing.T) {
	s := newSDK(t)
	c := redistest.Start(t).Client(t)
	ctx := context.Background()
	opt := mutex.WithObserver(s.obs)
	ml, _ := multilock.New(c, []string{"k-a", "k-b"}, opt)
	sem, _ := semaphore.New(c, "k-sem", 2, opt)
	rw, _ := rwmutex.New(c, "k-rw", opt)
	check := func(l *lease.Lease, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	check(ml.TryLock(ctx))
	check(ml.Lock(ctx))
	check(sem.TryAcquire(ctx, 1))
	check(sem.Acquire(ctx, 2))
	check(rw.TryRLock(ctx))
	check(rw.RLock(ctx))
	check(rw.TryLock(ctx))
	check(rw.Lock(ctx))
	for kind, name := range map[string]string{"multilock": "k-a,k-b", "semaphore": "k-sem", "rwmutex.read": "k-rw", "rwmutex.write": "k-rw"} {
		for _, blocking := range []string{"false", "true"} {
			s.wantSum(redleaseotel.MetricAcquisitions, attrs{redleaseotel.AttrKind: kind, redleaseotel.AttrName: name, redleaseotel.AttrBlocking: blocking}, 1)
		}
		s.wantSum(redleaseotel.MetricReleases, attrs{redleaseotel.AttrKind: kind}, 2)
	}
	s.wantSum(redleaseotel.MetricLeaseActive, attrs{}, 0)
	kinds := map[string]int{}
	for _, sp := range s.spans.Ended() {
		kinds[spanAttrs(sp)[redleaseotel.AttrKind]]++
	}
	for _, k := range []string{"multilock", "semaphore", "rwmutex.read", "rwmutex.write"} {
		if kinds[k] != 1 {
			t.Errorf("%d Lock spans of kind %s, want 1 (all: %v)", kinds[k], k, kinds)
		}
	}
}

// TestSemaphoreAndRWMutexWaiters: the waiters of a semaphore and of an
// rwmutex are counted while they queue.
func TestSemaphoreAndRWMutexWaiters(t *testing.T) {
	s := newSDK(t)
	c := redistest.Start(t).Client(t)
	ctx := context.Background()
	sem, _ := semaphore.New(c, "w-sem", 1, mutex.WithObserver(s.obs))
	rw, _ := rwmutex.New(c, "w-rw", mutex.WithObserver(s.obs))
	held, err := sem.TryAcquire(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	wl, err := rw.TryLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 2)
	go func() {
		l, err := sem.Acquire(ctx, 1)
		if err == nil {
			err = l.Release(ctx)
		}
		done <- err
	}()
	go func() {
		l, err := rw.RLock(ctx)
		if err == nil {
			err = l.Release(ctx)
		}
		done <- err
	}()
	s.waitSum(redleaseotel.MetricWaitActive, attrs{redleaseotel.AttrKind: "semaphore"}, 1)
	s.waitSum(redleaseotel.MetricWaitActive, attrs{redleaseotel.AttrKind: "rwmutex.read"}, 1)
	held.Release(ctx)
	wl.Release(ctx)
	for i := 0; i < 2; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	s.wantSum(redleaseotel.MetricWaitActive, attrs{}, 0)
	s.wantSum(redleaseotel.MetricLeaseActive, attrs{}, 0)
}

func TestNewNilOption(t *testing.T) {
	if _, err := redleaseotel.New(nil); !errors.Is(err, lease.ErrInvalid) {
		t.Fatalf("New(nil): %v, want ErrInvalid", err)
	}
}

// TestRenewalFailureRecovered: renewals that time out while Redis's replies
// are held back count as failures with error.type timeout; once replies flow
// again a renewal succeeds and the lease is never lost.
func TestRenewalFailureRecovered(t *testing.T) {
	s := newSDK(t)
	srv := redistest.Start(t)
	p, err := faultproxy.New(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c := redis.NewClient(&redis.Options{Addr: p.Addr(), ReadTimeout: 100 * time.Millisecond, MaxRetries: -1})
	defer c.Close()
	ctx := context.Background()
	const name = "otel-recovered"
	m, _ := mutex.New(c, name, mutex.WithObserver(s.obs), mutex.WithTTL(5*time.Second), mutex.WithRenewInterval(100*time.Millisecond))
	l, err := m.TryLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p.Blackhole(faultproxy.Downstream)
	timeout := attrs{redleaseotel.AttrName: name, redleaseotel.AttrErrorType: "timeout"}
	deadline := time.Now().Add(5 * time.Second)
	for s.sum(redleaseotel.MetricRenewalFailures, timeout) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no renewal failure with error.type timeout within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.Restore()
	// A renewal succeeds again: the deadline moves past where it stood.
	valid := l.ValidUntil()
	deadline = time.Now().Add(5 * time.Second)
	for !l.ValidUntil().After(valid) {
		if time.Now().After(deadline) || l.Err() != nil {
			t.Fatalf("no successful renewal within 5s of restoring replies (lease err %v)", l.Err())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	s.wantSum(redleaseotel.MetricLeaseLosses, attrs{}, 0)
	s.wantSum(redleaseotel.MetricReleases, attrs{redleaseotel.AttrName: name, redleaseotel.AttrErrorType: ""}, 1)
	s.wantSum(redleaseotel.MetricLeaseActive, attrs{}, 0)
}

// TestRevokedLoss: a lease revoked by an operator counts one loss with
// reason revoked, and the held-leases gauge returns to zero.
func TestRevokedLoss(t *testing.T) {
	s := newSDK(t)
	c := redistest.Start(t).Client(t)
	ctx := context.Background()
	const name = "otel-revoked"
	m, err := mutex.New(c, name, mutex.WithObserver(s.obs), mutex.WithTTL(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	l, err := m.TryLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Revoke(ctx, l.Token()); err != nil {
		t.Fatal(err)
	}
	waitLost(t, l)
	if !errors.Is(l.Err(), lease.ErrRevoked) {
		t.Fatalf("Err() = %v, want ErrRevoked", l.Err())
	}
	mk := attrs{redleaseotel.AttrKind: "mutex", redleaseotel.AttrName: name}
	s.wantSum(redleaseotel.MetricLeaseLosses, attrs{redleaseotel.AttrName: name, redleaseotel.AttrLossReason: "revoked"}, 1)
	s.wantSum(redleaseotel.MetricLeaseActive, mk, 0)
}
