//go:build faults

package faults

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redlease/redlease/internal/faultproxy"
	"github.com/redlease/redlease/internal/history"
	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
)

// TestFaultBlackholeHolder: the holder's connection is blackholed mid-lease.
// Its Lost must close with ErrExpired before the key expires in Redis, and a
// second client acquires only after that.
func TestFaultBlackholeHolder(t *testing.T) {
	s := redistest.Start(t)
	direct := newClient(t, s.Addr, 2*time.Second)
	p, err := faultproxy.New(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	viaProxy := newClient(t, p.Addr(), 400*time.Millisecond)
	ctx := context.Background()
	rec := &history.Recorder{}
	const trials = 5
	var maxLate, minMargin time.Duration = 0, time.Hour
	for i := 0; i < trials; i++ {
		name := fmt.Sprintf("blackhole-%d", i)
		m1, _ := mutex.New(viaProxy, name, mutex.WithTTL(600*time.Millisecond), mutex.WithRenewInterval(100*time.Millisecond))
		l1, err := m1.Lock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		end1 := track(rec, "holder", l1)
		time.Sleep(250 * time.Millisecond) // a couple of renewals
		p.Blackhole(faultproxy.Both)

		type got struct {
			l  *lease.Lease
			at time.Time
		}
		second := make(chan got, 1)
		go func() {
			m2, _ := mutex.New(direct, name, mutex.WithTTL(time.Second))
			lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			l2, err := m2.Lock(lctx)
			if err != nil {
				t.Error(err)
				second <- got{}
				return
			}
			second <- got{l2, time.Now()}
		}()

		<-l1.Lost()
		lostAt := time.Now()
		// Where is the key in Redis at this moment?
		pttl, _ := direct.PTTL(ctx, "redlease:{"+name+"}").Result()
		measured := time.Now()
		if !errors.Is(l1.Err(), lease.ErrExpired) {
			t.Fatalf("trial %d: Err = %v, want ErrExpired", i, l1.Err())
		}
		if late := lostAt.Sub(l1.ValidUntil()); late > maxLate {
			maxLate = late
		}
		if pttl > 0 {
			if margin := measured.Add(pttl).Sub(lostAt); margin < minMargin {
				minMargin = margin
			}
		} else {
			g := <-second
			if g.l != nil && g.at.Before(lostAt) {
				t.Errorf("trial %d: second client acquired %v before Lost closed", i, lostAt.Sub(g.at))
			}
			minMargin = 0
			t.Errorf("trial %d: key already gone (PTTL %v) when Lost closed", i, pttl)
		}
		g := <-second
		if g.l == nil {
			t.FailNow()
		}
		end2 := track(rec, "second", g.l)
		if !g.at.After(lostAt) {
			t.Errorf("trial %d: second client acquired at %v, before the holder's Lost", i, lostAt.Sub(g.at))
		}
		end2()
		g.l.Release(ctx)
		p.Restore()
		end1()
		_ = l1.Release(ctx)
	}
	n := checkHistory(t, rec)
	result(t, "%d trials, %d intervals, %d overlaps, Lost at most %v after ValidUntil, key still in Redis for at least %v after Lost",
		trials, n, len(history.CheckOverlaps(rec.Intervals())), maxLate.Round(time.Microsecond), minMargin.Round(time.Millisecond))
}

// TestFaultLatencySpikes: the holder's link gets 50–500ms latency spikes
// while it renews; a competitor on a clean link keeps trying. Renewals that
// come back after the deadline end the lease; nobody holds past it.
func TestFaultLatencySpikes(t *testing.T) {
	s := redistest.Start(t)
	p, err := faultproxy.New(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	slow := newClient(t, p.Addr(), 3*time.Second)
	fast := newClient(t, s.Addr, 3*time.Second)
	ctx := context.Background()
	rec := &history.Recorder{}
	const name = "latency"
	dur := 6 * time.Second
	if testing.Short() {
		dur = 2 * time.Second
	}

	// A deterministic spike first: a held lease whose link turns slow (300ms
	// each way, so a renewal's round trip exceeds the 300ms TTL) must end with
	// ErrExpired at its deadline, its late renewal reply notwithstanding.
	slowM0, _ := mutex.New(slow, name+"-fixed", mutex.WithTTL(300*time.Millisecond), mutex.WithRenewInterval(80*time.Millisecond))
	l0, err := slowM0.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p.SetLatency(faultproxy.Both, 300*time.Millisecond)
	<-l0.Lost()
	fixedLate := time.Since(l0.ValidUntil())
	if !errors.Is(l0.Err(), lease.ErrExpired) {
		t.Fatalf("lease on a link slower than its TTL: Err = %v, want ErrExpired", l0.Err())
	}
	time.Sleep(400 * time.Millisecond) // the late renewal reply arrives; it must not revive the lease
	if !errors.Is(l0.Err(), lease.ErrExpired) {
		t.Fatalf("a late renewal reply changed Err to %v", l0.Err())
	}
	p.Restore()
	rctx, rcancel := context.WithTimeout(ctx, 3*time.Second)
	_ = l0.Release(rctx)
	rcancel()

	stop := time.Now().Add(dur)
	var wg sync.WaitGroup
	var spikes atomic.Int64
	wg.Add(1)
	go func() { // the fault driver
		defer wg.Done()
		r := rand.New(rand.NewSource(1))
		for time.Now().Before(stop) {
			if r.Intn(2) == 0 {
				p.SetLatency(faultproxy.Both, time.Duration(50+r.Intn(451))*time.Millisecond)
				spikes.Add(1)
			} else {
				p.SetLatency(faultproxy.Both, 0)
			}
			time.Sleep(time.Duration(50+r.Intn(150)) * time.Millisecond)
		}
		p.Restore()
	}()

	var lost, held, late atomic.Int64
	var maxLate atomic.Int64
	worker := func(who string, c interface{}, m *mutex.Mutex, hold time.Duration) {
		defer wg.Done()
		for time.Now().Before(stop) {
			lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			l, err := m.Lock(lctx)
			cancel()
			if err != nil {
				continue // slow link: the attempt may time out; that is not a violation
			}
			held.Add(1)
			end := track(rec, who, l)
			select {
			case <-l.Lost():
				lost.Add(1)
				if d := time.Since(l.ValidUntil()); d > time.Duration(maxLate.Load()) {
					maxLate.Store(int64(d))
				}
				if errors.Is(l.Err(), lease.ErrExpired) {
					late.Add(1)
				}
			case <-time.After(hold):
			}
			end()
			rctx, rcancel := context.WithTimeout(ctx, 3*time.Second)
			_ = l.Release(rctx)
			rcancel()
		}
	}
	slowM, _ := mutex.New(slow, name, mutex.WithTTL(300*time.Millisecond), mutex.WithRenewInterval(80*time.Millisecond))
	fastM, _ := mutex.New(fast, name, mutex.WithTTL(300*time.Millisecond), mutex.WithRenewInterval(80*time.Millisecond))
	wg.Add(2)
	go worker("slow", slow, slowM, 400*time.Millisecond)
	go worker("fast", fast, fastM, 20*time.Millisecond)
	wg.Wait()
	n := checkHistory(t, rec)
	result(t, "fixed 300ms spike on a held 300ms-TTL lease: Lost (ErrExpired) %v after ValidUntil, not revived by the late reply; then %v of random spikes: %d spikes, %d leases, %d lost (%d expired by deadline), %d intervals, %d overlaps, Lost at most %v after ValidUntil",
		fixedLate.Round(time.Microsecond), dur, spikes.Load(), held.Load(), lost.Load(), late.Load(), n, len(history.CheckOverlaps(rec.Intervals())), time.Duration(maxLate.Load()).Round(time.Microsecond))
}
