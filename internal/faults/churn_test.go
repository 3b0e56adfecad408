//go:build faults

package faults

import (
	"context"
	"fmt"
	"math/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/faultproxy"
	"github.com/redlease/redlease/internal/history"
	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/multilock"
	"github.com/redlease/redlease/mutex"
)

var (
	lateMu       sync.Mutex
	churnMaxLate time.Duration

	fencedOK, staleWrites atomic.Int64
)

// fencedWrite applies one write to name's fenced register with l's fence.
func fencedWrite(ctx context.Context, c *redis.Client, name string, l *lease.Lease) {
	n, err := fencedIncr.Run(ctx, c, []string{"{" + name + "}:register"}, l.Fence()).Int()
	switch {
	case err != nil:
	case n == 1:
		fencedOK.Add(1)
	default:
		staleWrites.Add(1)
	}
}

func lctxOf(l *lease.Lease) context.Context {
	ctx, _ := l.Context(context.Background())
	return ctx
}

func startServer(t *testing.T) string { return redistest.Start(t).Addr }

// TestFaultChurn: 50 clients on separate connections do random
// TryLock/Lock/Release/abandon on 5 names. Zero overlaps, every Lock
// acquires, no goroutine leaks (TestMain) and no lock keys left at the end.
func TestFaultChurn(t *testing.T) {
	addr := startServer(t)
	ctx := context.Background()
	rec := &history.Recorder{}
	dur := 30 * time.Second
	if testing.Short() {
		dur = 5 * time.Second
	}
	stalls := startStallMonitor(5 * time.Millisecond)
	stop := time.Now().Add(dur)
	var ops, tries, tryOK, locks, abandons, lockFails atomic.Int64
	var wg sync.WaitGroup
	var abandonedMu sync.Mutex
	var abandoned []*lease.Lease
	for w := 0; w < 50; w++ {
		c := newClient(t, addr, 2*time.Second)
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := rand.New(rand.NewSource(int64(w)))
			who := fmt.Sprintf("client-%d", w)
			for time.Now().Before(stop) {
				ops.Add(1)
				name := fmt.Sprintf("churn-%d", r.Intn(5))
				var l *lease.Lease
				var err error
				op := r.Intn(10)
				switch {
				case op < 3:
					tries.Add(1)
					m, _ := mutex.New(c, name, mutex.WithTTL(time.Second))
					if l, err = m.TryLock(ctx); err != nil {
						continue
					}
					tryOK.Add(1)
				case op < 9:
					locks.Add(1)
					m, _ := mutex.New(c, name, mutex.WithTTL(time.Second))
					lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
					l, err = m.Lock(lctx)
					cancel()
					if err != nil {
						lockFails.Add(1)
						t.Errorf("%s: Lock: %v", who, err)
						continue
					}
				default: // abandon: never released, expires after its TTL
					abandons.Add(1)
					m, _ := mutex.New(c, name, mutex.WithTTL(150*time.Millisecond), mutex.WithAutoRenew(false))
					lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
					l, err = m.Lock(lctx)
					cancel()
					if err != nil {
						lockFails.Add(1)
						t.Errorf("%s: Lock: %v", who, err)
						continue
					}
					track(rec, who, l) // ends when Lost closes
					fencedWrite(ctx, c, name, l)
					vu := l.ValidUntil()
					context.AfterFunc(lctxOf(l), func() {
						d := time.Since(vu)
						lateMu.Lock()
						if d > churnMaxLate {
							churnMaxLate = d
						}
						lateMu.Unlock()
					})
					abandonedMu.Lock()
					abandoned = append(abandoned, l)
					abandonedMu.Unlock()
					continue
				}
				end := track(rec, who, l)
				fencedWrite(ctx, c, name, l)
				time.Sleep(time.Duration(r.Intn(3000)) * time.Microsecond)
				end()
				if err := l.Release(ctx); err != nil {
					t.Errorf("%s: Release: %v", who, err)
				}
			}
		}(w)
	}
	wg.Wait()
	for _, l := range abandoned {
		<-l.Lost()
	}
	stalls.Stop()
	lateMu.Lock()
	maxLate := churnMaxLate
	lateMu.Unlock()
	admin := newClient(t, addr, 2*time.Second)
	var left []string
	waitFor(t, "abandoned keys to expire", 5*time.Second, func() bool {
		left = lockKeysLeft(ctx, admin)
		return len(left) == 0
	})
	ivs := rec.Intervals()
	var unexplained, paused int
	for _, v := range history.CheckOverlaps(ivs) {
		if stalls.explains(v) {
			paused++
			t.Logf("overlap during a process stall (the paused-holder case): %s", v)
			continue
		}
		unexplained++
		t.Errorf("violation: %s", v)
	}
	maxStall, nStalls := stalls.Max()
	// Every section wrote through the fenced register; the register's
	// counter must equal the accepted writes, and no stale write got in.
	var accepted, rejected int64
	for i := 0; i < 5; i++ {
		v, _ := admin.HGet(ctx, fmt.Sprintf("{churn-%d}:register", i), "value").Int64()
		accepted += v
	}
	rejected = staleWrites.Load()
	if accepted != fencedOK.Load() {
		t.Errorf("fenced register holds %d writes, %d were acknowledged", accepted, fencedOK.Load())
	}
	result(t, "%v, 50 clients, 5 names: %d ops (%d TryLock, %d ok; %d Lock, %d failed; %d abandoned), %d intervals, %d overlaps (%d during process stalls ≥5ms: %d stalls, longest %v), Lost at most %v after ValidUntil (abandoned leases), fenced writes %d accepted / %d stale rejected, %d lock keys left",
		dur, ops.Load(), tries.Load(), tryOK.Load(), locks.Load(), lockFails.Load(), abandons.Load(), len(ivs), unexplained, paused, nStalls, maxStall.Round(time.Millisecond), maxLate.Round(time.Microsecond), accepted, rejected, len(left))
}

// TestFaultMultilockConnectionLoss: connections are reset at random moments
// while a 4-name MultiLock is being acquired. Afterwards the names are held
// all or none: never a partial set.
func TestFaultMultilockConnectionLoss(t *testing.T) {
	addr := startServer(t)
	p, err := faultproxy.New(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	viaProxy := newClient(t, p.Addr(), time.Second)
	admin := newClient(t, addr, 2*time.Second)
	ctx := context.Background()
	r := rand.New(rand.NewSource(7))
	const trials = 150
	var ok, failed, partial, leftover int
	for i := 0; i < trials; i++ {
		names := []string{fmt.Sprintf("ml-%d-a", i), fmt.Sprintf("ml-%d-b", i), fmt.Sprintf("ml-%d-c", i), fmt.Sprintf("ml-%d-d", i)}
		ml, _ := multilock.New(viaProxy, names, mutex.WithTTL(10*time.Second))
		p.SetLatency(faultproxy.Both, time.Duration(r.Intn(3))*time.Millisecond)
		done := make(chan *lease.Lease, 1)
		go func() {
			l, err := ml.TryLock(ctx)
			if err != nil {
				done <- nil
				return
			}
			done <- l
		}()
		time.Sleep(time.Duration(r.Intn(3000)) * time.Microsecond)
		p.ResetAll()
		p.Restore()
		l := <-done
		held := func() int {
			n := 0
			for _, name := range names {
				if x, _ := admin.Exists(ctx, "redlease:{"+name+"}").Result(); x == 1 {
					n++
				}
			}
			return n
		}
		h := held()
		if h != 0 && h != len(names) {
			partial++
		}
		if l != nil {
			ok++
			_ = l.Release(ctx)
			continue
		}
		failed++
		// A failed attempt releases what it may have taken (bounded cleanup).
		deadline := time.Now().Add(2 * time.Second)
		for held() != 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if held() != 0 {
			leftover++
		}
	}
	if partial != 0 || leftover != 0 {
		t.Fatalf("%d partial holds, %d failed attempts left keys held", partial, leftover)
	}
	result(t, "%d trials with connection resets: %d acquired, %d failed, %d partial holds, %d failed attempts leaving keys", trials, ok, failed, partial, leftover)
}
