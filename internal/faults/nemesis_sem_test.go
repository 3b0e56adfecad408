//go:build faults

package faults

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
	"github.com/redlease/redlease/semaphore"
)

// The semaphore workload: semWorkers workers, in pairs sharing a client (so
// that local waiters queue), take 1 or 2 units of semName, whose limit is
// semLimit, and Extend, Refresh, hold, release or abandon them.
const (
	semName    = "sem"
	semLimit   = 3
	semWorkers = 4
)

// semKey is the semaphore's hash: one field per hold, the hold's token, with
// the value "<fence>:<gen>:<units>:<expiresAtMs>" (expiry on Redis's clock).
const semKey = lockPrefix + "{" + semName + "}:sem"

// semClients are the nemesisClients the semaphore workers' pairs use.
var semClients = []string{"rt50", "noretry"}

// acquireSem takes 1 or 2 units, waiting (Acquire) or not (TryAcquire).
func (w *worker) acquireSem(s step) {
	units := int64(1 + s.name%2)
	sem, err := semaphore.New(w.c, semName, semLimit, mutex.WithTTL(s.ttl), mutex.WithAutoRenew(s.auto))
	if err != nil {
		w.n.t.Errorf("semaphore.New: %v", err)
		return
	}
	var l *lease.Lease
	kind := "sem-acquire"
	if s.op >= 50 {
		kind = "sem-try"
		w.attempt, w.tried = fmt.Sprintf("%s %d ttl=%v auto=%v", kind, units, s.ttl, s.auto), time.Now()
		w.begin("%s", w.attempt)
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		l, err = sem.TryAcquire(ctx, units)
		cancel()
	} else {
		w.attempt, w.tried = fmt.Sprintf("%s %d ttl=%v auto=%v wait=%v", kind, units, s.ttl, s.auto, s.lockWait), time.Now()
		w.begin("%s", w.attempt)
		ctx, cancel := context.WithTimeout(context.Background(), s.lockWait)
		l, err = sem.Acquire(ctx, units)
		cancel()
	}
	w.n.ops.add(kind)
	if err != nil {
		if errors.Is(err, semaphore.ErrNoPermits) {
			w.n.ops.add(kind + "-full")
		} else {
			w.n.ops.add(kind + "-error")
		}
		return
	}
	w.n.ops.add(kind + "-ok")
	h := &holding{l: l, auto: s.auto, log: newOpLog(12, true), end: func() {}}
	h.log.addAt(w.tried, w.attempt)
	w.cur = h
	w.begin("%s ok: %d units, fence %d, token %q, valid for %v", kind, units, l.Fence(), l.Token(), time.Until(l.ValidUntil()).Round(time.Millisecond))
	w.n.reg.add(live{l: l, w: w, names: l.Names(), log: h.log, units: units})
}

// semHold is a field of semKey as the probe read it.
type semHold struct {
	fence, units int64
	live         bool // not expired on Redis's clock
}

func parseSemHold(v string, nowMs int64) (semHold, bool) {
	p := strings.Split(v, ":")
	if len(p) != 4 {
		return semHold{}, false
	}
	var x [4]int64
	for i, s := range p {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return semHold{}, false
		}
		x[i] = n
	}
	return semHold{fence: x[0], units: x[2], live: x[3] > nowMs}, true
}

// checkUnits is the semaphore's checker: until stop, it samples the live
// semaphore leases and probes semKey directly (see checkUnitsOnce).
func (n *nemesis) checkUnits(stop <-chan struct{}) {
	for pause(stop, 2*time.Millisecond) {
		var sems []live
		for _, lv := range n.reg.snapshot() {
			if lv.units > 0 {
				sems = append(sems, lv)
			}
		}
		if len(sems) > 0 {
			n.checkUnitsOnce(sems)
		}
	}
}

// checkUnitsOnce reads the beliefs of sems, reads Redis's clock and the hash
// in one transaction, and re-reads the beliefs, as checkBelief does. Every
// lease that believed itself valid, with beliefMargin to spare, on both sides
// of the probe must have its field, unexpired, with its fence and units
// (sem-belief); and their units must add up to at most semLimit (units).
func (n *nemesis) checkUnitsOnce(sems []live) {
	vu1 := make([]time.Time, len(sems))
	believing := false
	for i, lv := range sems {
		vu1[i] = lv.l.ValidUntil()
		if lv.l.Err() == nil && time.Now().Before(vu1[i].Add(-beliefMargin)) {
			believing = true
		}
	}
	if !believing {
		return
	}
	ctx, cancel := probeCtx()
	var tm *redis.TimeCmd
	var all *redis.MapStringStringCmd
	_, err := n.probe.TxPipelined(ctx, func(p redis.Pipeliner) error {
		tm = p.Time(ctx)
		all = p.HGetAll(ctx, semKey)
		return nil
	})
	cancel()
	at := time.Now()
	if err != nil {
		return
	}
	nowMs := tm.Val().UnixMilli()
	fields := all.Val()
	var sum int64
	var believers []string
	for i, lv := range sems {
		l := lv.l
		vu2 := l.ValidUntil()
		if l.Err() != nil || !at.Before(vu1[i].Add(-beliefMargin)) || !at.Before(vu2.Add(-beliefMargin)) {
			continue
		}
		n.semChecks.Add(1)
		sum += lv.units
		believers = append(believers, fmt.Sprintf("%s: %d units, fence %d, valid for %v more (story: %s)",
			lv.w.who, lv.units, l.Fence(), earlier(vu1[i], vu2).Sub(at).Round(time.Millisecond), lv.log))
		v, ok := fields[l.Token()]
		h, parsed := parseSemHold(v, nowMs)
		if ok && parsed && h.live && h.fence == l.Fence() && h.units == lv.units {
			continue
		}
		n.mu.Lock()
		first := !n.badBelief[l]
		n.badBelief[l] = true
		n.mu.Unlock()
		if first {
			n.violation(chkSemBelief, "%s's semaphore lease (%d units, fence %d) believes itself valid for %v more, but %s[%q] = %q (present %v, Redis time %d ms); the lease's story: %s",
				lv.w.who, lv.units, l.Fence(), earlier(vu1[i], vu2).Sub(at).Round(time.Millisecond), semKey, l.Token(), v, ok, nowMs, lv.log)
		}
	}
	if sum > semLimit {
		n.violation(chkUnits, "%d units believed held at once, limit %d: %s; %s = %v (Redis time %d ms)",
			sum, semLimit, strings.Join(believers, " | "), semKey, fields, nowMs)
	}
}

// checkHashLeftover: once everything is released, the hash key (the
// semaphore's or the rwmutex's) must be gone within limit (it expires with
// its latest field). It returns 1 if it is left, counted under leftover.
func (n *nemesis) checkHashLeftover(key string, limit time.Duration) int {
	deadline := time.Now().Add(limit)
	for {
		ctx, cancel := probeCtx()
		k, err := n.probe.Exists(ctx, key).Result()
		cancel()
		if err != nil {
			n.t.Errorf("reading %s: %v", key, err)
			return 0
		}
		if k == 0 {
			return 0
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	ctx, cancel := probeCtx()
	defer cancel()
	v, _ := n.probe.HGetAll(ctx, key).Result()
	pttl, _ := n.probe.PTTL(ctx, key).Result()
	n.violation(chkLeftover, "%s = %v (PTTL %v) still there %v after everything was released", key, v, pttl, limit)
	return 1
}

func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
