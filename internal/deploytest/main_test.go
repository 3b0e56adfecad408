package deploytest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/redlease/redlease/internal/keys"
	"github.com/redlease/redlease/internal/leaktest"
	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/internal/wake"
	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, leaktest.Options()...) }

func lockKey(name string) string { return "redlease:{" + name + "}" }
func fenceKey(name string) string {
	k, _ := keys.For("redlease:", name)
	f, _ := keys.FenceKey("redlease:", k.Slot, true)
	return f
}
func wakeChannel(name string) string {
	return lockKey(name) + ":wake"
}

func result(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Logf("RESULT %s: %s", t.Name(), fmt.Sprintf(format, args...))
}

func newMutex(t testing.TB, c redis.UniversalClient, name string, opts ...mutex.Option) *mutex.Mutex {
	t.Helper()
	m, err := mutex.New(c, name, opts...)
	if err != nil {
		t.Fatalf("mutex.New(%q): %v", name, err)
	}
	return m
}

// lockWithin is Lock bounded by a generous hang guard.
func lockWithin(t testing.TB, m *mutex.Mutex, limit time.Duration) *lease.Lease {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	l, err := m.Lock(ctx)
	if err != nil {
		t.Fatalf("Lock %q: %v", m.Name(), err)
	}
	return l
}

// waitUntil polls ok until it holds; limit is a hang guard only.
func waitUntil(t testing.TB, what string, limit time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting after %v for %s", limit, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitQueued waits until n waiters of this process queue on name's wake-up
// channel through c, i.e. they failed an attempt and their subscription is
// confirmed (or its confirmation wait ran out).
func waitQueued(t testing.TB, c redis.UniversalClient, name string, n int) {
	t.Helper()
	waitUntil(t, fmt.Sprintf("%d waiter(s) queued on %q", n, name), 30*time.Second, func() bool {
		return wake.QueueLen(c, wakeChannel(name)) >= n
	})
}

// waitRenewals waits until l's deadline moved forward n times (n successful
// renewals), failing if the lease ends meanwhile.
func waitRenewals(t testing.TB, l *lease.Lease, n int) {
	t.Helper()
	last := l.ValidUntil()
	seen := 0
	deadline := time.Now().Add(20 * time.Second)
	for seen < n {
		if err := l.Err(); err != nil {
			t.Fatalf("lease %s lost while waiting for renewals: %v", l.Name(), err)
		}
		if vu := l.ValidUntil(); vu.After(last) {
			seen++
			last = vu
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d renewals of %s after 20s", seen, n, l.Name())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// nodeClients returns a plain client per node address, closed when t ends.
func nodeClients(t testing.TB, nodes []*redistest.Node) map[string]*redis.Client {
	out := map[string]*redis.Client{}
	for _, n := range nodes {
		out[n.Addr] = n.Client(t)
	}
	return out
}

// commandStats returns INFO commandstats calls per live node address.
func commandStats(t testing.TB, clients map[string]*redis.Client) map[string]map[string]int64 {
	t.Helper()
	out := map[string]map[string]int64{}
	for addr, c := range clients {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s, err := redistest.CommandCalls(ctx, c)
		cancel()
		if err != nil {
			t.Fatalf("%s: INFO commandstats: %v", addr, err)
		}
		out[addr] = s
	}
	return out
}

func delta(after, before map[string]map[string]int64, addr, cmd string) int64 {
	return after[addr][cmd] - before[addr][cmd]
}

// slotOwners maps every hash slot to its master's address (CLUSTER SLOTS).
func slotOwners(t testing.TB, cc *redis.ClusterClient) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	slots, err := cc.ClusterSlots(ctx).Result()
	if err != nil {
		t.Fatalf("CLUSTER SLOTS: %v", err)
	}
	owner := make([]string, 16384)
	for _, s := range slots {
		for i := s.Start; i <= s.End; i++ {
			owner[i] = s.Nodes[0].Addr
		}
	}
	for i, o := range owner {
		if o == "" {
			t.Fatalf("slot %d has no owner", i)
		}
	}
	return owner
}

// clusterNames returns perMaster fresh lock names for each master address
// accepted by want (nil: every master), every name in its own slot. The
// slot computed by keys.Slot is checked against CLUSTER KEYSLOT for the lock
// and the fence key.
func clusterNames(t testing.TB, cc *redis.ClusterClient, prefix string, perMaster int, want func(addr string) bool) map[string][]string {
	t.Helper()
	ctx := context.Background()
	owner := slotOwners(t, cc)
	masters := map[string]bool{}
	for _, o := range owner {
		if want == nil || want(o) {
			masters[o] = true
		}
	}
	out := map[string][]string{}
	used := map[int]bool{}
	full := 0
	for i := 0; full < len(masters); i++ {
		if i > 100000 {
			t.Fatalf("could not find %d names per master", perMaster)
		}
		name := fmt.Sprintf("%s-%d", prefix, i)
		k, err := keys.For("redlease:", name)
		if err != nil {
			t.Fatal(err)
		}
		m := owner[k.Slot]
		if used[k.Slot] || !masters[m] || len(out[m]) >= perMaster {
			continue
		}
		for _, key := range []string{k.Lock, fenceKey(name), k.Wake} {
			s, err := cc.ClusterKeySlot(ctx, key).Result()
			if err != nil {
				t.Fatalf("CLUSTER KEYSLOT %s: %v", key, err)
			}
			if int(s) != k.Slot {
				t.Fatalf("keys.Slot(%q) = %d, CLUSTER KEYSLOT %s = %d", k.Lock, k.Slot, key, s)
			}
		}
		used[k.Slot] = true
		out[m] = append(out[m], name)
		if len(out[m]) == perMaster {
			full++
		}
	}
	return out
}

// replicasOf returns the nodes among candidates that master lists as its
// replicas in INFO replication, failing if there is none.
func replicasOf(t testing.TB, master *redistest.Node, candidates []*redistest.Node) []*redistest.Node {
	t.Helper()
	out := liveReplicas(t, master, candidates)
	if len(out) == 0 {
		t.Fatalf("master %s has no live replica", master.Addr)
	}
	return out
}

// liveReplicas returns the live nodes among candidates that master lists as
// its replicas in INFO replication.
func liveReplicas(t testing.TB, master *redistest.Node, candidates []*redistest.Node) []*redistest.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := master.Client(t).Info(ctx, "replication").Result()
	if err != nil {
		t.Fatalf("%s: INFO replication: %v", master.Addr, err)
	}
	ports := map[int]bool{}
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "slave") || !strings.Contains(line, "port=") {
			continue
		}
		for _, f := range strings.Split(line, ",") {
			if v, ok := strings.CutPrefix(f, "port="); ok {
				p, _ := strconv.Atoi(v)
				ports[p] = true
			}
		}
	}
	var out []*redistest.Node
	for _, n := range candidates {
		if ports[n.Port] && n.Alive() {
			out = append(out, n)
		}
	}
	return out
}

// freezer stops processes with SIGSTOP and resumes them with SIGCONT; thaw
// is idempotent and also runs when the test ends.
type freezer struct {
	pids []int
	at   time.Time
}

func freeze(t testing.TB, nodes []*redistest.Node) *freezer {
	t.Helper()
	f := &freezer{at: time.Now()}
	for _, n := range nodes {
		pid := n.Pid()
		if pid == 0 {
			t.Fatalf("%s is not running", n.Addr)
		}
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatalf("SIGSTOP %s: %v", n.Addr, err)
		}
		f.pids = append(f.pids, pid)
	}
	t.Cleanup(func() { f.thaw() })
	return f
}

// thaw resumes the processes and returns how long they were stopped.
func (f *freezer) thaw() time.Duration {
	for _, pid := range f.pids {
		_ = syscall.Kill(pid, syscall.SIGCONT)
	}
	f.pids = nil
	return time.Since(f.at)
}
