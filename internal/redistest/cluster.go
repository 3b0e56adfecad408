package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClusterNodeTimeout is the cluster-node-timeout of StartCluster's nodes. A
// killed master is replaced by one of its replicas about 1.5 to 2 times this
// long after it died.
const ClusterNodeTimeout = 2000 * time.Millisecond

// WaitLimit bounds the waits of StartCluster, StartSentinel and WaitFailover.
const WaitLimit = 30 * time.Second

// Node is one redis-server process (data node or sentinel) of a Cluster or a
// Sentinel deployment. Its address stays the same across KillNode and
// RestartNode.
type Node struct {
	Addr    string // 127.0.0.1:Port
	Port    int
	BusPort int    // cluster bus port, 0 outside a cluster
	ID      string // cluster node id (stable across restarts), "" outside a cluster
	Dir     string // working directory (config, log)
	LogFile string

	bin  string
	args []string

	mu    sync.Mutex
	cmd   *exec.Cmd
	done  chan struct{} // closed when cmd has exited and was waited for
	admin *redis.Client
}

// newNode starts a node in a new subdirectory of parent. args builds the
// command line once Port, BusPort (if bus) and Dir are set. A port taken in
// the meantime by someone else is retried with fresh ports.
func newNode(parent, name, bin string, bus bool, args func(n *Node) ([]string, error)) (*Node, error) {
	var last error
	for try := 0; try < 5; try++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		n := &Node{Port: port, Addr: fmt.Sprintf("127.0.0.1:%d", port), bin: bin}
		if bus {
			if n.BusPort, err = freePort(); err != nil {
				return nil, err
			}
			if n.BusPort == n.Port {
				continue
			}
		}
		n.Dir = filepath.Join(parent, fmt.Sprintf("%s-%d", name, port))
		if err := os.MkdirAll(n.Dir, 0o755); err != nil {
			return nil, err
		}
		n.LogFile = filepath.Join(n.Dir, "redis.log")
		if n.args, err = args(n); err != nil {
			return nil, err
		}
		if last = n.launch(); last == nil {
			return n, nil
		}
		n.closeAdmin()
	}
	return nil, last
}

// freePort is FreePort returning an error instead of failing a test.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// launch starts the process and waits until it answers on its port as itself
// (INFO's process_id is its pid, so not a stranger that took the port).
func (n *Node) launch() error {
	out, err := os.OpenFile(filepath.Join(n.Dir, "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(n.bin, n.args...)
	cmd.Dir = n.Dir
	cmd.Stdout, cmd.Stderr = out, out // files: no copying goroutines
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	err = cmd.Start()
	_ = out.Close()
	if err != nil {
		return fmt.Errorf("start %s: %w", n.bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	n.mu.Lock()
	n.cmd, n.done = cmd, done
	n.mu.Unlock()

	want := "process_id:" + strconv.Itoa(cmd.Process.Pid)
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-done:
			return fmt.Errorf("%s on %s exited at start (%v):\n%s", filepath.Base(n.bin), n.Addr, cmd.ProcessState, n.LogTail(20))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		info, err := n.client().Info(ctx, "server").Result()
		cancel()
		if err == nil {
			if strings.Contains(info, want+"\r\n") || strings.Contains(info, want+"\n") {
				return nil
			}
			n.Kill()
			return fmt.Errorf("port %d answered by another process", n.Port)
		}
		if time.Now().After(deadline) {
			n.Kill()
			return fmt.Errorf("%s on %s did not answer: %v\n%s", filepath.Base(n.bin), n.Addr, err, n.LogTail(20))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// client is the node's own admin connection (no retries, short timeouts).
func (n *Node) client() *redis.Client {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.admin == nil {
		n.admin = redis.NewClient(&redis.Options{
			Addr: n.Addr, Protocol: 2, DisableIdentity: true, MaxRetries: -1, PoolSize: 4,
			DialTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second,
		})
	}
	return n.admin
}

func (n *Node) closeAdmin() {
	n.mu.Lock()
	a := n.admin
	n.admin = nil
	n.mu.Unlock()
	if a != nil {
		_ = a.Close()
	}
}

// Kill stops the process with SIGKILL and waits for it. Killing a stopped
// node does nothing.
func (n *Node) Kill() {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.cmd, n.done = nil, nil
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Alive reports whether the process runs (it was started and not killed,
// and did not exit by itself).
func (n *Node) Alive() bool {
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Pid returns the process id, 0 when the node is stopped.
func (n *Node) Pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// Role returns the first element of ROLE: "master", "slave" or "sentinel";
// "" when the node does not answer.
func (n *Node) Role() string {
	if !n.Alive() {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	v, err := n.client().Do(ctx, "ROLE").Slice()
	if err != nil || len(v) == 0 {
		return ""
	}
	s, _ := v[0].(string)
	return s
}

// Client returns a new plain client of this node only, closed when t ends.
func (n *Node) Client(t testing.TB) *redis.Client { return NewClient(t, n.Addr) }

// LogTail returns the last lines of the node's log (and of its stdout/stderr,
// where start-up errors land).
func (n *Node) LogTail(lines int) string {
	var b strings.Builder
	for _, f := range []string{n.LogFile, filepath.Join(n.Dir, "stdout.log")} {
		data, err := os.ReadFile(f)
		if err != nil || len(strings.TrimSpace(string(data))) == 0 {
			continue
		}
		l := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(l) > lines {
			l = l[len(l)-lines:]
		}
		fmt.Fprintf(&b, "--- %s (tail)\n%s\n", f, strings.Join(l, "\n"))
	}
	return b.String()
}

// replicationLinked reports an error unless the node is a replica whose
// master link is up.
func (n *Node) replicationLinked(ctx context.Context) error {
	info, err := n.client().Info(ctx, "replication").Result()
	if err != nil {
		return fmt.Errorf("%s: INFO replication: %w", n.Addr, err)
	}
	f := infoFields(info)
	if f["role"] != "slave" {
		return fmt.Errorf("%s: role %q, want slave", n.Addr, f["role"])
	}
	if f["master_link_status"] != "up" {
		return fmt.Errorf("%s: master_link_status %q (master %s:%s)", n.Addr, f["master_link_status"], f["master_host"], f["master_port"])
	}
	return nil
}

func infoFields(info string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(info, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			m[k] = v
		}
	}
	return m
}

// waitFor calls f until it returns nil or limit passed; it returns f's last
// error then.
func waitFor(limit time.Duration, f func(ctx context.Context) error) error {
	deadline := time.Now().Add(limit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err := f(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still not ready after %v: %w", limit, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func logTails(nodes []*Node, lines int) string {
	var b strings.Builder
	for _, n := range nodes {
		fmt.Fprintf(&b, "=== %s (alive %v)\n%s", n.Addr, n.Alive(), n.LogTail(lines))
	}
	return b.String()
}

// Cluster is a Redis Cluster of redis-server processes on loopback ports.
type Cluster struct {
	Nodes []*Node

	t         testing.TB
	dir       string
	mu        sync.Mutex
	clients   []*redis.ClusterClient
	closeOnce sync.Once
}

// StartCluster starts masters (at least 3) masters with replicasPerMaster
// replicas each, joins them with redis-cli --cluster create and waits until
// every node reports cluster_state:ok with all 16384 slots covered, all nodes
// agree on the topology and every replica's master link is up. Everything is
// killed and removed by Close, which runs when t ends.
func StartCluster(t testing.TB, masters, replicasPerMaster int) *Cluster {
	t.Helper()
	if masters < 3 || replicasPerMaster < 0 {
		t.Fatalf("StartCluster(%d, %d): need at least 3 masters and no negative replicas", masters, replicasPerMaster)
	}
	bin := Binary(t, "redis-server")
	cli := Binary(t, "redis-cli")
	dir, err := os.MkdirTemp("", "redistest-cluster-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{t: t, dir: dir}
	t.Cleanup(c.Close)

	total := masters * (1 + replicasPerMaster)
	for i := 0; i < total; i++ {
		n, err := newNode(dir, "node", bin, true, func(n *Node) ([]string, error) {
			return []string{
				"--port", strconv.Itoa(n.Port), "--bind", "127.0.0.1",
				"--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(n.BusPort),
				"--cluster-config-file", fmt.Sprintf("nodes-%d.conf", n.Port),
				"--cluster-node-timeout", strconv.Itoa(int(ClusterNodeTimeout / time.Millisecond)),
				"--save", "", "--appendonly", "no", "--dir", n.Dir,
				"--repl-diskless-sync-delay", "0",
				"--enable-debug-command", "yes", "--daemonize", "no", "--logfile", n.LogFile,
			}, nil
		})
		if err != nil {
			t.Fatalf("start cluster node: %v", err)
		}
		c.Nodes = append(c.Nodes, n)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		n.ID, err = n.client().Do(ctx, "CLUSTER", "MYID").Text()
		cancel()
		if err != nil {
			t.Fatalf("%s: CLUSTER MYID: %v", n.Addr, err)
		}
	}

	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicasPerMaster), "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput()
	cancel()
	if err != nil {
		t.Fatalf("redis-cli %s: %v\n%s\n%s", strings.Join(args, " "), err, out, logTails(c.Nodes, 10))
	}
	c.WaitHealthy(t)
	return c
}

// Addrs returns the addresses of all nodes, masters and replicas, dead or
// alive.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr
	}
	return out
}

// Node returns the node at addr (host:port), nil if there is none.
func (c *Cluster) Node(addr string) *Node {
	for _, n := range c.Nodes {
		if n.Addr == addr {
			return n
		}
	}
	return nil
}

func (c *Cluster) byID(id string) *Node {
	for _, n := range c.Nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

// Masters returns the live nodes whose ROLE is master.
func (c *Cluster) Masters() []*Node { return c.withRole("master") }

// Replicas returns the live nodes whose ROLE is slave.
func (c *Cluster) Replicas() []*Node { return c.withRole("slave") }

func (c *Cluster) withRole(role string) []*Node {
	var out []*Node
	for _, n := range c.Nodes {
		if n.Role() == role {
			out = append(out, n)
		}
	}
	return out
}

// Client returns a cluster client of all nodes, closed when t ends.
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:          c.Addrs(),
		DialTimeout:    time.Second,
		ReadTimeout:    2 * time.Second,
		WriteTimeout:   2 * time.Second,
		MaxRedirects:   8,
		RouteByLatency: false,
		RouteRandomly:  false,
	})
	c.mu.Lock()
	c.clients = append(c.clients, cc)
	c.mu.Unlock()
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// clusterEntry is one line of CLUSTER NODES.
type clusterEntry struct {
	id, addr, master string
	flags            map[string]bool
	epoch            int64
	link             string
	slots            [][2]int
}

func parseClusterNodes(text string) ([]clusterEntry, error) {
	var out []clusterEntry
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			return nil, fmt.Errorf("bad CLUSTER NODES line %q", line)
		}
		e := clusterEntry{id: f[0], addr: f[1], master: f[3], link: f[7], flags: map[string]bool{}}
		if i := strings.IndexAny(e.addr, "@,"); i >= 0 {
			e.addr = e.addr[:i]
		}
		for _, fl := range strings.Split(f[2], ",") {
			e.flags[fl] = true
		}
		e.epoch, _ = strconv.ParseInt(f[6], 10, 64)
		for _, s := range f[8:] {
			if strings.HasPrefix(s, "[") { // migrating/importing marker
				continue
			}
			lo, hi, isRange := strings.Cut(s, "-")
			a, err1 := strconv.Atoi(lo)
			b := a
			var err2 error
			if isRange {
				b, err2 = strconv.Atoi(hi)
			}
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("bad slot %q in %q", s, line)
			}
			e.slots = append(e.slots, [2]int{a, b})
		}
		out = append(out, e)
	}
	return out, nil
}

func (c *Cluster) view(ctx context.Context, n *Node) ([]clusterEntry, error) {
	text, err := n.client().ClusterNodes(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("%s: CLUSTER NODES: %w", n.Addr, err)
	}
	return parseClusterNodes(text)
}

// check returns nil when the live part of the cluster is healthy: every live
// node says cluster_state:ok with all slots ok, knows all nodes, sees every
// other live node connected and not failing, all live nodes agree on roles
// and slot owners, every slot owner is alive and every live replica has its
// master link up.
func (c *Cluster) check(ctx context.Context) error {
	var ref, refAddr string
	live := 0
	for _, n := range c.Nodes {
		if !n.Alive() {
			continue
		}
		live++
		info, err := n.client().ClusterInfo(ctx).Result()
		if err != nil {
			return fmt.Errorf("%s: CLUSTER INFO: %w", n.Addr, err)
		}
		f := infoFields(info)
		if f["cluster_state"] != "ok" || f["cluster_slots_assigned"] != "16384" || f["cluster_slots_ok"] != "16384" {
			return fmt.Errorf("%s: cluster_state:%s slots assigned %s ok %s", n.Addr, f["cluster_state"], f["cluster_slots_assigned"], f["cluster_slots_ok"])
		}
		if f["cluster_known_nodes"] != strconv.Itoa(len(c.Nodes)) {
			return fmt.Errorf("%s: knows %s nodes, want %d", n.Addr, f["cluster_known_nodes"], len(c.Nodes))
		}
		entries, err := c.view(ctx, n)
		if err != nil {
			return err
		}
		var topo []string
		for _, e := range entries {
			m := c.byID(e.id)
			if m == nil {
				return fmt.Errorf("%s: knows foreign node %s %s", n.Addr, e.id, e.addr)
			}
			if !m.Alive() {
				continue
			}
			for _, bad := range []string{"fail", "fail?", "handshake", "noaddr"} {
				if e.flags[bad] {
					return fmt.Errorf("%s: sees %s as %s", n.Addr, m.Addr, bad)
				}
			}
			if !e.flags["myself"] && e.link != "connected" {
				return fmt.Errorf("%s: link to %s %s", n.Addr, m.Addr, e.link)
			}
			if e.flags["myself"] && e.flags["slave"] {
				if err := n.replicationLinked(ctx); err != nil {
					return err
				}
			}
			role := "master"
			if e.flags["slave"] {
				role = "slave-of-" + e.master
			}
			topo = append(topo, fmt.Sprintf("%s %s %v", e.id, role, e.slots))
		}
		for _, e := range entries {
			if len(e.slots) > 0 && !c.byID(e.id).Alive() {
				return fmt.Errorf("%s: slots %v still owned by dead node %s", n.Addr, e.slots, e.addr)
			}
		}
		sort.Strings(topo)
		s := strings.Join(topo, "\n")
		if ref == "" {
			ref, refAddr = s, n.Addr
		} else if s != ref {
			return fmt.Errorf("topology differs between %s:\n%s\nand %s:\n%s", refAddr, ref, n.Addr, s)
		}
	}
	if live == 0 {
		return errors.New("no live node")
	}
	return nil
}

// WaitHealthy waits (at most WaitLimit) until the live nodes form a healthy
// cluster (see StartCluster), for example after RestartNode. Dead nodes are
// ignored, except that they must own no slots.
func (c *Cluster) WaitHealthy(t testing.TB) {
	t.Helper()
	if err := waitFor(WaitLimit, c.check); err != nil {
		t.Fatalf("cluster not healthy: %v\n%s", err, logTails(c.Nodes, 15))
	}
}

// MasterOf returns the node that owns slot, according to the live node whose
// claim has the highest config epoch; nil if nobody answers or owns it. The
// owner may be a dead node, before failover.
func (c *Cluster) MasterOf(slot int) *Node {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var best *Node
	bestEpoch := int64(-1)
	for _, n := range c.Nodes {
		if !n.Alive() {
			continue
		}
		entries, err := c.view(ctx, n)
		if err != nil {
			continue
		}
		for _, e := range entries {
			for _, r := range e.slots {
				if r[0] <= slot && slot <= r[1] && e.epoch > bestEpoch {
					if m := c.byID(e.id); m != nil {
						best, bestEpoch = m, e.epoch
					}
				}
			}
		}
	}
	return best
}

// KillNode kills n with SIGKILL (no shutdown, nothing saved).
func (c *Cluster) KillNode(n *Node) { n.Kill() }

// RestartNode starts a killed n again, on the same ports with the same node
// config file, so it rejoins the cluster with its old id. It comes back
// empty (no persistence): a master that was replaced comes back as a replica
// of its replacement and syncs from it, but a master restarted before its
// failover stays master and its replicas resync to its empty dataset. It
// waits until n answers, not until the cluster is healthy again: use
// WaitHealthy for that. Call it from the test's goroutine.
func (c *Cluster) RestartNode(n *Node) {
	c.t.Helper()
	n.Kill()
	if err := n.launch(); err != nil {
		c.t.Fatalf("restart %s: %v", n.Addr, err)
	}
}

// WaitFailover waits (at most WaitLimit) until slot is owned by a live master
// other than oldMaster and the live nodes form a healthy cluster again, and
// returns the new master. It then asks the clients made by Client to reload
// the slot map. The old master must have been killed (the failover is the
// automatic one, after ClusterNodeTimeout).
func (c *Cluster) WaitFailover(t testing.TB, slot int, oldMaster string) *Node {
	t.Helper()
	var owner *Node
	err := waitFor(WaitLimit, func(ctx context.Context) error {
		if err := c.check(ctx); err != nil {
			return err
		}
		owner = c.MasterOf(slot)
		if owner == nil {
			return fmt.Errorf("slot %d has no owner", slot)
		}
		if owner.Addr == oldMaster {
			return fmt.Errorf("slot %d still owned by %s", slot, oldMaster)
		}
		if r := owner.Role(); r != "master" {
			return fmt.Errorf("new owner %s of slot %d has role %q", owner.Addr, slot, r)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("no failover of slot %d away from %s: %v\n%s", slot, oldMaster, err, logTails(c.Nodes, 15))
	}
	c.mu.Lock()
	for _, cc := range c.clients {
		cc.ReloadState(context.Background())
	}
	c.mu.Unlock()
	return owner
}

// Close kills all nodes, waits for them and removes their directory. It is
// idempotent and runs when the test ends. If the test failed, the tails of
// the node logs are logged first.
func (c *Cluster) Close() {
	c.closeOnce.Do(func() {
		if c.t.Failed() {
			c.t.Logf("cluster node logs:\n%s", logTails(c.Nodes, 30))
		}
		closeNodes(c.Nodes)
		_ = os.RemoveAll(c.dir)
	})
}

// closeNodes kills nodes in parallel and closes their admin clients.
func closeNodes(nodes []*Node) {
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.Kill()
			n.closeAdmin()
		}()
	}
	wg.Wait()
}
