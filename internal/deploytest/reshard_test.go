package deploytest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/core"
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
	mv := newSlotMove(t, c, name, nil)
	slot, src, dst := mv.slot, mv.src, mv.dst
	srcC, dstC := mv.srcC, mv.dstC
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
	mv.open(t)
	waitRenewals(t, l, 2)

	// Phase 2: the lock key moves, the fence counter stays: ASK.
	s0 := commandStats(t, ncs)
	mv.migrate(t, lockKey(name))
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
	mv.migrate(t, fenceKey(name))
	mv.assign(t)
	s2 := commandStats(t, ncs)
	waitRenewals(t, l, 3)
	s3 := commandStats(t, ncs)
	if n := delta(s3, s2, dst.Addr, "evalsha") + delta(s3, s2, dst.Addr, "eval"); n < 3 {
		t.Fatalf("after SETSLOT NODE the target got %d script calls; renewals did not follow MOVED", n)
	}
	if err := l.Err(); err != nil {
		t.Fatalf("lease reported lost across the migration: %v", err)
	}
	if v, err := dstC.Get(ctx, lockKey(name)).Result(); err != nil || !core.Holds(v, l.Token()) {
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
	if v, _ := dstC.Get(ctx, lockKey(name)).Result(); !core.Holds(v, w.l.Token()) {
		t.Fatalf("%s on the target = %q, want the waiter's token", lockKey(name), v)
	}
	if err := w.l.Release(ctx); err != nil {
		t.Fatal(err)
	}

	// A client whose slot map predates the migration, with WithReplicas:
	// the acquisition pipeline goes to the master the client believes owns
	// the slot and must follow its MOVED (see also
	// testReplicasFollowRedirects).
	sl, staleErr := newMutex(t, staleC, name, mutex.WithReplicas(1, time.Second)).TryLock(ctx)
	if staleErr != nil {
		t.Fatalf("stale-map client with WithReplicas: TryLock = %v (ErrNotReplicated %v, ErrLocked %v); want it to follow MOVED to %s",
			staleErr, errors.Is(staleErr, mutex.ErrNotReplicated), errors.Is(staleErr, mutex.ErrLocked), dst.Addr)
	}
	if err := sl.Release(ctx); err != nil {
		t.Fatal(err)
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

// slotMove moves the hash slot of one lock name from its master to another
// master, the way redis-cli --cluster reshard does: open (SETSLOT IMPORTING
// on the target, MIGRATING on the source), migrate (MIGRATE of some keys),
// assign (SETSLOT NODE on every master once the source holds no key of the
// slot).
type slotMove struct {
	c          *redistest.Cluster
	slot       int
	src, dst   *redistest.Node
	others     []*redistest.Node
	srcC, dstC *redis.Client
	assignedAt time.Time // when SETSLOT NODE was done on every master
}

// newSlotMove prepares the move of name's slot to the first master other
// than its owner that accept takes (nil: any).
func newSlotMove(t testing.TB, c *redistest.Cluster, name string, accept func(*redistest.Node) bool) *slotMove {
	t.Helper()
	k, err := keys.For("redlease:", name)
	if err != nil {
		t.Fatal(err)
	}
	mv := &slotMove{c: c, slot: k.Slot, src: c.MasterOf(k.Slot)}
	for _, m := range c.Masters() {
		switch {
		case m == mv.src:
		case mv.dst == nil && (accept == nil || accept(m)):
			mv.dst = m
		default:
			mv.others = append(mv.others, m)
		}
	}
	if mv.src == nil || mv.dst == nil {
		t.Fatalf("slot %d of %q: source %v, no suitable target among %d masters", k.Slot, name, mv.src, len(c.Masters()))
	}
	mv.srcC, mv.dstC = mv.src.Client(t), mv.dst.Client(t)
	return mv
}

func (mv *slotMove) open(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	mustDo(t, mv.dstC.Do(ctx, "cluster", "setslot", mv.slot, "importing", mv.src.ID).Err(), "SETSLOT IMPORTING")
	mustDo(t, mv.srcC.Do(ctx, "cluster", "setslot", mv.slot, "migrating", mv.dst.ID).Err(), "SETSLOT MIGRATING")
}

func (mv *slotMove) migrate(t testing.TB, ks ...string) {
	t.Helper()
	args := []any{"migrate", "127.0.0.1", strconv.Itoa(mv.dst.Port), "", 0, 5000, "keys"}
	for _, k := range ks {
		args = append(args, k)
	}
	mustDo(t, mv.srcC.Do(context.Background(), args...).Err(), fmt.Sprintf("MIGRATE %v", ks))
}

func (mv *slotMove) assign(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	if n, err := mv.srcC.ClusterCountKeysInSlot(ctx, mv.slot).Result(); err != nil || n != 0 {
		t.Fatalf("source still has %d keys in slot %d (%v)", n, mv.slot, err)
	}
	for _, m := range append([]*redistest.Node{mv.dst, mv.src}, mv.others...) {
		mustDo(t, m.Client(t).Do(ctx, "cluster", "setslot", mv.slot, "node", mv.dst.ID).Err(), "SETSLOT NODE on "+m.Addr)
	}
	mv.assignedAt = time.Now()
	waitUntil(t, "every node to see the slot on the target", 30*time.Second, func() bool { return mv.c.MasterOf(mv.slot) == mv.dst })
}

// testReplicasFollowRedirects: with WithReplicas the acquire script and WAIT
// go in one pipeline to the master the client believes owns the slot, and a
// pipeline on one node does not follow redirections by itself. Through a
// ClusterClient whose slot map predates a slot migration, TryLock must
// follow ASK while the slot is open (the script then runs on the target) and
// MOVED once the slot is assigned (TryLock succeeds, the key is on the
// target, WAIT is met by the target's replica).
//
// While the slot is open, nobody can take a free name: the acquire script
// touches the lock key and the fence counter, and Redis answers TRYAGAIN to
// a multi-key command on the importing node unless it holds every key. The
// ASK phase is therefore checked with both keys migrated and the lock held:
// following ASK yields ErrLocked, not following it the ASK error.
func testReplicasFollowRedirects(t *testing.T, c *redistest.Cluster) {
	ctx := context.Background()
	holderC, staleC := c.Client(t), c.Client(t)
	name := flatten(clusterNames(t, holderC, "replredirect", 1, nil))[0]
	replicas := c.Replicas()
	mv := newSlotMove(t, c, name, func(m *redistest.Node) bool { return len(liveReplicas(t, m, replicas)) > 0 })
	ncs := nodeClients(t, []*redistest.Node{mv.src, mv.dst})
	replicated := mutex.WithReplicas(1, time.Second)

	// staleC learns the slot map before the migration and is used only for
	// the WithReplicas attempts afterwards. go-redis reloads a map older
	// than 10s on its own, so each attempt first checks the map is stale.
	if _, err := staleC.Exists(ctx, lockKey(name)).Result(); err != nil {
		t.Fatal(err)
	}
	stillStale := func(phase string) {
		t.Helper()
		n, err := staleC.MasterForKey(ctx, lockKey(name))
		if err != nil || n.Options().Addr != mv.src.Addr {
			addr := ""
			if n != nil {
				addr = n.Options().Addr
			}
			t.Fatalf("precondition: before the %s attempt the client should still map slot %d to %s, it maps it to %q (%v)", phase, mv.slot, mv.src.Addr, addr, err)
		}
	}

	holder := lockWithin(t, newMutex(t, holderC, name, mutex.WithTTL(30*time.Second), mutex.WithAutoRenew(false)), 10*time.Second)
	released := false
	defer func() {
		if !released {
			_ = holder.Release(ctx)
		}
	}()

	// ASK: both keys on the target, the slot still MIGRATING/IMPORTING.
	mv.open(t)
	mv.migrate(t, lockKey(name), fenceKey(name))
	stillStale("ASK")
	s0 := commandStats(t, ncs)
	_, askErr := newMutex(t, staleC, name, replicated).TryLock(ctx)
	s1 := commandStats(t, ncs)
	askings := delta(s1, s0, mv.dst.Addr, "asking")
	scriptsOnDst := delta(s1, s0, mv.dst.Addr, "evalsha") + delta(s1, s0, mv.dst.Addr, "eval")
	if !errors.Is(askErr, mutex.ErrLocked) {
		t.Fatalf("stale-map client, WithReplicas, slot %d migrating %s -> %s (keys on the target, lock held): TryLock = %v; want ErrLocked from the target (ASK followed)",
			mv.slot, mv.src.Addr, mv.dst.Addr, askErr)
	}
	if askings < 1 || scriptsOnDst < 1 {
		t.Fatalf("ASK phase: the target got %d ASKING and %d script calls; want the attempt there", askings, scriptsOnDst)
	}
	// The importing target answers for the slot only after ASKING on the
	// same connection: one pipeline.
	pipe := mv.dstC.Pipeline()
	pipe.Do(ctx, "asking")
	held := pipe.Get(ctx, lockKey(name))
	_, _ = pipe.Exec(ctx)
	if v, err := held.Result(); err != nil || !core.Holds(v, holder.Token()) {
		t.Fatalf("%s on the target = %q, %v; want the holder's token", lockKey(name), v, err)
	}

	// MOVED: the slot is assigned to the target, the holder releases.
	mv.assign(t)
	if err := holder.Release(ctx); err != nil {
		t.Fatalf("Release after the migration: %v", err)
	}
	released = true
	stillStale("MOVED")
	s2 := commandStats(t, ncs)
	start := time.Now()
	l, err := newMutex(t, staleC, name, replicated).TryLock(ctx)
	took := time.Since(start)
	s3 := commandStats(t, ncs)
	if err != nil {
		t.Fatalf("stale-map client, WithReplicas, slot %d moved %s -> %s: TryLock = %v (ErrNotReplicated %v); want it to follow MOVED",
			mv.slot, mv.src.Addr, mv.dst.Addr, err, errors.Is(err, mutex.ErrNotReplicated))
	}
	if v, err := mv.dstC.Get(ctx, lockKey(name)).Result(); err != nil || !core.Holds(v, l.Token()) {
		t.Fatalf("%s on the new owner %s = %q, %v; want the token", lockKey(name), mv.dst.Addr, v, err)
	}
	if n, err := mv.srcC.ClusterCountKeysInSlot(ctx, mv.slot).Result(); err != nil || n != 0 {
		t.Fatalf("old owner has %d keys in slot %d (%v)", n, mv.slot, err)
	}
	waits := delta(s3, s2, mv.dst.Addr, "wait")
	if waits < 1 {
		t.Fatalf("the new owner got %d WAIT calls; want the WAIT on the key's master", waits)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	var mapped string
	if n, err := staleC.MasterForKey(ctx, lockKey(name)); err == nil {
		mapped = n.Options().Addr
	}
	result(t, "slot %d moved %s -> %s (target has a replica); stale-map ClusterClient with WithReplicas(1, 1s): during the migration ErrLocked from the target (%d ASKING, %d script calls there), after SETSLOT NODE TryLock ok in %v with the key and %d WAIT on the new owner; the client now maps the slot to %s",
		mv.slot, mv.src.Addr, mv.dst.Addr, askings, scriptsOnDst, took.Round(time.Microsecond), waits, mapped)
}

// testWakeUpFollowsSlotMove: a waiter queued on another client, with a
// fallback backoff of a minute, behind a holder with a 30s TTL. When the
// slot moves, the source drops the waiter's sharded subscription
// (SUNSUBSCRIBE from the server); it must be re-established on the new
// owner, and the release there must wake the waiter long before the
// holder's TTL or the fallback.
func testWakeUpFollowsSlotMove(t *testing.T, c *redistest.Cluster) {
	ctx := context.Background()
	holderC, waiterC := c.Client(t), c.Client(t)
	name := flatten(clusterNames(t, holderC, "wakemove", 1, nil))[0]
	mv := newSlotMove(t, c, name, nil)
	ncs := nodeClients(t, []*redistest.Node{mv.src, mv.dst})
	ch := wakeChannel(name)
	subs := func(n *redis.Client) int64 {
		t.Helper()
		m, err := n.PubSubShardNumSub(ctx, ch).Result()
		if err != nil {
			t.Fatalf("PUBSUB SHARDNUMSUB %s on %s: %v", ch, n.Options().Addr, err)
		}
		return m[ch]
	}
	const holderTTL, hangGuard = 30 * time.Second, 10 * time.Second

	holder := lockWithin(t, newMutex(t, holderC, name, mutex.WithTTL(holderTTL), mutex.WithAutoRenew(false)), 10*time.Second)
	released := false
	defer func() {
		if !released {
			_ = holder.Release(ctx)
		}
	}()
	type res struct {
		l   *lease.Lease
		err error
		at  time.Time
	}
	waiter := make(chan res, 1)
	wctx, cancel := context.WithTimeout(ctx, 2*holderTTL) // ends the goroutine if the test fails
	defer cancel()
	slowFallback := mutex.WithBackoff(func() backoff.BackOff { return backoff.NewConstantBackOff(time.Minute) })
	go func() {
		l, err := newMutex(t, waiterC, name, slowFallback).Lock(wctx)
		waiter <- res{l, err, time.Now()}
	}()
	waitQueued(t, waiterC, name, 1)
	waitUntil(t, "the waiter's subscription on the source", hangGuard, func() bool { return subs(mv.srcC) == 1 })

	s0 := commandStats(t, ncs)
	mv.open(t)
	mv.migrate(t, lockKey(name), fenceKey(name))
	mv.assign(t)
	waitUntil(t, fmt.Sprintf("PUBSUB SHARDNUMSUB %s = 1 on the new owner %s", ch, mv.dst.Addr), hangGuard, func() bool { return subs(mv.dstC) == 1 })
	resub := time.Since(mv.assignedAt)
	if n := subs(mv.srcC); n != 0 {
		t.Fatalf("PUBSUB SHARDNUMSUB %s on the old owner %s = %d, want 0", ch, mv.src.Addr, n)
	}
	waitQueued(t, waiterC, name, 1)
	select {
	case w := <-waiter:
		t.Fatalf("the waiter returned before the release: %v", w.err)
	default:
	}

	relAt := time.Now()
	if err := holder.Release(ctx); err != nil {
		t.Fatalf("Release after the migration: %v", err)
	}
	released = true
	var w res
	select {
	case w = <-waiter:
	case <-time.After(hangGuard):
		t.Fatalf("the waiter did not acquire within %v of the release (holder TTL %v, fallback backoff 1m): SHARDNUMSUB %s: %d on the old owner %s, %d on the new owner %s; %d queued",
			hangGuard, holderTTL, ch, subs(mv.srcC), mv.src.Addr, subs(mv.dstC), mv.dst.Addr, wake.QueueLen(waiterC, ch))
	}
	handoff := w.at.Sub(relAt)
	if w.err != nil {
		t.Fatalf("waiter: %v", w.err)
	}
	s1 := commandStats(t, ncs)
	if v, err := mv.dstC.Get(ctx, lockKey(name)).Result(); err != nil || !core.Holds(v, w.l.Token()) {
		t.Fatalf("%s on the new owner = %q, %v; want the waiter's token", lockKey(name), v, err)
	}
	ssub, spub := delta(s1, s0, mv.dst.Addr, "ssubscribe"), delta(s1, s0, mv.dst.Addr, "spublish")
	if ssub < 1 || spub < 1 {
		t.Fatalf("the new owner got %d SSUBSCRIBE and %d SPUBLISH calls; want the subscription and the wake-up there", ssub, spub)
	}
	if err := w.l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	result(t, "slot %d moved %s -> %s under a queued waiter (other client, fallback 1m, holder TTL 30s): subscription on the new owner %v after SETSLOT NODE (%d SSUBSCRIBE, %d SPUBLISH there), waiter acquired %v after the release",
		mv.slot, mv.src.Addr, mv.dst.Addr, resub.Round(time.Millisecond), ssub, spub, handoff.Round(time.Microsecond))
}
