package main

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestServerCost measures, per contender, what Redis spends on one
// uncontended TryLock+Release pair (INFO commandstats after CONFIG
// RESETSTAT): the acquisitions run first, then the releases, so each phase's
// server time is its own. Commands count every call, Lua-internal ones
// included; server µs sums the calls a client sent (EVALSHA, EVAL and, for
// the floor, its top-level SET), whose time includes their scripts' calls.
//
//	BENCH_DIAG=1 go test -run TestServerCost -v
func TestServerCost(t *testing.T) {
	e := diagEnv(t)
	ctx := context.Background()
	const n, rounds = 2000, 5
	type best struct{ acq, rel stats }
	results := map[string]*best{}
	var ids []string
	for r := range rounds {
		for _, c := range contenders {
			if c.ID == "redsync-1ms" || c.ID == "redislock-exp" {
				continue // same calls as redsync and redislock-lin
			}
			l := e.locker(c)
			if u, err := l.TryLock(ctx, "sc:warm:"+c.ID); err == nil {
				_ = u(ctx)
			}
			us := make([]Unlock, n)
			if err := e.admin.ConfigResetStat(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			for i := range us {
				u, err := l.TryLock(ctx, fmt.Sprintf("sc:%s:%d:%d", c.ID, r, i))
				if err != nil {
					t.Fatal(err)
				}
				us[i] = u
			}
			acq := serverStats(t, e.admin)
			if err := e.admin.ConfigResetStat(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			for _, u := range us {
				if err := u(ctx); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(200 * time.Millisecond) // rueidislock deletes its keys in the background
			rel := serverStats(t, e.admin)
			b := results[c.ID]
			if b == nil {
				b = &best{acq, rel}
				results[c.ID] = b
				ids = append(ids, c.ID)
			}
			if acq.topUsec < b.acq.topUsec {
				b.acq = acq
			}
			if rel.topUsec < b.rel.topUsec {
				b.rel = rel
			}
		}
	}
	t.Logf("server time per call: the least of %d rounds of %d pairs", rounds, n)
	for _, id := range ids {
		acq, rel := results[id].acq, results[id].rel
		t.Logf("%-14s acquire %5.2f µs %4.1f cmds [%s] · release %5.2f µs %4.1f cmds [%s] · pair %5.2f µs %4.1f cmds",
			id, acq.topUsec/n, float64(acq.calls)/n, acq.detail(n), rel.topUsec/n, float64(rel.calls)/n, rel.detail(n),
			(acq.topUsec+rel.topUsec)/n, float64(acq.calls+rel.calls)/n)
	}
}

type stats struct {
	calls   int64
	topUsec float64
	per     map[string]int64
}

func (s stats) detail(n int) string {
	var names []string
	for k := range s.per {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		fmt.Fprintf(&b, " %s %.1f", k, float64(s.per[k])/float64(n))
	}
	return strings.TrimSpace(b.String())
}

// serverStats reads INFO commandstats. Top-level calls are the scripts and
// SET (which only the floor sends outside a script; the others' SETs run in
// scripts, whose time already includes them).
func serverStats(t *testing.T, c *redis.Client) stats {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	s := stats{per: map[string]int64{}}
	var setUsec float64
	var scripts int64
	for _, line := range strings.Split(info, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_")
		if !ok {
			continue
		}
		name, fields, _ := strings.Cut(rest, ":")
		if name == "info" || name == "config|resetstat" || name == "config" {
			continue
		}
		var calls int64
		var usec float64
		for _, f := range strings.Split(fields, ",") {
			if v, ok := strings.CutPrefix(f, "calls="); ok {
				calls, _ = strconv.ParseInt(v, 10, 64)
			}
			if v, ok := strings.CutPrefix(f, "usec="); ok {
				usec, _ = strconv.ParseFloat(v, 64)
			}
		}
		s.calls += calls
		s.per[name] += calls
		switch name {
		case "evalsha", "eval", "evalsha_ro", "eval_ro", "fcall":
			s.topUsec += usec
			scripts += calls
		case "set":
			setUsec = usec
		}
	}
	if scripts == 0 || s.per["set"] > 0 && s.per["evalsha"]+s.per["eval"] == 0 {
		s.topUsec += setUsec // the floor's SET NX is its own request
	}
	return s
}

// TestCPUCost measures CPU time per uncontended TryLock+Release pair, one
// goroutine: the client process's (getrusage: user+sys, so syscalls count)
// and redis-server's (INFO cpu), median of 7 interleaved rounds of 2,000
// pairs. Unlike pairs/s, CPU time hardly moves when other processes load the
// machine.
//
//	BENCH_DIAG=1 go test -run TestCPUCost -v
func TestCPUCost(t *testing.T) {
	e := diagEnv(t)
	ctx := context.Background()
	const n, rounds = 2000, 7
	cli, srv := map[string][]float64{}, map[string][]float64{}
	var ids []string
	for r := range rounds {
		for _, c := range contenders {
			if c.ID == "redsync-1ms" || c.ID == "redislock-exp" {
				continue
			}
			if r == 0 {
				ids = append(ids, c.ID)
			}
			l := e.locker(c)
			s0, c0 := serverCPU(t, e.admin), selfCPU()
			for i := range n {
				u, err := l.TryLock(ctx, fmt.Sprintf("cpu:%s:%d:%d", c.ID, r, i))
				if err == nil {
					err = u(ctx)
				}
				if err != nil {
					t.Fatalf("%s: %v", c.ID, err)
				}
			}
			c1, s1 := selfCPU(), serverCPU(t, e.admin)
			cli[c.ID] = append(cli[c.ID], float64(c1-c0)/float64(time.Microsecond)/n)
			srv[c.ID] = append(srv[c.ID], (s1-s0)*1e6/n)
		}
	}
	for _, id := range ids {
		t.Logf("%-14s client CPU %6.1f µs/pair · redis-server CPU %5.1f µs/pair", id, median(cli[id]), median(srv[id]))
	}
}

// selfCPU is this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// serverCPU is redis-server's used_cpu_sys + used_cpu_user, in seconds.
func serverCPU(t *testing.T, c *redis.Client) float64 {
	t.Helper()
	info, err := c.Info(context.Background(), "cpu").Result()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, _ := strconv.ParseFloat(v, 64)
			sum += f
		}
	}
	return sum
}
