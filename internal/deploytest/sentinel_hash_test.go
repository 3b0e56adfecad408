package deploytest

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
	"github.com/redlease/redlease/rwmutex"
	"github.com/redlease/redlease/semaphore"
)

func semKey(name string) string { return lockKey(name) + ":sem" }
func rwKey(name string) string  { return lockKey(name) + ":rw" }

// slowBackoff makes a waiter retry only when woken (or at the earliest
// expiry): a minute between fallback attempts.
var slowBackoff = mutex.WithBackoff(func() backoff.BackOff { return backoff.NewConstantBackOff(time.Minute) })

// TestSentinelHashLocks runs the semaphore and the read-write lock on one
// master with two replicas and three sentinels, through failover clients:
// the basic operations, then a failover under held leases and queued
// waiters.
func TestSentinelHashLocks(t *testing.T) {
	s := redistest.StartSentinel(t, 2, 3)
	t.Run("Semaphore", func(t *testing.T) { testSentinelSemaphore(t, s) })
	t.Run("RWMutex", func(t *testing.T) { testSentinelRWMutex(t, s) })
	t.Run("Failover", func(t *testing.T) { testSentinelHashFailover(t, s) })
}

func newSemaphore(t testing.TB, c redis.UniversalClient, name string, limit int64, opts ...mutex.Option) *semaphore.Semaphore {
	t.Helper()
	sem, err := semaphore.New(c, name, limit, opts...)
	if err != nil {
		t.Fatalf("semaphore.New(%q): %v", name, err)
	}
	return sem
}

func newRWMutex(t testing.TB, c redis.UniversalClient, name string, opts ...mutex.Option) *rwmutex.RWMutex {
	t.Helper()
	m, err := rwmutex.New(c, name, opts...)
	if err != nil {
		t.Fatalf("rwmutex.New(%q): %v", name, err)
	}
	return m
}

// waitLease runs acquire in the background; the returned function waits for
// its lease (a hang guard of limit), failing t on an error.
func waitLease(t *testing.T, acquire func(context.Context) (*lease.Lease, error), limit time.Duration) func() *lease.Lease {
	wait, _ := startLease(t, acquire, limit)
	return wait
}

// startLease is waitLease that also returns whether acquire has returned.
func startLease(t *testing.T, acquire func(context.Context) (*lease.Lease, error), limit time.Duration) (wait func() *lease.Lease, returned func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	type res struct {
		l   *lease.Lease
		err error
	}
	done := make(chan res, 1)
	go func() {
		l, err := acquire(ctx)
		done <- res{l, err}
	}()
	t.Cleanup(func() {
		cancel()
		if r := <-done; r.l != nil {
			_ = r.l.Release(context.Background())
		}
		done <- res{}
	})
	wait = func() *lease.Lease {
		t.Helper()
		r := <-done
		done <- r // for the cleanup
		if r.err != nil {
			t.Fatalf("waiter: %v", r.err)
		}
		return r.l
	}
	return wait, func() bool { return len(done) > 0 }
}

// testSentinelSemaphore: limit 2 through a failover client: TryAcquire,
// Acquire, ErrNoPermits on another failover client, Extend, Refresh, and a
// waiter on that client woken by a release (its fallback backoff is a
// minute); the hash is on the master and vanishes with the last release.
func testSentinelSemaphore(t *testing.T, s *redistest.Sentinel) {
	ctx := context.Background()
	a, b := s.Client(t), s.Client(t)
	addr, err := s.MasterAddr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mc := s.Node(addr).Client(t)
	const name = "sem-basic"
	sa := newSemaphore(t, a, name, 2, mutex.WithTTL(time.Minute))
	l1, err := sa.TryAcquire(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	l2 := waitLease(t, func(ctx context.Context) (*lease.Lease, error) { return sa.Acquire(ctx, 1) }, 10*time.Second)()
	if n, err := mc.HLen(ctx, semKey(name)).Result(); err != nil || n != 2 {
		t.Fatalf("%s on the master has %d fields (%v), want 2", semKey(name), n, err)
	}
	sb := newSemaphore(t, b, name, 2, slowBackoff)
	if _, err := sb.TryAcquire(ctx, 1); !errors.Is(err, semaphore.ErrNoPermits) {
		t.Fatalf("TryAcquire of a full semaphore: %v, want ErrNoPermits", err)
	}
	if err := l1.Extend(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := l1.Refresh(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	wait := waitLease(t, func(ctx context.Context) (*lease.Lease, error) { return sb.Acquire(ctx, 2) }, 30*time.Second)
	waitQueued(t, b, name, 1)
	if err := l1.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l2.Release(ctx); err != nil {
		t.Fatal(err)
	}
	wl := wait()
	if wl.Fence() <= l2.Fence() {
		t.Fatalf("waiter's fence %d not above the holders' %d", wl.Fence(), l2.Fence())
	}
	if err := wl.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := mc.Exists(ctx, semKey(name)).Result(); n != 0 {
		t.Fatal("semaphore hash left after the last Release")
	}
	result(t, "failover client: semaphore limit 2: TryAcquire, Acquire, ErrNoPermits on another failover client, Extend, Refresh, Release; a waiter for 2 units on that client woken by the releases")
}

// testSentinelRWMutex: readers share and a writer waits through failover
// clients; Guard runs under the write hold; the writer, queued on another
// failover client, is woken by the readers' releases and the reader queued
// behind it by the writer's release.
func testSentinelRWMutex(t *testing.T, s *redistest.Sentinel) {
	ctx := context.Background()
	a, b := s.Client(t), s.Client(t)
	addr, err := s.MasterAddr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mc := s.Node(addr).Client(t)
	const name = "rw-basic"
	ma := newRWMutex(t, a, name, mutex.WithTTL(time.Minute))
	r1, err := ma.TryRLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := ma.TryRLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mb := newRWMutex(t, b, name, slowBackoff)
	if _, err := mb.TryLock(ctx); !errors.Is(err, rwmutex.ErrLocked) {
		t.Fatalf("TryLock with readers: %v, want ErrLocked", err)
	}
	writer := waitLease(t, mb.Lock, 30*time.Second)
	waitQueued(t, b, name, 1)
	waitUntil(t, "the writer's claim on the master", 10*time.Second, func() bool {
		ok, _ := mc.HExists(ctx, rwKey(name), "want").Result()
		return ok
	})
	if _, err := ma.TryRLock(ctx); !errors.Is(err, rwmutex.ErrLocked) {
		t.Fatalf("TryRLock behind a waiting writer: %v, want ErrLocked", err)
	}
	reader := waitLease(t, mb.RLock, 30*time.Second)
	waitQueued(t, b, name, 2)
	_ = r1.Release(ctx)
	_ = r2.Release(ctx)
	w := writer()
	if err := w.Guard(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "{rw-basic}:data", "x", 0)
		return nil
	}); err != nil {
		t.Fatalf("Guard under the write hold: %v", err)
	}
	if err := w.Release(ctx); err != nil {
		t.Fatal(err)
	}
	r := reader()
	if r.Fence() <= w.Fence() {
		t.Fatalf("reader's fence %d not above the writer's %d", r.Fence(), w.Fence())
	}
	if err := r.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := mc.Exists(ctx, rwKey(name)).Result(); n != 0 {
		t.Fatal("rwmutex hash left after the last Release")
	}
	result(t, "failover client: rwmutex: two readers share, TryLock ErrLocked, a writer on another failover client claims and waits, TryRLock refused by the claim, the writer woken by the readers' releases, Guard, a queued reader woken by the writer's release")
}

// testSentinelHashFailover: a semaphore's units and a write hold, taken
// through a failover client and replicated, survive the master's death;
// the leases go on renewing on the new master, waiters on another failover
// client stay out until the holders release there, then acquire with
// higher fences (the fence counter was replicated too).
func testSentinelHashFailover(t *testing.T, s *redistest.Sentinel) {
	ctx := context.Background()
	env := sentinelEnv(t, s)
	opts := []mutex.Option{mutex.WithTTL(30 * time.Second), mutex.WithRenewInterval(300 * time.Millisecond)}
	const semName, rwName = "sem-failover", "rw-failover"
	units, err := newSemaphore(t, env.holders, semName, 2, opts...).TryAcquire(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer units.Release(ctx)
	wlock, err := newRWMutex(t, env.holders, rwName, opts...).TryLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer wlock.Release(ctx)
	for _, r := range env.replicas {
		rc := env.replicaClient(r)
		waitUntil(t, fmt.Sprintf("the holds on replica %s", r.Addr), 10*time.Second, func() bool {
			a, _ := rc.HExists(ctx, semKey(semName), units.Token()).Result()
			b, _ := rc.HExists(ctx, rwKey(rwName), "w:"+wlock.Token()).Result()
			return a && b
		})
	}
	semWaiter, semDone := startLease(t, func(ctx context.Context) (*lease.Lease, error) {
		return newSemaphore(t, env.waiters, semName, 2, opts...).Acquire(ctx, 1)
	}, 2*time.Minute)
	waitQueued(t, env.waiters, semName, 1)
	readWaiter, readDone := startLease(t, newRWMutex(t, env.waiters, rwName, opts...).RLock, 2*time.Minute)
	waitQueued(t, env.waiters, rwName, 1)

	old := env.kill()
	killedAt := time.Now()
	nm := env.newMaster(old)
	failover := time.Since(killedAt)
	nc := nm.Client(t)
	for _, l := range []*lease.Lease{units, wlock} {
		waitUntil(t, fmt.Sprintf("lease of %q to answer on the new master", l.Name()), 30*time.Second, func() bool {
			tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			_, err := l.TTL(tctx)
			if errors.Is(err, lease.ErrNotHeld) || errors.Is(err, lease.ErrExpired) {
				t.Fatalf("lease of %q, replicated before the failover, ended: %v", l.Name(), err)
			}
			return err == nil
		})
	}
	if ok, _ := nc.HExists(ctx, semKey(semName), units.Token()).Result(); !ok {
		t.Fatal("the semaphore's units are not on the new master")
	}
	if !waitUntilRenewed(t, units) {
		t.Fatal("the semaphore lease did not renew on the new master")
	}
	if units.Err() != nil || wlock.Err() != nil {
		t.Fatalf("holders' leases ended: %v, %v", units.Err(), wlock.Err())
	}
	if semDone() || readDone() {
		t.Fatal("a waiter acquired while the holders' surviving leases were held")
	}
	if err := units.Release(ctx); err != nil {
		t.Fatalf("Release of the units on the new master: %v", err)
	}
	if err := wlock.Release(ctx); err != nil {
		t.Fatalf("Release of the write hold on the new master: %v", err)
	}
	sl, rl := semWaiter(), readWaiter()
	if sl.Fence() <= units.Fence() || rl.Fence() <= wlock.Fence() {
		t.Fatalf("waiters' fences %d, %d not above the holders' %d, %d", sl.Fence(), rl.Fence(), units.Fence(), wlock.Fence())
	}
	for key, tok := range map[string]string{semKey(semName): sl.Token(), rwKey(rwName): "r:" + rl.Token()} {
		if ok, _ := nc.HExists(ctx, key, tok).Result(); !ok {
			t.Fatalf("%s on the new master lacks the waiter's hold %s", key, tok)
		}
	}
	result(t, "Sentinel failover (%v) under a semaphore lease (2 of 2 units) and a write hold, replicated: both kept and renewed on the new master %s; waiters on another failover client acquired after the holders' releases there, with higher fences", failover.Round(100*time.Millisecond), nm.Addr)
}

// waitUntilRenewed reports whether l's deadline moves forward within 10s.
func waitUntilRenewed(t *testing.T, l *lease.Lease) bool {
	t.Helper()
	last := l.ValidUntil()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if l.ValidUntil().After(last) {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}
