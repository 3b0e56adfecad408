//go:build faults

package faults

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
	"github.com/redlease/redlease/rwmutex"
)

// The read-write lock workload: rwWorkers workers, in pairs sharing a client
// (so that local waiters queue), take read or write holds of rwName with
// RLock, TryRLock, Lock or TryLock, and Guard (writers), Extend, Refresh,
// hold, release or abandon them.
const (
	rwName    = "rw"
	rwWorkers = 4
)

// rwKey is the lock's hash: fields "r:<token>" (readers) and "w:<token>"
// (the writer), each "<fence>:<gen>:<expiresAtMs>" (expiry on Redis's
// clock), and "want", a waiting writer's claim.
const rwKey = lockPrefix + "{" + rwName + "}:rw"

// rwClients are the nemesisClients the rwmutex workers' pairs use.
var rwClients = []string{"rt100", "ctxtimeout"}

// acquireRW takes a read hold (RLock, TryRLock) or the write hold (Lock,
// TryLock).
func (w *worker) acquireRW(s step) {
	m, err := rwmutex.New(w.c, rwName, mutex.WithTTL(s.ttl), mutex.WithAutoRenew(s.auto))
	if err != nil {
		w.n.t.Errorf("rwmutex.New: %v", err)
		return
	}
	var kind, mode string
	var fn func(context.Context) (*lease.Lease, error)
	wait := s.lockWait
	switch {
	case s.op < 25:
		kind, mode, fn = "rw-rlock", "r", m.RLock
	case s.op < 50:
		kind, mode, fn, wait = "rw-tryrlock", "r", m.TryRLock, s.opWait
	case s.op < 75:
		kind, mode, fn = "rw-lock", "w", m.Lock
	default:
		kind, mode, fn, wait = "rw-trylock", "w", m.TryLock, s.opWait
	}
	w.attempt, w.tried = fmt.Sprintf("%s ttl=%v auto=%v ctx=%v", kind, s.ttl, s.auto, wait), time.Now()
	w.begin("%s", w.attempt)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	l, err := fn(ctx)
	cancel()
	w.n.ops.add(kind)
	if err != nil {
		if errors.Is(err, rwmutex.ErrLocked) {
			w.n.ops.add(kind + "-locked")
		} else {
			w.n.ops.add(kind + "-error")
		}
		return
	}
	w.n.ops.add(kind + "-ok")
	h := &holding{l: l, auto: s.auto, rw: mode, log: newOpLog(12, true), end: func() {}}
	h.log.addAt(w.tried, w.attempt)
	w.cur = h
	w.begin("%s ok: fence %d, token %q, valid for %v", kind, l.Fence(), l.Token(), time.Until(l.ValidUntil()).Round(time.Millisecond))
	w.n.reg.add(live{l: l, w: w, names: l.Names(), log: h.log, rw: mode})
}

// rwHold is a field of rwKey as the probe read it.
type rwHold struct {
	fence int64
	live  bool // not expired on Redis's clock
}

func parseRWHold(v string, nowMs int64) (rwHold, bool) {
	p := strings.Split(v, ":")
	if len(p) != 3 {
		return rwHold{}, false
	}
	var x [3]int64
	for i, s := range p {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return rwHold{}, false
		}
		x[i] = n
	}
	return rwHold{fence: x[0], live: x[2] > nowMs}, true
}

// checkRW is the read-write lock's checker: until stop, it samples the live
// rwmutex leases and probes rwKey directly (see checkRWOnce).
func (n *nemesis) checkRW(stop <-chan struct{}) {
	for pause(stop, 2*time.Millisecond) {
		var rws []live
		for _, lv := range n.reg.snapshot() {
			if lv.rw != "" {
				rws = append(rws, lv)
			}
		}
		if len(rws) > 0 {
			n.checkRWOnce(rws)
		}
	}
}

// checkRWOnce reads the beliefs of rws, reads Redis's clock and the hash in
// one transaction, and re-reads the beliefs, as checkUnitsOnce does. Every
// lease that believed itself valid, with beliefMargin to spare, on both sides
// of the probe must have its field, unexpired, with its fence (rw-belief);
// and a believing writer must be the only believing holder (rw-excl).
func (n *nemesis) checkRWOnce(rws []live) {
	vu1 := make([]time.Time, len(rws))
	believing := false
	for i, lv := range rws {
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
		all = p.HGetAll(ctx, rwKey)
		return nil
	})
	cancel()
	at := time.Now()
	if err != nil {
		return
	}
	nowMs := tm.Val().UnixMilli()
	fields := all.Val()
	writers := 0
	var believers []string
	var tokens []string
	for i, lv := range rws {
		l := lv.l
		vu2 := l.ValidUntil()
		if l.Err() != nil || !at.Before(vu1[i].Add(-beliefMargin)) || !at.Before(vu2.Add(-beliefMargin)) {
			continue
		}
		n.rwChecks.Add(1)
		if lv.rw == "w" {
			writers++
		}
		tokens = append(tokens, lv.rw+":"+l.Token())
		believers = append(believers, fmt.Sprintf("%s: %s hold, fence %d, valid for %v more (story: %s)",
			lv.w.who, lv.rw, l.Fence(), earlier(vu1[i], vu2).Sub(at).Round(time.Millisecond), lv.log))
		field := lv.rw + ":" + l.Token()
		v, ok := fields[field]
		h, parsed := parseRWHold(v, nowMs)
		if ok && parsed && h.live && h.fence == l.Fence() {
			continue
		}
		n.mu.Lock()
		first := !n.badBelief[l]
		n.badBelief[l] = true
		n.mu.Unlock()
		if first {
			n.violation(chkRWBelief, "%s's rwmutex lease (%s hold, fence %d) believes itself valid for %v more, but %s[%q] = %q (present %v, Redis time %d ms); the lease's story: %s",
				lv.w.who, lv.rw, l.Fence(), earlier(vu1[i], vu2).Sub(at).Round(time.Millisecond), rwKey, field, v, ok, nowMs, lv.log)
		}
	}
	if writers > 0 && len(believers) > 1 {
		slices.Sort(tokens)
		k := strings.Join(tokens, ",")
		n.mu.Lock()
		first := !n.badExcl[k]
		n.badExcl[k] = true
		n.mu.Unlock()
		if first { // one violation per set of holders, however often it is sampled
			n.violation(chkRWExcl, "%d holders believe themselves valid at once, %d of them writers: %s; %s = %v (Redis time %d ms)",
				len(believers), writers, strings.Join(believers, " | "), rwKey, fields, nowMs)
		}
	}
}
