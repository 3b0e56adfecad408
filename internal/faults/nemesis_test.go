//go:build faults

package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/faultproxy"
	"github.com/redlease/redlease/internal/history"
	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
)

// The nemesis checkers, by the names violations are counted under.
const (
	chkBelief   = "belief"   // a lease believed valid while Redis did not hold its token
	chkOverlap  = "overlap"  // two believed-held intervals of one name overlapped
	chkFence    = "fence"    // a later holder of a name had a smaller fence
	chkLeak     = "leak"     // a key held by no live lease outlived every TTL
	chkLeftover = "leftover" // lock keys left after everything was released
	chkGuard    = "guard"    // Guard's acknowledged writes and the counters disagree
	// semaphore
	chkSemBelief = "sem-belief" // a semaphore lease believed valid while its field was not in Redis
	chkUnits     = "units"      // believed-held units exceeded the semaphore's limit
	// rwmutex
	chkRWBelief = "rw-belief" // an rwmutex lease believed valid while its field was not in Redis
	chkRWExcl   = "rw-excl"   // a believing writer together with another believing holder
)

var checkers = []string{chkBelief, chkOverlap, chkFence, chkLeak, chkLeftover, chkGuard, chkSemBelief, chkUnits, chkRWBelief, chkRWExcl}

// nemesisConfig reads NEMESIS_SECONDS (default 20, 8 with -short) and
// NEMESIS_SEED (default random). NEMESIS_FAULTS=off, read by the test, runs
// the same workload without injected faults.
func nemesisConfig(t *testing.T) (time.Duration, uint64) {
	dur := 20 * time.Second
	if testing.Short() {
		dur = 8 * time.Second
	}
	if v := os.Getenv("NEMESIS_SECONDS"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			t.Fatalf("NEMESIS_SECONDS=%q: want a positive number of seconds", v)
		}
		dur = time.Duration(f * float64(time.Second))
	}
	seed := rand.Uint64() >> 1 // positive as an int64, for make
	if v := os.Getenv("NEMESIS_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("NEMESIS_SEED=%q: want an unsigned integer", v)
		}
		seed = s
	}
	return dur, seed
}

// TestFaultNemesis runs random lock operations from many clients through a
// fault proxy while a fault schedule loses replies, blackholes, slows and
// resets connections and freezes Redis, and checks: (a) a lease that believes
// it is valid finds its token in Redis (probed directly); (b) believed-held
// intervals of a name never overlap and successive holders' fences grow;
// (c) no key outlives every TTL held by a token no live lease holds, and none
// is left at the end; (d) Guard's acknowledged increments match the counters;
// (e) no panic or goroutine leak (TestMain); (f) semaphore workers' leases
// that believe they are valid have their fields in Redis, and their units
// never add up to more than the limit; no semaphore key is left at the end;
// (g) rwmutex workers' leases that believe they are valid have their fields
// in Redis, a believing writer is never together with another believing
// holder, and no rwmutex key is left at the end. The seed replays the schedule of
// operations and faults (not the timing): `make nemesis SEED=… SECONDS=…`.
func TestFaultNemesis(t *testing.T) {
	dur, seed := nemesisConfig(t)
	t.Logf("nemesis seed %d, %v of operations (replay: make nemesis SEED=%d SECONDS=%g)", seed, dur, seed, dur.Seconds())
	srv := redistest.Start(t) // with --enable-debug-command yes
	p, err := faultproxy.New(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	probe := redis.NewClient(&redis.Options{Addr: srv.Addr, DialTimeout: time.Second, ReadTimeout: 3 * time.Second, PoolSize: 32})
	t.Cleanup(func() { _ = probe.Close() })
	n := &nemesis{t: t, seed: seed, p: p, probe: probe, rec: &history.Recorder{},
		reg: newRegistry(leakAfter), violations: map[string]int{}, logged: map[string]int{},
		badBelief: map[*lease.Lease]bool{}, badExcl: map[string]bool{}, guardAcked: map[string]int64{}, guardUnsure: map[string]int64{}}
	workers := n.workers(t, p.Addr())
	n.workerList = workers

	n.stalls = startStallMonitor(5 * time.Millisecond)
	var checkWG, faultWG, asyncWG, workWG sync.WaitGroup
	stopCheck, stopFaults, stopWork := make(chan struct{}), make(chan struct{}), make(chan struct{})
	checkWG.Add(3)
	go func() {
		defer checkWG.Done()
		n.checkBeliefs(stopCheck)
	}()
	go func() {
		defer checkWG.Done()
		n.checkUnits(stopCheck)
	}()
	go func() {
		defer checkWG.Done()
		n.checkRW(stopCheck)
	}()
	if os.Getenv("NEMESIS_FAULTS") != "off" {
		faultWG.Add(1)
		go func() {
			defer faultWG.Done()
			n.runFaults(stopFaults, rand.New(rand.NewPCG(seed, 0xfa17)), &asyncWG)
		}()
	} else {
		t.Logf("NEMESIS_FAULTS=off: no faults injected (the clients' short timeouts still cause retries)")
	}
	for _, w := range workers {
		workWG.Add(1)
		go func() {
			defer workWG.Done()
			w.run(stopWork)
		}()
	}
	time.Sleep(dur)

	// Faults stop first, then the workers release what they hold.
	close(stopFaults)
	faultWG.Wait()
	asyncWG.Wait()
	p.Restore()
	close(stopWork)
	workWG.Wait()
	// Abandoned leases end at their deadlines.
	deadline := time.Now().Add(maxKeyLife + 2*time.Second)
	for n.reg.size() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if k := n.reg.size(); k > 0 {
		t.Errorf("%d leases still live %v after the workers stopped", k, maxKeyLife+2*time.Second)
	}
	close(stopCheck)
	checkWG.Wait()
	n.stalls.Stop()

	left := n.checkLeftover(maxKeyLife + 2*time.Second)
	left += n.checkHashLeftover(semKey, maxKeyLife+2*time.Second)
	left += n.checkHashLeftover(rwKey, maxKeyLife+2*time.Second)
	n.checkGuard()
	ivs, stallExplained := n.checkHistory()

	var viol []string
	for _, c := range checkers {
		viol = append(viol, fmt.Sprintf("%s=%d", c, n.violations[c]))
	}
	orphans, leaked := n.reg.leaks()
	maxStall, nStalls := n.stalls.Max()
	result(t, "seed %d, %v, %d workers: %d ops {%s}; faults {%s}, %d replies lost; %d belief checks, %d semaphore checks, %d rwmutex checks, %d intervals (%d overlaps during process stalls: %d stalls ≥5ms, longest %v), %d orphan observations, %d leaked keys, %d keys left; violations: %s",
		seed, dur, len(workers), n.steps.Load(), &n.ops, &n.faults, p.LostReplies(), n.beliefChecks.Load(), n.semChecks.Load(), n.rwChecks.Load(), ivs, stallExplained,
		nStalls, maxStall.Round(time.Millisecond), orphans, leaked, left, strings.Join(viol, " "))
}

// nemesis is the shared state of one TestFaultNemesis run.
type nemesis struct {
	t      *testing.T
	seed   uint64
	p      *faultproxy.Proxy
	probe  *redis.Client // connected to Redis directly, never faulted
	rec    *history.Recorder
	reg    *registry
	stalls *stallMonitor
	ends   sync.Map // ivKey → endInfo
	ops    counts
	faults counts

	workerList []*worker // set before the workers start; read-only after

	steps        atomic.Int64 // worker steps: one operation each
	beliefChecks atomic.Int64
	semChecks    atomic.Int64 // leases checkUnits found believing
	rwChecks     atomic.Int64 // leases checkRW found believing

	mu          sync.Mutex
	violations  map[string]int // per checker
	logged      map[string]int // violations logged per checker
	badBelief   map[*lease.Lease]bool
	badExcl     map[string]bool  // rw-excl violations already counted, by their holders
	guardAcked  map[string]int64 // acknowledged Guard increments per name
	guardUnsure map[string]int64 // Guard calls that failed other than by refusal: applied or not
}

// violation counts a violation of checker c and logs the first few of each.
func (n *nemesis) violation(c, format string, args ...any) {
	n.mu.Lock()
	n.violations[c]++
	n.logged[c]++
	k := n.logged[c]
	n.mu.Unlock()
	switch {
	case k <= 10:
		n.t.Errorf("violation (%s): %s", c, fmt.Sprintf(format, args...))
	case k == 11:
		n.t.Errorf("violation (%s): more violations of this checker are counted, not logged", c)
	}
}

// nemesisClients are the go-redis configurations the workers use, all
// through the proxy; shared[i] gives how many workers share client i.
var nemesisClients = []struct {
	name   string
	opt    redis.Options
	shared int
}{
	{"rt50", redis.Options{ReadTimeout: 50 * time.Millisecond}, 2},
	{"rt100", redis.Options{ReadTimeout: 100 * time.Millisecond}, 2},
	{"rt200", redis.Options{ReadTimeout: 200 * time.Millisecond}, 1},
	{"noretry", redis.Options{ReadTimeout: 200 * time.Millisecond, MaxRetries: -1}, 2},
	{"ctxtimeout", redis.Options{ReadTimeout: 150 * time.Millisecond, ContextTimeoutEnabled: true}, 1},
	{"ctxtimeout-noretry", redis.Options{ContextTimeoutEnabled: true, MaxRetries: -1}, 1},
	{"defaults", redis.Options{}, 1},
	{"rt100-pool2-retry1", redis.Options{ReadTimeout: 100 * time.Millisecond, MaxRetries: 1, PoolSize: 2}, 2},
}

// leakAfter: an orphan key (held by a token no live lease holds) seen longer
// than this is a leak. A Lock call's own retries may recreate its key for up
// to the longest wait plus cleanup (1.5s), and a key lives maxKeyLife.
const leakAfter = maxKeyLife + 2*time.Second

// handoffGroup is the number of workers sharing one client and one Mutex
// on a name nobody else uses, so that releases hand the lock over in-process.
const handoffGroup = 3

// sharedTTL is the TTL of the handoff group's Mutex.
const sharedTTL = 500 * time.Millisecond

func (n *nemesis) workers(t *testing.T, addr string) []*worker {
	var out []*worker
	id := 0
	add := func(c *redis.Client, shared *mutex.Mutex, custom bool) {
		w := &worker{n: n, c: c, shared: shared, r: rand.New(rand.NewPCG(n.seed, uint64(id)+1)), recent: newOpLog(6, false)}
		w.who = fmt.Sprintf("w%02d", id)
		if custom {
			w.token = fmt.Sprintf("w%02d:custom:%d", id, n.seed) // contains ':' on purpose
		}
		out = append(out, w)
		id++
	}
	for _, cc := range nemesisClients {
		opt := cc.opt
		opt.Addr, opt.DialTimeout = addr, 500*time.Millisecond
		c := redis.NewClient(&opt)
		t.Cleanup(func() { _ = c.Close() })
		for range cc.shared {
			add(c, nil, id%3 == 1)
		}
	}
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 500 * time.Millisecond, ReadTimeout: 100 * time.Millisecond})
	t.Cleanup(func() { _ = c.Close() })
	m, err := mutex.New(c, "h0", mutex.WithTTL(sharedTTL))
	if err != nil {
		t.Fatal(err)
	}
	for range handoffGroup {
		add(c, m, false)
	}
	for i := range semWorkers {
		if i%2 == 0 {
			opt := clientOptions(semClients[i/2%len(semClients)])
			opt.Addr, opt.DialTimeout = addr, 500*time.Millisecond
			c = redis.NewClient(&opt)
			t.Cleanup(func() { _ = c.Close() })
		}
		add(c, nil, false)
		out[len(out)-1].sem = true
	}
	for i := range rwWorkers {
		if i%2 == 0 {
			opt := clientOptions(rwClients[i/2%len(rwClients)])
			opt.Addr, opt.DialTimeout = addr, 500*time.Millisecond
			c = redis.NewClient(&opt)
			t.Cleanup(func() { _ = c.Close() })
		}
		add(c, nil, false)
		out[len(out)-1].rw = true
	}
	return out
}

// clientOptions returns the options of the nemesisClients entry name.
func clientOptions(name string) redis.Options {
	for _, cc := range nemesisClients {
		if cc.name == name {
			return cc.opt
		}
	}
	panic("no nemesis client " + name)
}

// counts is a set of named counters, safe for concurrent use.
type counts struct {
	mu sync.Mutex
	m  map[string]int64
}

func (c *counts) add(k string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]int64{}
	}
	c.m[k]++
}

// String lists the counters sorted by name: "a=1 b=2".
func (c *counts) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([]string, 0, len(c.m))
	for k := range c.m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%d", k, c.m[k])
	}
	return b.String()
}

// pause waits d or until stop is closed; it reports false if stopped.
func pause(stop <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-stop:
		return false
	case <-t.C:
		return true
	}
}

func probeCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 3*time.Second)
}
