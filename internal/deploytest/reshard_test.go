package deploytest

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/redlease/redlease/internal/keys"
	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/internal/wake"
	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
)

// testReshardWhileHeld migrates the slot of a held lock to another master,
// the way redis-cli --cluster reshard does it, in three phases:
//
//  1. SETSLOT IMPORTING on the target, MIGRATING on the source: the key is
//     still on the source, which serves it;
//  2. MIGRATE of the lock key alone: the source answers ASK for it, renewals
//     (which touch the lock key only) follow ASK to the target, and an
//     acquisition attempt (lock key and fence counter, now split) gets
//     TRYAGAIN;
//  3. MIGRATE of the fence counter and SETSLOT NODE on every master: the
//     source answers MOVED.
//
// The lease, auto-renewed every 150ms with a 3s TTL, must not report lost
// through all three phases, its renewals must land on the target, Release
// must work afterwards, and a waiter on another client, queued before the
// migration, must acquire on the target.
func testReshardWhileHeld(t *testing.T, c *redistest.Cluster) {
	ctx := context.Background()
	holderC, waiterC, staleC := c.Client(t), c.Client(t), c.Client(t)
	name := flatten(clusterNames(t, holderC, "reshard", 1, nil))[0]
	k, _ := keys.For("redlease:", name)
	slot := k.Slot
	src := c.MasterOf(slot)
	var dst *redistest.Node
	var others []*redistest.Node
	for _, m := range c.Masters() {
		switch {
		case m == src:
		case dst == nil:
			dst = m
		default:
			others = append(others, m)
		}
	}
	if src == nil || dst == nil {
		t.Fatalf("source %v, target %v", src, dst)
	}
	srcC, dstC := src.Client(t), dst.Client(t)
	ncs := nodeClients(t, []*redistest.Node{src, dst})

	// staleC learns the slot map now and is not used again until the end.
	if _, err := staleC.Exists(ctx, lockKey(name+"-unrelated")).Result(); err != nil {
		t.Fatal(err)
	}

	l := lockWithin(t, newMutex(t, holderC, name, mutex.WithTTL(3*time.Second), mutex.WithRenewInterval(150*time.Millisecond)), 10*time.Second)
	defer l.Release(ctx)
	type res struct {
		l   *lease.Lease
		err error
	}
	waiter := make(chan res, 1)
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	go func() {
		wl, err := newMutex(t, waiterC, name, mutex.WithTTL(3*time.Second)).Lock(wctx)
		waiter <- res{wl, err}
	}()
	waitQueued(t, waiterC, name, 1)
	subsBefore, _ := srcC.PubSubShardNumSub(ctx, wakeChannel(name)).Result()

	// Phase 1: IMPORTING / MIGRATING.
	mustDo(t, dstC.Do(ctx, "cluster", "setslot", slot, "importing", src.ID).Err(), "SETSLOT IMPORTING")
	mustDo(t, srcC.Do(ctx, "cluster", "setslot", slot, "migrating", dst.ID).Err(), "SETSLOT MIGRATING")
	waitRenewals(t, l, 2)

	// Phase 2: the lock key moves, the fence counter stays: ASK.
	s0 := commandStats(t, ncs)
	mustDo(t, srcC.Do(ctx, "migrate", "127.0.0.1", strconv.Itoa(dst.Port), "", 0, 5000, "keys", lockKey(name)).Err(), "MIGRATE lock key")
	waitRenewals(t, l, 3)
	if ttl, err := l.TTL(ctx); err != nil || ttl <= 0 {
		t.Fatalf("TTL during the ASK phase: %v, %v", ttl, err)
	}
	if ok, err := l.Owned(ctx); err != nil || !ok {
		t.Fatalf("Owned during the ASK phase: %v, %v", ok, err)
	}
	s1 := commandStats(t, ncs)
	askings := delta(s1, s0, dst.Addr, "asking")
	scriptsOnDst := delta(s1, s0, dst.Addr, "evalsha") + delta(s1, s0, dst.Addr, "eval")
	if askings < 3 || scriptsOnDst < 3 {
		t.Fatalf("during the ASK phase the target got %d ASKING and %d script calls; renewals did not follow ASK", askings, scriptsOnDst)
	}

	// Phase 3: the fence counter moves, the slot is assigned: MOVED.
	mustDo(t, srcC.Do(ctx, "migrate", "127.0.0.1", strconv.Itoa(dst.Port), "", 0, 5000, "keys", fenceKey(name)).Err(), "MIGRATE fence key")
	if n, err := srcC.ClusterCountKeysInSlot(ctx, slot).Result(); err != nil || n != 0 {
		t.Fatalf("source still has %d keys in slot %d (%v)", n, slot, err)
	}
	for _, m := range append([]*redistest.Node{dst, src}, others...) {
		mustDo(t, m.Client(t).Do(ctx, "cluster", "setslot", slot, "node", dst.ID).Err(), "SETSLOT NODE on "+m.Addr)
	}
	waitUntil(t, "every node to see the slot on the target", 30*time.Second, func() bool { return c.MasterOf(slot) == dst })
	s2 := commandStats(t, ncs)
	waitRenewals(t, l, 3)
	s3 := commandStats(t, ncs)
	if n := delta(s3, s2, dst.Addr, "evalsha") + delta(s3, s2, dst.Addr, "eval"); n < 3 {
		t.Fatalf("after SETSLOT NODE the target got %d script calls; renewals did not follow MOVED", n)
	}
	if err := l.Err(); err != nil {
		t.Fatalf("lease reported lost across the migration: %v", err)
	}
	if v, err := dstC.Get(ctx, lockKey(name)).Result(); err != nil || v != l.Token() {
		t.Fatalf("%s on the target = %q, %v; want the token", lockKey(name), v, err)
	}
	if pttl, err := dstC.PTTL(ctx, lockKey(name)).Result(); err != nil || pttl <= 0 || pttl > 3*time.Second {
		t.Fatalf("PTTL on the target = %v, %v", pttl, err)
	}
	if err := l.Extend(ctx, time.Second); err != nil {
		t.Fatalf("Extend after the migration: %v", err)
	}
	subsOnDst, _ := dstC.PubSubShardNumSub(ctx, wakeChannel(name)).Result()
	subsOnSrc, _ := srcC.PubSubShardNumSub(ctx, wakeChannel(name)).Result()
	queued := wake.QueueLen(waiterC, wakeChannel(name))
	if queued == 1 && subsOnDst[wakeChannel(name)] == 0 {
		t.Logf("OBSERVATION the waiter still queues on %s but nobody subscribes to it on the slot's new master: its subscription was dropped by the migration (server SUNSUBSCRIBE) and not re-established; it will be found by its fallback backoff, not by the release's SPUBLISH", wakeChannel(name))
	}

	if err := l.Release(ctx); err != nil {
		t.Fatalf("Release after the migration: %v", err)
	}
	w := <-waiter
	if w.err != nil {
		t.Fatalf("waiter queued before the migration did not acquire: %v", w.err)
	}
	if v, _ := dstC.Get(ctx, lockKey(name)).Result(); v != w.l.Token() {
		t.Fatalf("%s on the target = %q, want the waiter's token", lockKey(name), v)
	}
	if err := w.l.Release(ctx); err != nil {
		t.Fatal(err)
	}

	// A client whose slot map predates the migration, with WithReplicas:
	// the acquisition pipeline goes to the master the client believes owns
	// the slot. Reported, not asserted (see the package report).
	sl, staleErr := newMutex(t, staleC, name, mutex.WithReplicas(1, time.Second)).TryLock(ctx)
	if staleErr == nil {
		t.Logf("stale-map client with WithReplicas: TryLock succeeded")
		if err := sl.Release(ctx); err != nil {
			t.Fatal(err)
		}
	} else {
		t.Logf("OBSERVATION stale-map client with WithReplicas: TryLock = %v (ErrNotReplicated %v, ErrLocked %v)",
			staleErr, errors.Is(staleErr, mutex.ErrNotReplicated), errors.Is(staleErr, mutex.ErrLocked))
	}

	result(t, "slot %d of %q moved %s -> %s under a lease (TTL 3s, renew 150ms): not lost, %d ASKING + %d script calls on the target while only the lock key had moved, renewals followed MOVED afterwards, Release ok, waiter acquired on the target; wake-up subscribers of the channel: %d on the source before, after SETSLOT NODE %d on the source and %d on the target while %d waiter still queued",
		slot, name, src.Addr, dst.Addr, askings, scriptsOnDst, subsBefore[wakeChannel(name)], subsOnSrc[wakeChannel(name)], subsOnDst[wakeChannel(name)], queued)
}

func mustDo(t testing.TB, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}
