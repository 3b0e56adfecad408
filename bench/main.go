// Command bench measures redlease side by side with go-redsync, bsm/redislock
// and a raw go-redis floor against one redis-server it starts on a free
// loopback port, and prints one markdown table.
//
//	cd bench && go run .          # full run (a few minutes)
//	cd bench && go run . -quick   # short cells, one repetition
//
// Every contender is measured in the same run, interleaved per repetition
// (A B C … A B C …); each cell is the median of the repetitions, and ratios
// are to the floor. See BENCHMARKS.md at the repository root.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

type config struct {
	reps      int
	dur       time.Duration // per throughput cell
	contDur   time.Duration // per contention cell
	benchtime time.Duration // testing.Benchmark time per cost cell
	waiters   int
	settle    time.Duration
	limit     time.Duration // cap of the many-waiters phase per contender
	only      map[string]bool
	scenarios map[string]bool
	svg       string // file for the SVG chart; "" for none
	svgCont   string // file for the throughput and wait-distribution chart; "" for none
}

func main() {
	testing.Init() // testing.Benchmark reads -test.benchtime
	var (
		cfg       config
		quick     = flag.Bool("quick", false, "short cells and one repetition (about 1 minute)")
		only      = flag.String("only", "", "comma-separated contenders (default all): "+contenderIDs())
		scenarios = flag.String("scenarios", "1,2,3,4,5,6,7", "comma-separated scenarios to run (7: redlease's semaphore and rwmutex next to its mutex)")
		svg       = flag.String("svg", "", "also write the ratios of scenarios 1, 2 and 4 to this file as an SVG bar chart")
		svgCont   = flag.String("svg-contended", "", "also write throughput (scenarios 1, 2, 3) and scenario 3's wait distribution per contender to this file as an SVG chart")
	)
	flag.IntVar(&cfg.reps, "reps", 5, "repetitions per cell (interleaved)")
	flag.DurationVar(&cfg.dur, "dur", 600*time.Millisecond, "duration of each throughput cell (scenarios 1, 2; half of it for 6)")
	flag.DurationVar(&cfg.contDur, "contdur", time.Second, "duration of each contention cell (scenario 3)")
	flag.DurationVar(&cfg.benchtime, "benchtime", 500*time.Millisecond, "testing.Benchmark time of each cost cell (scenario 4)")
	flag.IntVar(&cfg.waiters, "waiters", 1000, "goroutines blocked on one key (scenario 5)")
	flag.DurationVar(&cfg.settle, "settle", time.Second, "time the waiters of scenario 5 wait before the holder releases")
	flag.DurationVar(&cfg.limit, "cap", 20*time.Second, "cap on scenario 5's waiting phase per contender")
	flag.Parse()
	if *quick {
		cfg.reps, cfg.dur, cfg.contDur, cfg.benchtime = 1, 300*time.Millisecond, 400*time.Millisecond, 200*time.Millisecond
		cfg.settle, cfg.limit = 300*time.Millisecond, 5*time.Second
	}
	if err := flag.Set("test.benchtime", cfg.benchtime.String()); err != nil {
		fatal(err)
	}
	cfg.only = set(*only)
	cfg.scenarios = set(*scenarios)

	srv, err := startServer()
	if err != nil {
		fatal(err)
	}
	defer srv.Kill()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		srv.Kill()
		os.Exit(130)
	}()

	cfg.svg = *svg
	cfg.svgCont = *svgCont
	if err := run(srv, cfg, *quick); err != nil {
		srv.Kill()
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

func set(list string) map[string]bool {
	if list == "" {
		return nil
	}
	m := map[string]bool{}
	for _, s := range strings.Split(list, ",") {
		m[strings.TrimSpace(s)] = true
	}
	return m
}

func contenderIDs() string {
	ids := make([]string, len(contenders))
	for i, c := range contenders {
		ids[i] = c.ID
	}
	return strings.Join(ids, ",")
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}

func run(srv *server, cfg config, quick bool) error {
	ctx := context.Background()
	e := &env{addr: srv.Addr, clients: map[string]*redis.Client{}, hooks: map[string]*counter{}}
	e.admin, _ = newClient(srv.Addr)
	defer e.admin.Close()
	var cs []contender
	for _, c := range contenders {
		if cfg.only == nil || cfg.only[c.ID] {
			cs = append(cs, c)
			e.clients[c.ID], e.hooks[c.ID] = newClient(srv.Addr)
		}
	}
	if _, ok := e.clients["redlease"]; !ok && cfg.scenarios["6"] {
		e.clients["redlease"], e.hooks["redlease"] = newClient(srv.Addr)
	}
	defer func() {
		for _, c := range e.clients {
			_ = c.Close()
		}
	}()
	rtt, err := measureRTT(e.admin, 2000)
	if err != nil {
		return err
	}
	started := time.Now()
	loadStart := loadAvg()
	res := newResults()
	waits := map[string]map[string][]time.Duration{} // scenario 3 row prefix → contender → waits of all reps
	sc := func(n string) bool { return cfg.scenarios == nil || cfg.scenarios[n] }

	// fail records an error in a cell instead of stopping the run.
	fail := func(key, id string, err error) {
		progress("  %s %s: %v", key, id, err)
		res.note(key, id, "error: "+strings.ReplaceAll(firstLine(err.Error()), "|", "/"))
	}
	warm := func(c contender) {
		l := e.locker(c)
		for i := range 50 {
			if u, err := l.TryLock(ctx, "warm:"+c.ID+":"+strconv.Itoa(i)); err == nil {
				_ = u(ctx)
			}
		}
	}
	for _, c := range cs {
		warm(c)
	}

	if sc("1") || sc("2") {
		r1 := res.define(row{key: "1rate", title: "1. uncontended, 1 goroutine: TryLock+Release pairs/s", format: fmtRate, ratio: true, target: ratioTarget(0.95, true)})
		r1p50 := res.define(row{key: "1p50", title: "1. uncontended, 1 goroutine: pair latency p50", format: fmtDur, ratio: true})
		r1p99 := res.define(row{key: "1p99", title: "1. uncontended, 1 goroutine: pair latency p99", format: fmtDur, ratio: true})
		r2 := res.define(row{key: "2rate", title: "2. uncontended, 32 goroutines, distinct keys: pairs/s", format: fmtRate, ratio: true, target: ratioTarget(1.3, true)})
		for rep := range cfg.reps {
			if sc("1") {
				for _, c := range cs {
					progress("scenario 1 rep %d: %s", rep+1, c.ID)
					runtime.GC()
					r, err := pairs(e.locker(c), fmt.Sprintf("s1:%s:%d:", c.ID, rep), 1, cfg.dur)
					if err != nil {
						fail(r1.key, c.ID, err)
						continue
					}
					res.add(r1.key, c.ID, r.Rate)
					res.add(r1p50.key, c.ID, float64(r.P50))
					res.add(r1p99.key, c.ID, float64(r.P99))
				}
			}
			if sc("2") {
				for _, c := range cs {
					progress("scenario 2 rep %d: %s", rep+1, c.ID)
					runtime.GC()
					r, err := pairs(e.locker(c), fmt.Sprintf("s2:%s:%d:", c.ID, rep), 32, cfg.dur)
					if err != nil {
						fail(r2.key, c.ID, err)
						continue
					}
					res.add(r2.key, c.ID, r.Rate)
				}
			}
		}
	}

	if sc("3") {
		const workers = 8
		for _, hold := range []time.Duration{0, time.Millisecond} {
			h := fmt.Sprintf("3. 8 goroutines, one key, hold %v: ", hold)
			k := "3:" + hold.String() + ":"
			rate := row{key: k + "rate", title: h + "acquisitions/s", format: fmtRate, ratio: true}
			wait99 := row{key: k + "w99", title: h + "waiter wait p99", format: fmtDur}
			fair := row{key: k + "fair", title: h + "fairness (min/max acquisitions per worker)", format: fmtF2}
			cmds := row{key: k + "cmds", title: h + "Redis commands / acquisition (Lua calls included)", format: fmtF1, ratio: true}
			if hold > 0 {
				ideal := 1 / (hold + rtt).Seconds()
				rate.target = absTarget(fmt.Sprintf("≥0.95×1/(hold+RTT)=%s", fmtRate(0.95*ideal)), 0.95*ideal, true, fmtRate)
				bound := 2 * workers * hold
				wait99.target = absTarget("≤"+fmtDur(float64(bound)), float64(bound), false, fmtDur)
				fair.target = absTarget("≥0.9", 0.9, true, fmtF2)
				cmds.target = absTarget("≤5", 5, false, fmtF1)
			}
			res.define(rate)
			res.define(row{key: k + "w50", title: h + "waiter wait p50", format: fmtDur})
			res.define(wait99)
			res.define(row{key: k + "wmax", title: h + "waiter wait max (unfinished waits included)", format: fmtDur, agg: aggMax})
			res.define(row{key: k + "h50", title: h + "handoff to another worker p50", format: fmtDur, ratio: true})
			res.define(row{key: k + "h99", title: h + "handoff to another worker p99", format: fmtDur, ratio: true})
			res.define(fair)
			res.define(cmds)
			res.define(row{key: k + "viol", title: h + "mutual-exclusion violations (all reps)", format: fmtInt, agg: aggSum, target: absTarget("0", 0, false, fmtInt)})
			res.define(row{key: k + "gu", title: h + "Lock gave up / failed and was called again (all reps)", format: fmtInt, agg: aggSum})
		}
		for rep := range cfg.reps {
			for _, hold := range []time.Duration{0, time.Millisecond} {
				k := "3:" + hold.String() + ":"
				for _, c := range cs {
					progress("scenario 3 rep %d hold %v: %s", rep+1, hold, c.ID)
					runtime.GC()
					r, err := contended(e, c, fmt.Sprintf("s3:%s:%v:%d", c.ID, hold, rep), workers, 1, hold, cfg.contDur)
					if err != nil {
						fail(k+"rate", c.ID, err)
						continue
					}
					res.add(k+"rate", c.ID, r.Rate)
					res.add(k+"w50", c.ID, float64(r.WaitP50))
					res.add(k+"w99", c.ID, float64(r.WaitP99))
					res.add(k+"wmax", c.ID, float64(r.WaitMax))
					res.add(k+"h50", c.ID, float64(r.HandoffP50))
					res.add(k+"h99", c.ID, float64(r.HandoffP99))
					res.add(k+"fair", c.ID, r.Fairness)
					res.add(k+"cmds", c.ID, r.CmdsPerAcq)
					res.add(k+"viol", c.ID, float64(r.Violations))
					res.add(k+"gu", c.ID, float64(r.GiveUps))
					if waits[k] == nil {
						waits[k] = map[string][]time.Duration{}
					}
					waits[k][c.ID] = append(waits[k][c.ID], r.Waits...)
				}
			}
		}
	}

	if sc("4") {
		res.define(row{key: "4allocs", title: "4. cost per TryLock+Release pair: allocs/op", format: fmtF1, ratio: true, target: ratioTarget(1.1, false)})
		res.define(row{key: "4bytes", title: "4. cost per pair: bytes/op", format: fmtInt, ratio: true})
		res.define(row{key: "4ns", title: "4. cost per pair: ns/op (testing.Benchmark)", format: fmtDur, ratio: true})
		res.define(row{key: "4rt", title: "4. cost per pair: round trips (go-redis hook)", format: fmtF2, target: absTarget("2", 2, false, fmtF2)})
		for rep := range cfg.reps {
			for _, c := range cs {
				progress("scenario 4 rep %d: %s", rep+1, c.ID)
				runtime.GC()
				r, err := cost(e, c, fmt.Sprintf("s4:%s:%d:", c.ID, rep))
				if err != nil {
					fail("4allocs", c.ID, err)
					continue
				}
				res.add("4allocs", c.ID, r.AllocsPerOp)
				res.add("4bytes", c.ID, r.BytesPerOp)
				res.add("4ns", c.ID, r.NsPerOp)
				if c.ID != "rueidislock" { // not a go-redis client: the hook sees nothing
					res.add("4rt", c.ID, r.RoundTrips)
				}
			}
		}
	}

	if sc("5") {
		n := cfg.waiters
		h := fmt.Sprintf("5. %d waiters on one key: ", n)
		res.define(row{key: "5time", title: h + "time until each acquired once", format: fmtDur, ratio: true})
		res.define(row{key: "5acq", title: h + "waiters that acquired", format: fmtInt,
			target: absTarget(fmt.Sprintf("%d", n), float64(n), true, fmtInt)})
		res.define(row{key: "5conns", title: h + "peak connections opened (CLIENT LIST − baseline)", format: fmtInt})
		res.define(row{key: "5extra", title: h + "of which beyond the client's pool", format: fmtInt, target: absTarget("≤2", 2, false, fmtInt)})
		res.define(row{key: "5dials", title: h + "connections dialed by the client in all (pool churn included)", format: fmtInt})
		res.define(row{key: "5mem", title: h + "memory per waiter (HeapInuse+StackInuse Δ / waiters)", format: fmtKiB, ratio: true})
		res.define(row{key: "5gu", title: h + "Lock gave up / failed and was called again", format: fmtInt})
		res.define(row{key: "5viol", title: h + "mutual-exclusion violations", format: fmtInt, target: absTarget("0", 0, false, fmtInt)})
		for _, c := range cs {
			progress("scenario 5: %s (cap %v)", c.ID, cfg.limit)
			runtime.GC()
			r, err := manyWaiters(e, c, "s5:"+c.ID, n, cfg.settle, cfg.limit)
			if err != nil {
				fail("5time", c.ID, err)
				continue
			}
			res.add("5time", c.ID, float64(r.Time))
			if !r.Finished {
				res.note("5time", c.ID, fmt.Sprintf("> %s (cap; %d/%d)", fmtDur(float64(r.Time)), r.Acquired, n))
			}
			res.add("5acq", c.ID, float64(r.Acquired))
			res.add("5conns", c.ID, float64(r.PeakConns))
			res.add("5extra", c.ID, float64(r.PeakConns-r.PeakPool))
			res.add("5dials", c.ID, float64(r.Dials))
			res.add("5mem", c.ID, r.PerWaiter)
			res.add("5gu", c.ID, float64(r.GiveUps))
			res.add("5viol", c.ID, float64(r.Violations))
		}
	}

	if sc("6") {
		sizes := []int{1, 4, 16}
		keysOf := func(k int) string {
			if k == 1 {
				return "1 key"
			}
			return fmt.Sprintf("%d keys", k)
		}
		for _, k := range sizes {
			res.define(row{key: fmt.Sprintf("6ml%d", k), title: "6. redlease multilock, " + keysOf(k) + ": acquire+release", format: fmtDur})
			res.define(row{key: fmt.Sprintf("6mlrt%d", k), title: "6. redlease multilock, " + keysOf(k) + ": round trips per acquire+release", format: fmtF2})
		}
		for _, k := range sizes {
			res.define(row{key: fmt.Sprintf("6lp%d", k), title: "6. redlease per-key mutex loop, " + keysOf(k) + ": acquire+release", format: fmtDur})
			res.define(row{key: fmt.Sprintf("6lprt%d", k), title: "6. redlease per-key mutex loop, " + keysOf(k) + ": round trips", format: fmtF2})
		}
		res.byKey["6ml16"].target = func(get func(string) (float64, bool)) string {
			v16, ok1 := res.value("6ml16", "redlease")
			v1, ok2 := res.value("6ml1", "redlease")
			if !ok1 || !ok2 {
				return "—"
			}
			return fmt.Sprintf("≤1.5× 1 key: %.2f× %s", v16/v1, verdict(v16/v1 <= 1.5))
		}
		res.byKey["6mlrt16"].target = absTarget("1 acquire + 1 release", 2, false, fmtF2)
		dur := cfg.dur / 2
		for rep := range cfg.reps {
			for _, k := range sizes {
				for _, loop := range []bool{false, true} {
					kind := "ml"
					if loop {
						kind = "lp"
					}
					progress("scenario 6 rep %d: %s %d keys", rep+1, kind, k)
					names := make([]string, k)
					for i := range names {
						names[i] = fmt.Sprintf("s6:%s:%d:%d:%d", kind, k, rep, i)
					}
					runtime.GC()
					r, err := multiKeys(e, names, loop, dur)
					key := fmt.Sprintf("6%s%d", kind, k)
					if err != nil {
						fail(key, "redlease", err)
						continue
					}
					res.add(key, "redlease", float64(r.PerOp))
					res.add(fmt.Sprintf("6%srt%d", kind, k), "redlease", r.RoundTrips)
				}
			}
		}
	}

	if sc("7") {
		runSemaphore(e, res, cfg, fail)
	}

	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.ID
	}
	w := os.Stdout
	fmt.Fprintf(w, "redis-server %s on %s (loopback, --save '' --appendonly no); PING RTT p50 %s; "+
		"%d CPUs (GOMAXPROCS %d), %s, %s\n", srv.Version, srv.Addr, fmtDur(float64(rtt)),
		runtime.NumCPU(), runtime.GOMAXPROCS(0), cpuModel(), runtime.Version())
	mode := "full"
	if quick {
		mode = "quick"
	}
	fmt.Fprintf(w, "mode %s: %d repetition(s) interleaved, median shown; %v per throughput cell, %v per contention cell, "+
		"benchtime %v, %d waiters capped at %v; ratios (×) are to the floor; TTL %v for all; go-redis PoolSize %d for all; total %s\n\n",
		mode, cfg.reps, cfg.dur, cfg.contDur, cfg.benchtime, cfg.waiters, cfg.limit, ttl, poolSize, time.Since(started).Round(time.Second))
	fmt.Fprintf(w, "load average (1 min) %s at start, %s at end\n\n", loadStart, loadAvg())
	res.write(w, ids)
	fmt.Fprintln(w)
	for _, c := range cs {
		fmt.Fprintf(w, "- %s: %s\n", c.ID, c.Label)
	}
	if cfg.svg != "" {
		title := fmt.Sprintf("redlease vs Go peers, ratios to the go-redis floor (%s mode, %d rep(s), load %s)", mode, cfg.reps, loadStart)
		if err := writeFile(cfg.svg, func(w io.Writer) error { return writeSVG(w, res, ids, title) }); err != nil {
			return err
		}
	}
	if cfg.svgCont != "" {
		title := fmt.Sprintf("redlease vs Go peers: throughput and waits under contention (%s mode, %d rep(s), load %s)", mode, cfg.reps, loadStart)
		if err := writeFile(cfg.svgCont, func(w io.Writer) error { return writeContendedSVG(w, res, waits, ids, title) }); err != nil {
			return err
		}
	}
	return nil
}

// writeFile creates name and fills it with write.
func writeFile(name string, write func(io.Writer) error) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 60 {
		s = s[:60] + "…"
	}
	return s
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

// loadAvg returns the 1-minute load average, to show how busy the machine was.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}
