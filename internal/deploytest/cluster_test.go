package deploytest

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/core"
	"github.com/redlease/redlease/internal/history"
	"github.com/redlease/redlease/internal/keys"
	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/multilock"
	"github.com/redlease/redlease/mutex"
)

// TestClusterLocks runs the correctness checks on one real cluster of three
// masters with a replica each. The subtests that move slots run last.
func TestClusterLocks(t *testing.T) {
	c := redistest.StartCluster(t, 3, 1)
	t.Run("MutexOnEveryMaster", func(t *testing.T) { testMutexOnEveryMaster(t, c) })
	t.Run("ShardedWakeUp", func(t *testing.T) { testShardedWakeUp(t, c) })
	t.Run("MultiLockRandomOverlappingSets", func(t *testing.T) { testMultiLockRandom(t, c) })
	t.Run("MultiLockOppositeOrder", func(t *testing.T) { testMultiLockOppositeOrder(t, c) })
	t.Run("MultiLockPartialFailure", func(t *testing.T) { testMultiLockPartialFailure(t, c) })
	t.Run("BatchedAcrossMasters", func(t *testing.T) { testBatchedAcrossMasters(t, c) })
	t.Run("ReshardWhileHeld", func(t *testing.T) { testReshardWhileHeld(t, c) })
	t.Run("ReplicasFollowRedirects", func(t *testing.T) { testReplicasFollowRedirects(t, c) })
	t.Run("WakeUpFollowsSlotMove", func(t *testing.T) { testWakeUpFollowsSlotMove(t, c) })
}

// flatten returns the names of byMaster, masters in address order.
func flatten(byMaster map[string][]string) []string {
	addrs := make([]string, 0, len(byMaster))
	for a := range byMaster {
		addrs = append(addrs, a)
	}
	sort.Strings(addrs)
	var out []string
	for _, a := range addrs {
		out = append(out, byMaster[a]...)
	}
	return out
}

// testMutexOnEveryMaster: Lock, TryLock, Locked, Extend, Refresh, TTL,
// Owned, Guard and Release on names owned by each of the three masters; the
// keys live on the owner of their slot.
func testMutexOnEveryMaster(t *testing.T, c *redistest.Cluster) {
	ctx := context.Background()
	a, b := c.Client(t), c.Client(t)
	byMaster := clusterNames(t, a, "ops", 2, nil)
	if len(byMaster) != 3 {
		t.Fatalf("names cover %d masters, want 3", len(byMaster))
	}
	for addr, names := range byMaster {
		owner := c.Node(addr)
		if owner == nil || owner.Role() != "master" {
			t.Fatalf("owner %s of %v is not a live master", addr, names)
		}
		nc := owner.Client(t)
		for _, name := range names {
			l := lockWithin(t, newMutex(t, a, name, mutex.WithTTL(2*time.Second)), 10*time.Second)
			if v, err := nc.Get(ctx, lockKey(name)).Result(); err != nil || !core.Holds(v, l.Token()) {
				t.Fatalf("%s on its master %s = %q, %v; want the token", lockKey(name), addr, v, err)
			}
			if f, err := nc.Get(ctx, fenceKey(name)).Int64(); err != nil || f != l.Fence() {
				t.Fatalf("%s on %s = %d, %v; want fence %d", fenceKey(name), addr, f, err, l.Fence())
			}
			other := newMutex(t, b, name)
			if _, err := other.TryLock(ctx); !errors.Is(err, mutex.ErrLocked) || !strings.Contains(err.Error(), name) {
				t.Fatalf("TryLock of held %q from another client: %v, want ErrLocked naming it", name, err)
			}
			if held, err := other.Locked(ctx); err != nil || !held {
				t.Fatalf("Locked(%q) = %v, %v while held", name, held, err)
			}
			if err := l.Extend(ctx, 5*time.Second); err != nil {
				t.Fatalf("Extend %q: %v", name, err)
			}
			if ttl, err := l.TTL(ctx); err != nil || ttl <= 4*time.Second || ttl > 7*time.Second {
				t.Fatalf("TTL after Extend(5s) of a 2s lock = %v, %v", ttl, err)
			}
			if err := l.Refresh(ctx, 1500*time.Millisecond); err != nil {
				t.Fatalf("Refresh %q: %v", name, err)
			}
			if ttl, err := l.TTL(ctx); err != nil || ttl <= 0 || ttl > 2*time.Second {
				t.Fatalf("TTL after Refresh(1.5s) = %v, %v", ttl, err)
			}
			if ok, err := l.Owned(ctx); err != nil || !ok {
				t.Fatalf("Owned = %v, %v", ok, err)
			}
			dataKey := "{" + name + "}:data"
			if err := l.Guard(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, dataKey, fmt.Sprint(l.Fence()), 0)
				return nil
			}); err != nil {
				t.Fatalf("Guard %q: %v", name, err)
			}
			if v, err := nc.Get(ctx, dataKey).Result(); err != nil || v != fmt.Sprint(l.Fence()) {
				t.Fatalf("guarded write %s on %s = %q, %v", dataKey, addr, v, err)
			}
			if err := l.Release(ctx); err != nil {
				t.Fatalf("Release %q: %v", name, err)
			}
			if n, err := nc.Exists(ctx, lockKey(name)).Result(); err != nil || n != 0 {
				t.Fatalf("%s still on %s after Release (%d, %v)", lockKey(name), addr, n, err)
			}
			if err := l.Guard(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, dataKey, "stale", 0)
				return nil
			}); !errors.Is(err, lease.ErrReleased) {
				t.Fatalf("Guard after Release: %v, want ErrReleased", err)
			}
			if v, _ := nc.Get(ctx, dataKey).Result(); v == "stale" {
				t.Fatal("Guard wrote after Release")
			}
			l2, err := other.TryLock(ctx)
			if err != nil {
				t.Fatalf("TryLock of free %q from the other client: %v", name, err)
			}
			if l2.Fence() <= l.Fence() {
				t.Fatalf("fence %d after %d: not increasing", l2.Fence(), l.Fence())
			}
			if err := l2.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if held, err := other.Locked(ctx); err != nil || held {
				t.Fatalf("Locked(%q) = %v, %v after Release", name, held, err)
			}
		}
	}
	result(t, "mutex Lock/TryLock/Locked/Extend/Refresh/TTL/Owned/Guard/Release on %d names over %d masters: keys on their slot's master, fences increasing", len(flatten(byMaster)), len(byMaster))
}

// testShardedWakeUp: one name per master is held through one client; a
// waiter per name, each on its own ClusterClient and with a fallback backoff
// of a minute, is woken by the release. SSUBSCRIBE and SPUBLISH happen on the
// key's master only, and each waiter makes at most three acquire attempts
// (SET calls): the first try, the try at the head of its queue, and the one
// after the wake-up (a fourth is tolerated).
func testShardedWakeUp(t *testing.T, c *redistest.Cluster) {
	ctx := context.Background()
	holderC := c.Client(t)
	byMaster := clusterNames(t, holderC, "wake", 1, nil)
	if len(byMaster) != 3 {
		t.Fatalf("names cover %d masters", len(byMaster))
	}
	var live []*redistest.Node
	for _, n := range c.Nodes {
		if n.Alive() {
			live = append(live, n)
		}
	}
	ncs := nodeClients(t, live)
	slowFallback := mutex.WithBackoff(func() backoff.BackOff { return backoff.NewConstantBackOff(time.Minute) })

	type waiter struct {
		name, master string
		client       *redis.ClusterClient
		done         chan error
		l            *lease.Lease
	}
	var ws []*waiter
	holders := map[string]*lease.Lease{}
	for addr, names := range byMaster {
		name := names[0]
		// A holder TTL of a minute: a waiter never sleeps past the holder's
		// remaining TTL, so without a wake-up it would sleep a minute.
		holders[name] = lockWithin(t, newMutex(t, holderC, name, mutex.WithTTL(time.Minute)), 10*time.Second)
		ws = append(ws, &waiter{name: name, master: addr, client: c.Client(t), done: make(chan error, 1)})
	}
	before := commandStats(t, ncs)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second) // hang guard, well below the fallback
	defer cancel()
	for _, w := range ws {
		go func() {
			l, err := newMutex(t, w.client, w.name, slowFallback).Lock(wctx)
			w.l = l
			w.done <- err
		}()
	}
	for _, w := range ws {
		waitQueued(t, w.client, w.name, 1)
	}
	time.Sleep(300 * time.Millisecond) // a polling waiter would show up now
	for _, w := range ws {
		n, err := ncs[w.master].PubSubShardNumSub(ctx, wakeChannel(w.name)).Result()
		if err != nil || n[wakeChannel(w.name)] != 1 {
			t.Fatalf("PUBSUB SHARDNUMSUB %s on its master %s = %v, %v; want 1 subscriber", wakeChannel(w.name), w.master, n, err)
		}
	}
	for _, w := range ws {
		if err := holders[w.name].Release(ctx); err != nil {
			t.Fatalf("Release %q: %v", w.name, err)
		}
	}
	for _, w := range ws {
		if err := <-w.done; err != nil {
			t.Fatalf("waiter on %q (other client) was not woken by the release: %v", w.name, err)
		}
		if v, _ := ncs[w.master].Get(ctx, lockKey(w.name)).Result(); !core.Holds(v, w.l.Token()) {
			t.Fatalf("%s on %s = %q, want the waiter's token", lockKey(w.name), w.master, v)
		}
	}
	after := commandStats(t, ncs)
	var report []string
	for _, w := range ws {
		sets := delta(after, before, w.master, "set")
		ssub := delta(after, before, w.master, "ssubscribe")
		spub := delta(after, before, w.master, "spublish")
		report = append(report, fmt.Sprintf("%s: %d SET, %d SSUBSCRIBE, %d SPUBLISH", w.master, sets, ssub, spub))
		if ssub < 1 || spub < 1 {
			t.Errorf("master %s of %q: %d SSUBSCRIBE, %d SPUBLISH; want both on the key's master", w.master, w.name, ssub, spub)
		}
		// By design 3: the first try, the try at the head of the queue and
		// the one after the wake-up; one more is tolerated (a retried call).
		if sets < 1 || sets > 4 {
			t.Errorf("waiter on %q made %d acquire attempts (SET calls on %s), want about 3: it polled", w.name, sets, w.master)
		}
	}
	for _, n := range live {
		if _, isMaster := byMaster[n.Addr]; isMaster {
			continue
		}
		if s, p := delta(after, before, n.Addr, "ssubscribe"), delta(after, before, n.Addr, "spublish"); s != 0 || p != 0 {
			t.Errorf("replica %s got %d SSUBSCRIBE and %d SPUBLISH calls", n.Addr, s, p)
		}
	}
	for _, w := range ws {
		if err := w.l.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	sort.Strings(report)
	result(t, "3 waiters on other ClusterClients woken by releases on 3 masters (fallback backoff 1m): %s", strings.Join(report, "; "))
}

// lockKeysOnMasters lists the lock keys (not fence counters) of names found
// on any live master.
func lockKeysOnMasters(t testing.TB, c *redistest.Cluster, names []string) []string {
	t.Helper()
	want := map[string]bool{}
	for _, n := range names {
		want[lockKey(n)] = true
	}
	var out []string
	for _, m := range c.Masters() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ks, err := m.Client(t).Keys(ctx, "redlease:*").Result()
		cancel()
		if err != nil {
			t.Fatalf("%s: KEYS: %v", m.Addr, err)
		}
		for _, k := range ks {
			if want[k] {
				out = append(out, m.Addr+" "+k)
			}
		}
	}
	return out
}

// testMultiLockRandom: 8 goroutines, each on its own ClusterClient, lock
// random sets of 2 to 4 of 6 names spread over the three masters (two per
// master, six slots) for a few seconds. In-process counters per name and the
// interval checker see no two holders of a name at once, and every goroutine
// makes progress.
func testMultiLockRandom(t *testing.T, c *redistest.Cluster) {
	ctx := context.Background()
	first := c.Client(t)
	names := flatten(clusterNames(t, first, "ml", 2, nil))
	if len(names) != 6 {
		t.Fatalf("%d names", len(names))
	}
	dur := 4 * time.Second
	if testing.Short() {
		dur = 2 * time.Second
	}
	const goroutines = 8
	var inUse [6]atomic.Int32
	var violations, lost, groupsSeen atomic.Int64
	var acquired [goroutines]int
	rec := &history.Recorder{}
	stop := time.Now().Add(dur)
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		cl := first
		if g > 0 {
			cl = c.Client(t)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewSource(int64(g) + 1))
			who := fmt.Sprintf("g%d", g)
			for time.Now().Before(stop) {
				idx := r.Perm(len(names))[:2+r.Intn(3)]
				set := make([]string, len(idx))
				for i, j := range idx {
					set[i] = names[j]
				}
				ml, err := multilock.New(cl, set, mutex.WithTTL(5*time.Second))
				if err != nil {
					t.Error(err)
					return
				}
				slots := map[int]bool{}
				for _, n := range set {
					k, _ := keys.For("redlease:", n)
					slots[k.Slot] = true
				}
				groupsSeen.Add(int64(len(slots)))
				lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				l, err := ml.Lock(lctx)
				cancel()
				if err != nil {
					t.Errorf("%s: Lock %v: %v", who, set, err)
					return
				}
				var secs []*history.Section
				for _, j := range idx {
					if inUse[j].Add(1) != 1 {
						violations.Add(1)
					}
					secs = append(secs, rec.Begin(who, names[j], l.FenceOf(names[j])))
				}
				time.Sleep(time.Duration(r.Intn(2000)) * time.Microsecond)
				if l.Err() != nil {
					lost.Add(1)
					t.Errorf("%s: lease %v ended while in use: %v", who, set, l.Err())
				}
				for i, j := range idx {
					secs[i].End()
					inUse[j].Add(-1)
				}
				if err := l.Release(ctx); err != nil {
					t.Errorf("%s: Release %v: %v", who, set, err)
				}
				acquired[g]++
			}
		}()
	}
	wg.Wait()
	ivs := rec.Intervals()
	overlaps := history.CheckOverlaps(ivs)
	for _, v := range overlaps {
		t.Errorf("violation: %s", v)
	}
	if n := violations.Load(); n != 0 {
		t.Errorf("%d exclusivity violations seen by the per-name counters", n)
	}
	total := 0
	for g, n := range acquired {
		total += n
		if n == 0 {
			t.Errorf("goroutine %d never acquired its set", g)
		}
	}
	if left := lockKeysOnMasters(t, c, names); len(left) != 0 {
		t.Errorf("lock keys left: %v", left)
	}
	result(t, "%v, %d goroutines on separate ClusterClients, random 2-4 of 6 names on 3 masters: %d acquisitions (per goroutine %v, %.1f slot groups per set on average), %d intervals, %d overlaps, %d counter violations, %d leases lost",
		dur, goroutines, total, acquired, float64(groupsSeen.Load())/float64(max(total, 1)), len(ivs), len(overlaps), violations.Load(), lost.Load())
}

// testMultiLockOppositeOrder: goroutines on separate clients lock {A,B} and
// {B,A} (A and B on different masters) in a loop: no deadlock (every Lock
// returns within a generous guard), exclusivity, everyone progresses.
func testMultiLockOppositeOrder(t *testing.T, c *redistest.Cluster) {
	ctx := context.Background()
	first := c.Client(t)
	byMaster := clusterNames(t, first, "order", 1, nil)
	all := flatten(byMaster)
	a, b := all[0], all[1]
	fwd, _ := multilock.New(first, []string{a, b})
	rev, _ := multilock.New(first, []string{b, a})
	if !slices.Equal(fwd.Names(), rev.Names()) {
		t.Fatalf("acquisition orders differ: %v and %v", fwd.Names(), rev.Names())
	}
	dur := 3 * time.Second
	if testing.Short() {
		dur = 1500 * time.Millisecond
	}
	const goroutines = 4
	var inA, inB atomic.Int32
	var violations atomic.Int64
	var acquired [goroutines]int
	stop := time.Now().Add(dur)
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		cl := first
		if g > 0 {
			cl = c.Client(t)
		}
		set := []string{a, b}
		if g%2 == 1 {
			set = []string{b, a}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ml, err := multilock.New(cl, set, mutex.WithTTL(5*time.Second))
			if err != nil {
				t.Error(err)
				return
			}
			for time.Now().Before(stop) {
				lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				l, err := ml.Lock(lctx)
				cancel()
				if err != nil {
					t.Errorf("Lock %v did not return within 20s (deadlock?): %v", set, err)
					return
				}
				if inA.Add(1) != 1 || inB.Add(1) != 1 {
					violations.Add(1)
				}
				time.Sleep(200 * time.Microsecond)
				inA.Add(-1)
				inB.Add(-1)
				if err := l.Release(ctx); err != nil {
					t.Errorf("Release %v: %v", set, err)
				}
				acquired[g]++
			}
		}()
	}
	wg.Wait()
	total := 0
	for g, n := range acquired {
		total += n
		if n == 0 {
			t.Errorf("goroutine %d never acquired", g)
		}
	}
	if violations.Load() != 0 {
		t.Errorf("%d exclusivity violations", violations.Load())
	}
	result(t, "%v, %d goroutines locking {%s,%s} and {%s,%s} (2 masters): %d acquisitions %v, no deadlock, %d violations", dur, goroutines, a, b, b, a, total, acquired, violations.Load())
}

// testMultiLockPartialFailure: three names on three masters; one held by a
// Mutex on another client. MultiLock.TryLock fails with ErrLocked naming
// it, and afterwards no other key of the set is held on any master, whichever
// position the held name has in the acquisition order. Lock then waits for
// the holder and takes all three.
func testMultiLockPartialFailure(t *testing.T, c *redistest.Cluster) {
	ctx := context.Background()
	holderC, mlC := c.Client(t), c.Client(t)
	names := flatten(clusterNames(t, holderC, "partial", 1, nil))
	ml, err := multilock.New(mlC, []string{names[2], names[0], names[1]})
	if err != nil {
		t.Fatal(err)
	}
	order := ml.Names()
	for pos, held := range order {
		h := lockWithin(t, newMutex(t, holderC, held), 10*time.Second)
		before := map[string]int64{}
		for _, n := range order {
			before[n], _ = holderC.Get(ctx, fenceKey(n)).Int64()
		}
		_, err := ml.TryLock(ctx)
		var le *mutex.LockedError
		if !errors.Is(err, mutex.ErrLocked) || !errors.As(err, &le) || le.Name != held || !strings.Contains(err.Error(), held) {
			t.Fatalf("TryLock with %q (position %d of %v) held: %v, want ErrLocked naming it", held, pos, order, err)
		}
		left := lockKeysOnMasters(t, c, order)
		if len(left) != 1 || !strings.HasSuffix(left[0], " "+lockKey(held)) {
			t.Fatalf("after the failed TryLock the masters hold %v, want only %s", left, lockKey(held))
		}
		// The groups before the held one were taken (their fence moved) and
		// given back.
		for _, n := range order[:pos] {
			if f, _ := holderC.Get(ctx, fenceKey(n)).Int64(); f <= before[n] {
				t.Errorf("%q before the held name was not attempted (fence %d, was %d)", n, f, before[n])
			}
		}
		done := make(chan *lease.Lease, 1)
		go func() {
			lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			l, err := ml.Lock(lctx)
			if err != nil {
				t.Errorf("MultiLock.Lock after the holder: %v", err)
			}
			done <- l
		}()
		waitQueued(t, mlC, held, 1)
		if err := h.Release(ctx); err != nil {
			t.Fatal(err)
		}
		l := <-done
		if l == nil {
			t.FailNow()
		}
		for _, n := range order {
			if v, _ := holderC.Get(ctx, lockKey(n)).Result(); !core.Holds(v, l.Token()) {
				t.Fatalf("%s = %q after MultiLock.Lock, want its token", lockKey(n), v)
			}
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if left := lockKeysOnMasters(t, c, order); len(left) != 0 {
			t.Fatalf("keys left after Release: %v", left)
		}
	}
	result(t, "MultiLock.TryLock over %v (3 masters) with each name held in turn: ErrLocked naming it, no other key held afterwards, Lock then took all 3", order)
}

// pipeCounter counts the pipelines a client sends.
type pipeCounter struct{ n atomic.Int64 }

func (h *pipeCounter) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *pipeCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *pipeCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

// testBatchedAcrossMasters: 32 goroutines of one cluster client TryLock and
// Release names on every master, with the script caches flushed first:
// their calls, coalesced into pipelines that go-redis splits by node, all
// succeed (NOSCRIPT in a pipeline falls back to EVAL), and no key is left.
func testBatchedAcrossMasters(t *testing.T, c *redistest.Cluster) {
	ctx := context.Background()
	cc := c.Client(t)
	var pipes pipeCounter
	cc.AddHook(&pipes)
	names := flatten(clusterNames(t, cc, "batch", 11, nil))
	for _, m := range c.Masters() {
		if err := m.Client(t).ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				name := names[(g+i*7)%len(names)] + fmt.Sprintf("-%d-%d", g, i)
				m, err := mutex.New(cc, name, mutex.WithAutoRenew(false))
				if err != nil {
					t.Error(err)
					return
				}
				l, err := m.TryLock(ctx)
				if err != nil {
					t.Errorf("TryLock %q: %v", name, err)
					return
				}
				if err := l.Release(ctx); err != nil {
					t.Errorf("Release %q: %v", name, err)
					return
				}
				if n, err := cc.Exists(ctx, lockKey(name)).Result(); err != nil || n != 0 {
					t.Errorf("%s left after Release (%d, %v)", lockKey(name), n, err)
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d pipelines", pipes.n.Load())
	if pipes.n.Load() == 0 {
		t.Fatal("harness: no call was batched")
	}
}
