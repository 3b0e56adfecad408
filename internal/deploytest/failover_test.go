package deploytest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/core"
	"github.com/redlease/redlease/internal/keys"
	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
)

// Shape of a failover trial.
const (
	trialBefore  = 6 // locks taken while the replicas run: replicated
	trialWhile   = 8 // locks taken while the replicas are stopped
	trialWaiters = 3 // waiters on the first names of each kind
	// ballastChunk is written to the master, chunk after chunk, right after
	// its replicas are stopped, until every replica's output buffer on the
	// master holds at least backlogWanted unsent bytes. A stopped replica's
	// kernel still accepts the replication stream into its socket buffers,
	// and a replica resumed after its master died reads and applies what is
	// there: without the ballast the few bytes of a lock would survive (no
	// hole). Behind the ballast the writes stay in the master's own output
	// buffer and die with it.
	ballastChunk  = 4 << 20
	backlogWanted = 1 << 20
	ballastLimit  = 128 << 20 // below the replica output buffer's hard limit
)

// trialEnv is what a failover trial needs from a deployment.
type trialEnv struct {
	holders, waiters redis.UniversalClient
	master           *redistest.Node   // master of the names the trial uses
	replicas         []*redistest.Node // its replicas
	// names returns n fresh lock names whose keys live on master.
	names func(prefix string, n int) []string
	// replicaClient returns a client that can read keys on a replica.
	replicaClient func(n *redistest.Node) *redis.Client
	// kill kills master and returns its address; newMaster waits for the
	// failover and returns the promoted node.
	kill      func() string
	newMaster func(old string) *redistest.Node
}

type trialHolder struct {
	name       string
	l          *lease.Lease
	replicated bool // taken before the replicas were stopped
	survived   bool // the new master holds its token
}

type trialWaiter struct {
	name   string
	holder *trialHolder
	done   chan struct{}
	l      *lease.Lease
	err    error
	// overlap: when the waiter acquired, the old holder's lease had not
	// ended yet (it still believed it held the lock).
	overlap bool
}

func (w *trialWaiter) acquired() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

func (w *trialWaiter) wait(t *testing.T, limit time.Duration) {
	t.Helper()
	select {
	case <-w.done:
	case <-time.After(limit):
		t.Fatalf("waiter on %q did not acquire within %v", w.name, limit)
	}
	if w.err != nil {
		t.Fatalf("waiter on %q: %v", w.name, w.err)
	}
}

// runTrial opens the failover hole: locks are taken before and while the
// master's replicas are stopped, the master is killed, the replicas resumed
// and the failover awaited; then it checks on the new master which of the
// locks acknowledged to their holders survived. With ack (WithReplicas(1,
// 50ms)) the locks taken while the replicas are stopped must fail with
// ErrNotReplicated and leave nothing held, and no acknowledged lock may be
// lost. In both modes every holder whose key did not survive must see Lost
// (ErrNotHeld or ErrExpired), the others keep their lease on the new master,
// and waiters acquire on the new master: at once for lost keys, after the
// holder's Release for surviving ones.
func runTrial(t *testing.T, deployment string, env trialEnv, ack bool) {
	ctx := context.Background()
	mode := "off"
	opts := []mutex.Option{mutex.WithTTL(30 * time.Second), mutex.WithRenewInterval(300 * time.Millisecond)}
	if ack {
		mode = "on"
		opts = append(opts, mutex.WithReplicas(1, 50*time.Millisecond))
	}
	names := env.names("trial-"+mode, trialBefore+trialWhile)
	beforeNames, whileNames := names[:trialBefore], names[trialBefore:]
	masterC := env.master.Client(t)

	var holders []*trialHolder
	var waiters []*trialWaiter
	wctx, cancelWaiters := context.WithTimeout(ctx, 2*time.Minute)
	defer func() {
		cancelWaiters()
		for _, w := range waiters {
			<-w.done
			if w.l != nil {
				_ = w.l.Release(ctx)
			}
		}
		for _, h := range holders {
			_ = h.l.Release(ctx)
		}
	}()
	startWaiter := func(h *trialHolder) {
		w := &trialWaiter{name: h.name, holder: h, done: make(chan struct{})}
		waiters = append(waiters, w)
		m := newMutex(t, env.waiters, h.name, mutex.WithTTL(30*time.Second))
		go func() {
			defer close(w.done)
			w.l, w.err = m.Lock(wctx)
			w.overlap = w.err == nil && h.l.Err() == nil
		}()
		waitQueued(t, env.waiters, h.name, 1)
	}

	// Locks taken while the replicas run, and seen on every replica.
	for _, n := range beforeNames {
		holders = append(holders, &trialHolder{name: n, l: lockWithin(t, newMutex(t, env.holders, n, opts...), 20*time.Second), replicated: true})
	}
	for _, r := range env.replicas {
		rc := env.replicaClient(r)
		for _, h := range holders {
			waitUntil(t, fmt.Sprintf("%s on replica %s", lockKey(h.name), r.Addr), 10*time.Second, func() bool {
				v, _ := rc.Get(ctx, lockKey(h.name)).Result()
				return core.Holds(v, h.l.Token())
			})
		}
	}
	for _, h := range holders[:trialWaiters] {
		startWaiter(h)
	}

	// The replicas stop; the master goes on acknowledging.
	f := freeze(t, env.replicas)
	ballast := writeBallast(t, env.holders, masterC, beforeNames[0], len(env.replicas))
	// All at once, so that the replicas stay stopped for a short time even
	// when each attempt waits 50ms for an acknowledgement.
	type attempt struct {
		l   *lease.Lease
		err error
	}
	attempts := make([]attempt, len(whileNames))
	var wg sync.WaitGroup
	for i, n := range whileNames {
		m := newMutex(t, env.holders, n, opts...)
		wg.Add(1)
		go func() {
			defer wg.Done()
			attempts[i].l, attempts[i].err = m.TryLock(ctx)
		}()
	}
	wg.Wait()
	refused := 0
	for i, n := range whileNames {
		l, err := attempts[i].l, attempts[i].err
		if l != nil {
			holders = append(holders, &trialHolder{name: n, l: l})
		}
		switch {
		case ack && !errors.Is(err, mutex.ErrNotReplicated):
			t.Fatalf("TryLock %q with the replicas stopped and WithReplicas: %v, want ErrNotReplicated", n, err)
		case !ack && err != nil:
			t.Fatalf("TryLock %q with the replicas stopped: %v", n, err)
		case ack:
			refused++
			if x, err := masterC.Exists(ctx, lockKey(n)).Result(); err != nil || x != 0 {
				t.Fatalf("unacknowledged %s still held on the master (%d, %v)", lockKey(n), x, err)
			}
		}
	}
	if !ack {
		for _, h := range holders[trialBefore : trialBefore+trialWaiters] {
			startWaiter(h)
		}
	}

	// Kill the master, resume the replicas, wait for the failover.
	old := env.kill()
	stopped := f.thaw()
	killedAt := time.Now()
	nm := env.newMaster(old)
	failover := time.Since(killedAt)
	nc := nm.Client(t)

	// Which acknowledged locks did the new master keep?
	lost, lostBefore := 0, 0
	for _, h := range holders {
		v, err := nc.Get(ctx, lockKey(h.name)).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			t.Fatalf("GET %s on the new master %s: %v", lockKey(h.name), nm.Addr, err)
		}
		h.survived = core.Holds(v, h.l.Token())
		if !h.survived {
			lost++
			if h.replicated {
				lostBefore++
			}
		}
	}
	for _, n := range whileNames {
		if !ack {
			break
		}
		if x, _ := nc.Exists(ctx, lockKey(n)).Result(); x != 0 {
			t.Errorf("refused (unacknowledged) %s is held on the new master", lockKey(n))
		}
	}

	// Holders: lost keys end the lease, surviving ones keep it.
	notHeld, expired := 0, 0
	for _, h := range holders {
		if !h.survived {
			select {
			case <-h.l.Lost():
			case <-time.After(60 * time.Second):
				t.Fatalf("holder of %q, whose key did not survive the failover, never saw Lost", h.name)
			}
			switch err := h.l.Err(); {
			case errors.Is(err, lease.ErrNotHeld):
				notHeld++
			case errors.Is(err, lease.ErrExpired):
				expired++
			default:
				t.Errorf("holder of lost %q ended with %v, want ErrNotHeld or ErrExpired", h.name, err)
			}
			continue
		}
		waitUntil(t, fmt.Sprintf("lease of %q to answer on the new master", h.name), 30*time.Second, func() bool {
			tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			_, err := h.l.TTL(tctx)
			if errors.Is(err, lease.ErrNotHeld) || errors.Is(err, lease.ErrExpired) {
				t.Fatalf("lease of %q, whose key survived, ended: %v", h.name, err)
			}
			return err == nil
		})
	}

	// Waiters: on lost keys they acquire on the new master by themselves;
	// on surviving keys only after the holder's Release.
	acquired, overlaps := 0, 0
	for _, w := range waiters {
		if w.holder.survived {
			continue
		}
		w.wait(t, 60*time.Second)
		acquired++
		if w.overlap {
			overlaps++
		}
	}
	for _, w := range waiters {
		if !w.holder.survived {
			continue
		}
		if w.acquired() && w.holder.l.Err() == nil {
			t.Fatalf("waiter on %q acquired while the holder's surviving lease was held", w.name)
		}
		if err := w.holder.l.Release(ctx); err != nil {
			t.Fatalf("Release of surviving %q on the new master: %v", w.name, err)
		}
		w.wait(t, 60*time.Second)
		acquired++
	}
	for _, w := range waiters {
		if v, _ := nc.Get(ctx, lockKey(w.name)).Result(); !core.Holds(v, w.l.Token()) {
			t.Errorf("%s on the new master = %q, want waiter's token", lockKey(w.name), v)
		}
	}

	if ack {
		// What WithReplicas(1) does on the new master, whose replicas may be
		// gone: reported, not asserted.
		l, err := newMutex(t, env.holders, whileNames[0], opts...).TryLock(ctx)
		if l != nil {
			_ = l.Release(ctx)
		}
		t.Logf("OBSERVATION after the failover, TryLock with WithReplicas(1, 50ms) on the new master %s: %v", nm.Addr, err)
	}
	if ack && lost != 0 {
		t.Errorf("with replica acknowledgement %d of %d acknowledged locks were lost in the failover", lost, len(holders))
	}
	if lostBefore != 0 {
		t.Errorf("%d locks replicated before the replicas stopped were lost", lostBefore)
	}
	refusal := "all acknowledged although the replicas were stopped"
	if ack {
		refusal = fmt.Sprintf("%d attempts while the replicas were stopped refused with ErrNotReplicated and undone", refused)
	}
	result(t, "%s, replica ack %s: N=%d acknowledged locks checked on the new master (%d taken before the replicas stopped, %d while), %d LOST; %s; holders of lost keys saw Lost: %d ErrNotHeld, %d ErrExpired; waiters %d/%d acquired on the new master (%d while the old holder still believed it held the lock); ballast %d MiB, replicas stopped %v, failover %v",
		deployment, mode, len(holders), trialBefore, len(holders)-trialBefore, lost, refusal, notHeld, expired, acquired, len(waiters), overlaps, ballast>>20, stopped.Round(time.Millisecond), failover.Round(100*time.Millisecond))
}

// writeBallast writes chunks into tag's slot through c until each of the
// master's replicas connections has at least backlogWanted bytes queued in
// the master (CLIENT LIST omem), and returns the bytes written.
func writeBallast(t *testing.T, c redis.UniversalClient, masterC *redis.Client, tag string, replicas int) int {
	t.Helper()
	ctx := context.Background()
	chunk := strings.Repeat("b", ballastChunk)
	total := 0
	for i := 0; ; i++ {
		if err := c.Set(ctx, fmt.Sprintf("{%s}:ballast-%d", tag, i), chunk, time.Minute).Err(); err != nil {
			t.Fatalf("ballast: %v", err)
		}
		total += len(chunk)
		list, err := masterC.ClientList(ctx).Result()
		if err != nil {
			t.Fatalf("CLIENT LIST: %v", err)
		}
		var omems []int
		for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
			if !strings.Contains(line, "flags=S") {
				continue
			}
			for _, f := range strings.Fields(line) {
				if v, ok := strings.CutPrefix(f, "omem="); ok {
					n, _ := strconv.Atoi(v)
					omems = append(omems, n)
				}
			}
		}
		if len(omems) == replicas && slices.Min(omems) >= backlogWanted {
			return total
		}
		if total >= ballastLimit {
			t.Fatalf("after %d MiB of ballast the replicas' output buffers hold %v bytes", total>>20, omems)
		}
	}
}

// TestClusterReplicaAck runs the failover trial twice on one cluster, on two
// different masters: without and with WithReplicas(1, 50ms).
func TestClusterReplicaAck(t *testing.T) {
	c := redistest.StartCluster(t, 3, 1)
	targets := c.Masters()
	if len(targets) != 3 {
		t.Fatalf("%d masters", len(targets))
	}
	t.Run("Off", func(t *testing.T) { runTrial(t, "Cluster", clusterEnv(t, c, targets[0]), false) })
	t.Run("On", func(t *testing.T) { runTrial(t, "Cluster", clusterEnv(t, c, targets[1]), true) })
}

func clusterEnv(t *testing.T, c *redistest.Cluster, master *redistest.Node) trialEnv {
	slot := -1
	hc := c.Client(t)
	return trialEnv{
		holders:  hc,
		waiters:  c.Client(t),
		master:   master,
		replicas: replicasOf(t, master, c.Nodes),
		names: func(prefix string, n int) []string {
			ns := clusterNames(t, hc, prefix, n, func(a string) bool { return a == master.Addr })[master.Addr]
			k, _ := keys.For("redlease:", ns[0])
			slot = k.Slot
			return ns
		},
		replicaClient: func(n *redistest.Node) *redis.Client {
			rc := redis.NewClient(&redis.Options{Addr: n.Addr, OnConnect: func(ctx context.Context, cn *redis.Conn) error {
				return cn.ReadOnly(ctx).Err()
			}})
			t.Cleanup(func() { _ = rc.Close() })
			return rc
		},
		kill: func() string {
			c.KillNode(master)
			return master.Addr
		},
		newMaster: func(old string) *redistest.Node { return c.WaitFailover(t, slot, old) },
	}
}

func sentinelEnv(t *testing.T, s *redistest.Sentinel) trialEnv {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addr, err := s.MasterAddr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	master := s.Node(addr)
	return trialEnv{
		holders:  s.Client(t),
		waiters:  s.Client(t),
		master:   master,
		replicas: replicasOf(t, master, s.Data),
		names: func(prefix string, n int) []string {
			out := make([]string, n)
			for i := range out {
				out[i] = fmt.Sprintf("%s-%d", prefix, i)
			}
			return out
		},
		replicaClient: func(n *redistest.Node) *redis.Client { return n.Client(t) },
		kill: func() string {
			master.Kill()
			return master.Addr
		},
		newMaster: func(old string) *redistest.Node { return s.Node(s.WaitNewMaster(t, old, 60*time.Second)) },
	}
}
