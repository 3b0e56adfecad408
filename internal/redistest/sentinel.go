package redistest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Sentinel timings of StartSentinel: a killed master is seen as down after
// SentinelDownAfter, and replaced a few seconds later (longer, about
// 2*SentinelFailoverTimeout more, when the sentinels' leader election split
// the votes).
const (
	SentinelDownAfter       = 1000 * time.Millisecond
	SentinelFailoverTimeout = 5000 * time.Millisecond
)

// Sentinel is one master with replicas, watched by sentinels, all
// redis-server processes on loopback ports.
type Sentinel struct {
	MasterName string
	// Data holds the data nodes: Data[0] started as the master, the others as
	// its replicas. Who is master now is asked with MasterAddr.
	Data      []*Node
	Sentinels []*Node

	t         testing.TB
	dir       string
	quorum    int
	closeOnce sync.Once
}

// StartSentinel starts a master, replicas replicas of it and sentinels
// sentinels monitoring it as "mymaster" (quorum sentinels/2+1), and waits
// until the replicas' links are up and every sentinel knows the master, all
// replicas and all other sentinels. Everything is killed and removed by
// Close, which runs when t ends.
func StartSentinel(t testing.TB, replicas, sentinels int) *Sentinel {
	t.Helper()
	if replicas < 0 || sentinels < 1 {
		t.Fatalf("StartSentinel(%d, %d): need at least one sentinel", replicas, sentinels)
	}
	bin := Binary(t, "redis-server")
	dir, err := os.MkdirTemp("", "redistest-sentinel-")
	if err != nil {
		t.Fatal(err)
	}
	s := &Sentinel{MasterName: "mymaster", t: t, dir: dir, quorum: sentinels/2 + 1}
	t.Cleanup(s.Close)

	master, err := newNode(dir, "data", bin, false, func(n *Node) ([]string, error) { return dataArgs(n), nil })
	if err != nil {
		t.Fatalf("start master: %v", err)
	}
	s.Data = append(s.Data, master)
	for i := 0; i < replicas; i++ {
		n, err := newNode(dir, "data", bin, false, func(n *Node) ([]string, error) {
			return append(dataArgs(n), "--replicaof", "127.0.0.1", strconv.Itoa(master.Port)), nil
		})
		if err != nil {
			t.Fatalf("start replica: %v", err)
		}
		s.Data = append(s.Data, n)
	}
	// Replicas linked before sentinels start: a sentinel learns the replicas
	// from the master's INFO, which it asks only every 10s once started.
	err = waitFor(WaitLimit, func(ctx context.Context) error {
		for _, n := range s.Data[1:] {
			if err := n.replicationLinked(ctx); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("replicas not linked: %v\n%s", err, logTails(s.Data, 15))
	}

	for i := 0; i < sentinels; i++ {
		n, err := newNode(dir, "sentinel", bin, false, func(n *Node) ([]string, error) {
			conf := n.Dir + "/sentinel.conf"
			text := strings.Join([]string{
				"port " + strconv.Itoa(n.Port),
				"bind 127.0.0.1",
				"daemonize no",
				"dir " + n.Dir,
				"logfile " + n.LogFile,
				"sentinel resolve-hostnames no",
				"sentinel announce-ip 127.0.0.1",
				fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d %d", s.MasterName, master.Port, s.quorum),
				fmt.Sprintf("sentinel down-after-milliseconds %s %d", s.MasterName, SentinelDownAfter.Milliseconds()),
				fmt.Sprintf("sentinel failover-timeout %s %d", s.MasterName, SentinelFailoverTimeout.Milliseconds()),
				fmt.Sprintf("sentinel parallel-syncs %s 1", s.MasterName),
			}, "\n") + "\n"
			if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
				return nil, err
			}
			return []string{conf, "--sentinel"}, nil
		})
		if err != nil {
			t.Fatalf("start sentinel: %v", err)
		}
		s.Sentinels = append(s.Sentinels, n)
	}
	s.WaitHealthy(t)
	return s
}

func dataArgs(n *Node) []string {
	return []string{
		"--port", strconv.Itoa(n.Port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", n.Dir,
		"--repl-diskless-sync-delay", "0",
		"--enable-debug-command", "yes", "--daemonize", "no", "--logfile", n.LogFile,
	}
}

// SentinelAddrs returns the sentinels' addresses.
func (s *Sentinel) SentinelAddrs() []string {
	out := make([]string, len(s.Sentinels))
	for i, n := range s.Sentinels {
		out[i] = n.Addr
	}
	return out
}

// DataAddrs returns the data nodes' addresses (Data[0] first).
func (s *Sentinel) DataAddrs() []string {
	out := make([]string, len(s.Data))
	for i, n := range s.Data {
		out[i] = n.Addr
	}
	return out
}

// Node returns the data node or sentinel at addr, nil if there is none.
func (s *Sentinel) Node(addr string) *Node {
	for _, n := range append(append([]*Node(nil), s.Data...), s.Sentinels...) {
		if n.Addr == addr {
			return n
		}
	}
	return nil
}

func masterAddrFrom(ctx context.Context, sn *Node, name string) (string, error) {
	v, err := sn.client().Do(ctx, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", name).StringSlice()
	if err != nil {
		return "", fmt.Errorf("sentinel %s: %w", sn.Addr, err)
	}
	if len(v) != 2 {
		return "", fmt.Errorf("sentinel %s: get-master-addr-by-name: %q", sn.Addr, v)
	}
	return v[0] + ":" + v[1], nil
}

// MasterAddr asks the live sentinels, in turn, for the master's address.
func (s *Sentinel) MasterAddr(ctx context.Context) (string, error) {
	err := errors.New("no live sentinel")
	for _, sn := range s.Sentinels {
		if !sn.Alive() {
			continue
		}
		var addr string
		if addr, err = masterAddrFrom(ctx, sn, s.MasterName); err == nil {
			return addr, nil
		}
	}
	return "", err
}

// Client returns a failover client (redis.NewFailoverClient with all
// sentinels) of the master, closed when t ends.
func (s *Sentinel) Client(t testing.TB) *redis.Client {
	c := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:    s.MasterName,
		SentinelAddrs: s.SentinelAddrs(),
		DialTimeout:   time.Second,
		ReadTimeout:   2 * time.Second,
		WriteTimeout:  2 * time.Second,
	})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// check returns nil when every live sentinel agrees on a live master, which
// says it is master, and knows every other live data node as its replica
// (linked, not down) and every other live sentinel; and when every live
// replica's link to that master is up.
func (s *Sentinel) check(ctx context.Context) error {
	var master string
	live := 0
	for _, sn := range s.Sentinels {
		if !sn.Alive() {
			continue
		}
		live++
		addr, err := masterAddrFrom(ctx, sn, s.MasterName)
		if err != nil {
			return err
		}
		if master == "" {
			master = addr
		} else if addr != master {
			return fmt.Errorf("sentinels disagree: master %s or %s", master, addr)
		}
		m := s.Node(addr)
		if m == nil || !m.Alive() {
			return fmt.Errorf("sentinel %s: master %s is not a live data node", sn.Addr, addr)
		}
		mi, err := sn.client().Do(ctx, "SENTINEL", "MASTER", s.MasterName).Result()
		if err != nil {
			return fmt.Errorf("sentinel %s: SENTINEL MASTER: %w", sn.Addr, err)
		}
		if flags := pairs(mi)["flags"]; flags != "master" {
			return fmt.Errorf("sentinel %s: master flags %q", sn.Addr, flags)
		}
		rs, err := sn.client().Do(ctx, "SENTINEL", "REPLICAS", s.MasterName).Slice()
		if err != nil {
			return fmt.Errorf("sentinel %s: SENTINEL REPLICAS: %w", sn.Addr, err)
		}
		ok := map[string]bool{}
		for _, r := range rs {
			p := pairs(r)
			if p["flags"] == "slave" && p["master-link-status"] == "ok" {
				ok[p["ip"]+":"+p["port"]] = true
			}
		}
		for _, n := range s.Data {
			if n != m && n.Alive() && !ok[n.Addr] {
				return fmt.Errorf("sentinel %s: does not know %s as a linked replica", sn.Addr, n.Addr)
			}
		}
		ss, err := sn.client().Do(ctx, "SENTINEL", "SENTINELS", s.MasterName).Slice()
		if err != nil {
			return fmt.Errorf("sentinel %s: SENTINEL SENTINELS: %w", sn.Addr, err)
		}
		known := map[string]bool{}
		for _, o := range ss {
			p := pairs(o)
			if !strings.Contains(p["flags"], "down") && !strings.Contains(p["flags"], "disconnected") {
				known[p["ip"]+":"+p["port"]] = true
			}
		}
		for _, o := range s.Sentinels {
			if o != sn && o.Alive() && !known[o.Addr] {
				return fmt.Errorf("sentinel %s: does not see sentinel %s", sn.Addr, o.Addr)
			}
		}
	}
	if live == 0 {
		return errors.New("no live sentinel")
	}
	if r := s.Node(master).Role(); r != "master" {
		return fmt.Errorf("master %s has role %q", master, r)
	}
	for _, n := range s.Data {
		if n.Addr != master && n.Alive() {
			if err := n.replicationLinked(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// pairs turns a flat RESP2 field/value array into a map.
func pairs(v any) map[string]string {
	out := map[string]string{}
	switch a := v.(type) {
	case []any:
		for i := 0; i+1 < len(a); i += 2 {
			k, _ := a[i].(string)
			out[k] = fmt.Sprint(a[i+1])
		}
	case map[any]any: // RESP3
		for k, v := range a {
			out[fmt.Sprint(k)] = fmt.Sprint(v)
		}
	}
	return out
}

// WaitHealthy waits (at most WaitLimit) until the live nodes are healthy:
// see check. Use it after RestartNode, or to wait until a failover is fully
// done (replicas reconfigured).
func (s *Sentinel) WaitHealthy(t testing.TB) {
	t.Helper()
	if err := waitFor(WaitLimit, s.check); err != nil {
		t.Fatalf("sentinel deployment not healthy: %v\n%s", err, s.logs())
	}
}

func (s *Sentinel) logs() string {
	return logTails(s.Sentinels, 15) + logTails(s.Data, 8)
}

// KillMaster kills the current master (as told by a sentinel) and returns
// its address.
func (s *Sentinel) KillMaster() string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addr, err := s.MasterAddr(ctx)
	if err != nil {
		s.t.Fatalf("KillMaster: %v", err)
	}
	n := s.Node(addr)
	if n == nil {
		s.t.Fatalf("KillMaster: master %s is not one of the data nodes", addr)
	}
	n.Kill()
	return addr
}

// WaitNewMaster waits at most limit until every live sentinel names the same
// master other than old, and that node is alive and says it is master; it
// returns its address. Other replicas may still be re-syncing to it: use
// WaitHealthy to wait for them too.
func (s *Sentinel) WaitNewMaster(t testing.TB, old string, limit time.Duration) string {
	t.Helper()
	var master string
	err := waitFor(limit, func(ctx context.Context) error {
		master = ""
		for _, sn := range s.Sentinels {
			if !sn.Alive() {
				continue
			}
			addr, err := masterAddrFrom(ctx, sn, s.MasterName)
			if err != nil {
				return err
			}
			if addr == old {
				return fmt.Errorf("sentinel %s still names %s", sn.Addr, old)
			}
			if master != "" && addr != master {
				return fmt.Errorf("sentinels disagree: %s or %s", master, addr)
			}
			master = addr
		}
		if master == "" {
			return errors.New("no live sentinel")
		}
		n := s.Node(master)
		if n == nil {
			return fmt.Errorf("new master %s is not one of the data nodes", master)
		}
		if r := n.Role(); r != "master" {
			return fmt.Errorf("new master %s has role %q", master, r)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("no new master instead of %s: %v\n%s", old, err, s.logs())
	}
	return master
}

// KillNode kills n (data node or sentinel) with SIGKILL.
func (s *Sentinel) KillNode(n *Node) { n.Kill() }

// RestartNode starts a killed n again on the same port, empty. A data node
// that is not the current master (as told by a sentinel) comes back as a
// replica of the current master; a sentinel comes back with its rewritten
// config. It waits until n answers, not until the sentinels noticed: use
// WaitHealthy for that. Call it from the test's goroutine.
func (s *Sentinel) RestartNode(n *Node) {
	s.t.Helper()
	n.Kill()
	isData := false
	for _, d := range s.Data {
		isData = isData || d == n
	}
	if isData {
		n.args = dataArgs(n)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		master, err := s.MasterAddr(ctx)
		cancel()
		if err == nil && master != n.Addr {
			host, port, _ := strings.Cut(master, ":")
			n.args = append(n.args, "--replicaof", host, port)
		}
	}
	if err := n.launch(); err != nil {
		s.t.Fatalf("restart %s: %v", n.Addr, err)
	}
}

// Close kills all processes, waits for them and removes their directory. It
// is idempotent and runs when the test ends. If the test failed, the tails
// of the logs are logged first.
func (s *Sentinel) Close() {
	s.closeOnce.Do(func() {
		if s.t.Failed() {
			s.t.Logf("sentinel deployment logs:\n%s", logTails(s.Sentinels, 30)+logTails(s.Data, 30))
		}
		closeNodes(append(append([]*Node(nil), s.Sentinels...), s.Data...))
		_ = os.RemoveAll(s.dir)
	})
}
