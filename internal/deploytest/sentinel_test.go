package deploytest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/core"
	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
)

// TestSentinel runs on one master with two replicas and three sentinels,
// through failover clients: the basic operations, then the failover trial
// without and with replica acknowledgement (two failovers).
func TestSentinel(t *testing.T) {
	s := redistest.StartSentinel(t, 2, 3)
	t.Run("Basic", func(t *testing.T) { testSentinelBasic(t, s) })
	t.Run("FailoverOff", func(t *testing.T) { runTrial(t, "Sentinel", sentinelEnv(t, s), false) })
	s.WaitHealthy(t)
	t.Run("FailoverOn", func(t *testing.T) { runTrial(t, "Sentinel", sentinelEnv(t, s), true) })
}

// testSentinelBasic: Lock, TryLock, Extend, Refresh, Guard and Release
// through a failover client; the key is on the master and replicated with
// WithReplicas(2, ...); a waiter on another failover client is woken by the
// release (its fallback backoff is a minute).
func testSentinelBasic(t *testing.T, s *redistest.Sentinel) {
	ctx := context.Background()
	a, b := s.Client(t), s.Client(t)
	addr, err := s.MasterAddr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mc := s.Node(addr).Client(t)
	const name = "basic"
	l := lockWithin(t, newMutex(t, a, name, mutex.WithTTL(time.Minute), mutex.WithReplicas(2, time.Second)), 10*time.Second)
	if v, err := mc.Get(ctx, lockKey(name)).Result(); err != nil || !core.Holds(v, l.Token()) {
		t.Fatalf("%s on the master = %q, %v", lockKey(name), v, err)
	}
	for _, d := range s.Data[1:] {
		if v, _ := d.Client(t).Get(ctx, lockKey(name)).Result(); !core.Holds(v, l.Token()) {
			t.Fatalf("%s on replica %s = %q right after an acquisition acknowledged by 2 replicas", lockKey(name), d.Addr, v)
		}
	}
	if _, err := newMutex(t, b, name).TryLock(ctx); !errors.Is(err, mutex.ErrLocked) {
		t.Fatalf("TryLock of a held lock: %v, want ErrLocked", err)
	}
	if err := l.Extend(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := l.Refresh(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := l.Guard(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "{basic}:data", "x", 0)
		return nil
	}); err != nil {
		t.Fatalf("Guard: %v", err)
	}
	done := make(chan *lease.Lease, 1)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	slow := mutex.WithBackoff(func() backoff.BackOff { return backoff.NewConstantBackOff(time.Minute) })
	go func() {
		wl, err := newMutex(t, b, name, slow).Lock(wctx)
		if err != nil {
			t.Errorf("waiter on another failover client not woken by the release: %v", err)
		}
		done <- wl
	}()
	waitQueued(t, b, name, 1)
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	wl := <-done
	if wl == nil {
		t.FailNow()
	}
	if v, _ := mc.Get(ctx, lockKey(name)).Result(); !core.Holds(v, wl.Token()) {
		t.Fatalf("%s = %q, want the waiter's token", lockKey(name), v)
	}
	if err := wl.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := mc.Exists(ctx, lockKey(name)).Result(); n != 0 {
		t.Fatal("key left after Release")
	}
	result(t, "failover client: Lock (acknowledged by 2 replicas), TryLock ErrLocked, Extend, Refresh, Guard, Release; waiter on another failover client woken by the release")
}
