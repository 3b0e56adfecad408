package main

// Diagnostics behind the observations in BENCHMARKS.md. They are skipped
// unless BENCH_DIAG is set:
//
//	BENCH_DIAG=1 go test -run TestBreakdown -v         # where an uncontended pair's time goes
//	BENCH_DIAG=redlease go test -run TestTrend -v      # contention throughput over 20 s
//	BENCH_DIAG=floor BENCH_HOLD=1ms go test -run TestTrend -v

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/mutex"
)

func diagEnv(t *testing.T) *env {
	t.Helper()
	if os.Getenv("BENCH_DIAG") == "" {
		t.Skip("set BENCH_DIAG to run")
	}
	testSrvOnce.Do(func() { testSrv, testSrvErr = startServer() })
	if testSrvErr != nil {
		t.Skip(testSrvErr)
	}
	e := &env{addr: testSrv.Addr, clients: map[string]*redis.Client{}, hooks: map[string]*counter{}}
	e.admin, _ = newClient(testSrv.Addr)
	t.Cleanup(func() { _ = e.admin.Close() })
	for _, c := range contenders {
		e.clients[c.ID], e.hooks[c.ID] = newClient(testSrv.Addr)
		cl := e.clients[c.ID]
		t.Cleanup(func() { _ = cl.Close() })
	}
	return e
}

// luaLocker runs two given scripts the way redlease's acquire and release are
// called (lock key, fence key, wake channel), without the library around them.
type luaLocker struct {
	c        *redis.Client
	acq, rel *redis.Script
}

func (l luaLocker) TryLock(ctx context.Context, key string) (Unlock, error) {
	tok := newToken()
	k := "lua:{" + key + "}"
	if err := l.acq.Run(ctx, l.c, []string{k, k + ":fence"}, tok, ttl.Milliseconds()).Err(); err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		return l.rel.Run(ctx, l.c, []string{k}, tok, k+":wake").Err()
	}, nil
}

func (l luaLocker) Lock(ctx context.Context, key string) (Unlock, error) { return l.TryLock(ctx, key) }

// TestBreakdown adds redlease's ingredients one at a time to the floor, one
// goroutine, TryLock+Release pairs on fresh keys, 20 interleaved rounds:
//
//	floor      SET NX + EVALSHA get/del
//	lua-set    EVALSHA(SET NX PX) + EVALSHA get/del: a script instead of SET
//	lua        redlease's own acquire.lua and release.lua (fence INCR, SPUBLISH)
//	norenew    redlease with WithAutoRenew(false): the client-side bookkeeping
//	redlease   redlease defaults: plus the renewer of each lease
func TestBreakdown(t *testing.T) {
	e := diagEnv(t)
	c := e.clients["redlease"]
	acq, err1 := os.ReadFile("../internal/scripts/acquire.lua")
	rel, err2 := os.ReadFile("../internal/scripts/release.lua")
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	setNX := redis.NewScript(`return redis.call("set", KEYS[1], ARGV[1], "NX", "PX", ARGV[2])`)
	ls := []struct {
		name string
		l    Locker
	}{
		{"floor", floorLocker{c}},
		{"lua-set", luaLocker{c, setNX, floorRelease}},
		{"lua", luaLocker{c, redis.NewScript(string(acq)), redis.NewScript(string(rel))}},
		{"norenew", lockerFunc(func(ctx context.Context, key string) (Unlock, error) {
			m, err := mutex.New(c, key, mutex.WithAutoRenew(false))
			if err != nil {
				return nil, err
			}
			l, err := m.TryLock(ctx)
			if err != nil {
				return nil, err
			}
			return l.Release, nil
		})},
		{"redlease", redleaseLocker{c}},
	}
	ns := map[string][]float64{}
	for range 20 {
		for _, x := range ls {
			r, err := pairs(x.l, "bd:"+x.name+":"+time.Now().Format("150405.000")+":", 1, 250*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			ns[x.name] = append(ns[x.name], 1e9/r.Rate)
		}
	}
	prev := 0.0
	for _, x := range ls {
		m := median(ns[x.name])
		t.Logf("%-9s %7.0f ns/pair  (+%6.0f)", x.name, m, m-prev)
		prev = m
	}
}

// TestTrend runs 8 goroutines on one key for 10 consecutive 2 s cells on the
// same client and prints each cell: a library whose per-release cost grows
// with the number of past releases slows down from cell to cell.
func TestTrend(t *testing.T) {
	e := diagEnv(t)
	id := os.Getenv("BENCH_DIAG")
	hold, _ := time.ParseDuration(os.Getenv("BENCH_HOLD"))
	for _, c := range contenders {
		if c.ID != id {
			continue
		}
		for i := range 10 {
			r, err := contended(e, c, "trend", 8, 1, hold, 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%2d–%2d s: %6.0f acq/s, handoff p50 %v p99 %v, wait p99 %v, %.1f cmds/acq",
				2*i, 2*i+2, r.Rate, r.HandoffP50.Round(time.Microsecond), r.HandoffP99.Round(time.Microsecond),
				r.WaitP99.Round(time.Microsecond), r.CmdsPerAcq)
		}
		return
	}
	t.Skipf("BENCH_DIAG=%q is not a contender (%s)", id, contenderIDs())
}
