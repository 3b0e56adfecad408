//go:build faults

package faults

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/history"
	"github.com/redlease/redlease/lease"
)

// beliefMargin: a lease is checked only while it has at least this much
// validity left after the probe's reply, so the probe surely read Redis
// before the lease's own deadline.
const beliefMargin = 20 * time.Millisecond

// checkBeliefs is checker (a): until stop, it samples every live lease and
// probes Redis directly whenever the lease believes it is valid.
func (n *nemesis) checkBeliefs(stop <-chan struct{}) {
	for pause(stop, 2*time.Millisecond) {
		for _, lv := range n.reg.snapshot() {
			if lv.units > 0 || lv.rw != "" {
				continue // checkUnits and checkRW check semaphore and rwmutex leases
			}
			n.checkBelief(lv)
		}
	}
}

// checkBelief reads the lease's belief, probes its keys, and re-reads the
// belief: only if the lease believed itself valid, with beliefMargin to spare,
// on both sides of the probe must the keys hold its token.
func (n *nemesis) checkBelief(lv live) {
	l := lv.l
	vu1 := l.ValidUntil()
	if l.Err() != nil || !time.Now().Before(vu1.Add(-beliefMargin)) {
		return
	}
	keys := make([]string, len(lv.names))
	for i, name := range lv.names {
		keys[i] = lockKey(name)
	}
	ctx, cancel := probeCtx()
	vals, err := n.probe.MGet(ctx, keys...).Result()
	cancel()
	at := time.Now()
	vu2 := l.ValidUntil()
	if err != nil || l.Err() != nil || !at.Before(vu1.Add(-beliefMargin)) || !at.Before(vu2.Add(-beliefMargin)) {
		return
	}
	n.beliefChecks.Add(1)
	for i, v := range vals {
		s, _ := v.(string)
		if holdsToken(s, l.Token()) {
			continue
		}
		n.mu.Lock()
		first := !n.badBelief[l]
		n.badBelief[l] = true
		n.mu.Unlock()
		if vu2.Before(vu1) {
			vu1 = vu2
		}
		if first { // one violation per lease, however often it is sampled
			n.violation(chkBelief, "%s's lease on %v (fence %d) believes itself valid for %v more, but %s = %q, not its token %q; the lease's story: %s",
				lv.w.who, lv.names, l.FenceOf(lv.names[i]), vu1.Sub(at).Round(time.Millisecond), keys[i], s, l.Token(), lv.log)
		}
		return
	}
}

// noteLocked is the run-time half of checker (c): after an acquisition of
// names failed with ErrLocked, it reads their keys; a key held by a token no
// live lease holds is an orphan, and an orphan that outlives every TTL is a
// leaked key.
func (n *nemesis) noteLocked(names []string) {
	ctx, cancel := probeCtx()
	defer cancel()
	pipe := n.probe.Pipeline()
	gets := make([]*redis.StringCmd, len(names))
	pttls := make([]*redis.DurationCmd, len(names))
	for i, name := range names {
		gets[i] = pipe.Get(ctx, lockKey(name))
		pttls[i] = pipe.PTTL(ctx, lockKey(name))
	}
	_, _ = pipe.Exec(ctx)
	at := time.Now()
	for i, name := range names {
		v, err1 := gets[i].Result()
		pttl, err2 := pttls[i].Result()
		if err1 != nil || err2 != nil {
			continue
		}
		if why := n.reg.observe(name, v, pttl, at); why != "" {
			n.violation(chkLeak, "%s = %q (PTTL %v): %s%s", lockKey(name), v, pttl, why, n.ownerOps(tokenOf(v)))
		}
	}
}

// endInfo is what a lease said when its critical section ended.
type endInfo struct {
	validUntil time.Time
	err        error
	story      string // what the worker had done with the lease
}

func ivKey(iv history.Interval) string {
	return fmt.Sprintf("%s|%s|%d", iv.Client, iv.Name, iv.Start.UnixNano())
}

// track records l's critical section on each of its names, from now until
// the earlier of the returned end func (called just before Release) and the
// moment Lost closes, with the lease's deadline at that moment.
func (n *nemesis) track(w *worker, l *lease.Lease, log *opLog) (end func()) {
	var secs []*history.Section
	for _, name := range l.Names() {
		secs = append(secs, n.rec.Begin(w.who, name, l.FenceOf(name)))
	}
	var once sync.Once
	finish := func() {
		once.Do(func() {
			now, info := time.Now(), endInfo{l.ValidUntil(), l.Err(), log.String()}
			for _, s := range secs {
				s.EndAt(now)
				n.ends.Store(ivKey(s.Interval()), info)
			}
		})
	}
	ctx, cancel := l.Context(context.Background())
	stop := context.AfterFunc(ctx, finish)
	return func() {
		finish()
		stop()
		cancel()
	}
}

func (n *nemesis) endOf(iv history.Interval) (endInfo, bool) {
	v, ok := n.ends.Load(ivKey(iv))
	if !ok {
		return endInfo{}, false
	}
	return v.(endInfo), true
}

// checkHistory is checker (b). An overlap in which the later holder started
// before the earlier one's own deadline is a violation outright: the lease
// promised the key until then. One in which the earlier holder noticed its
// deadline late is the paused-process case when a process stall explains it
// (reported, not counted), and a violation otherwise. Fences must grow from
// holder to holder in start order, with the same allowance for stalls.
func (n *nemesis) checkHistory() (intervals, stallExplained int) {
	ivs := n.rec.Intervals()
	for _, v := range history.CheckOverlaps(ivs) {
		a, b := v.A, v.B
		info, ok := n.endOf(a)
		switch {
		case ok && b.Start.Before(info.validUntil):
			n.violation(chkOverlap, "%s — %q started %v before %q's deadline (%q's lease ended with %v; its story: %s)",
				v, b.Client, info.validUntil.Sub(b.Start).Round(time.Microsecond), a.Client, a.Client, info.err, info.story)
		case n.stalls.explains(v):
			stallExplained++
			n.t.Logf("overlap during a process stall (the paused-holder case): %s", v)
		default:
			late := "never ended"
			if ok {
				late = fmt.Sprintf("%v after its deadline (%v; its story: %s)", a.End.Sub(info.validUntil).Round(time.Microsecond), info.err, info.story)
			}
			n.violation(chkOverlap, "%s — %q's section ended %s, no process stall seen", v, a.Client, late)
		}
	}

	byName := map[string][]history.Interval{}
	for _, iv := range ivs {
		byName[iv.Name] = append(byName[iv.Name], iv)
	}
	var writes []history.Write
	var src []history.Interval
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		list := byName[name]
		slices.SortStableFunc(list, func(x, y history.Interval) int { return x.Start.Compare(y.Start) })
		for _, iv := range list {
			writes = append(writes, history.Write{Name: name, Fence: iv.Fence, Accepted: true})
			src = append(src, iv)
		}
	}
	for _, v := range history.CheckFences(writes) {
		prior, later := src[v.PriorIndex], src[v.WriteIndex]
		ov := history.Violation{Kind: history.Overlap, Name: v.Name, A: prior, B: later}
		if len(history.CheckOverlaps([]history.Interval{prior, later})) > 0 && n.stalls.explains(ov) {
			continue
		}
		n.violation(chkFence, "lock %q: %q got fence %d at %s, after %q got fence %d at %s",
			v.Name, later.Client, later.Fence, later.Start.Format(stamp), prior.Client, prior.Fence, prior.Start.Format(stamp))
	}
	return len(ivs), stallExplained
}

const stamp = "15:04:05.000000"

// checkLeftover is the end-of-run half of checker (c): once everything is
// released, every lock key must be gone within limit (keys of failed or
// uncertain attempts expire with their TTL). It returns the keys left.
func (n *nemesis) checkLeftover(limit time.Duration) int {
	deadline := time.Now().Add(limit)
	var left []string
	for {
		ctx, cancel := probeCtx()
		keys, err := lockKeys(ctx, n.probe)
		cancel()
		if err != nil {
			n.t.Errorf("listing lock keys: %v", err)
			return 0
		}
		left = keys
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, k := range left {
		ctx, cancel := probeCtx()
		v, _ := n.probe.Get(ctx, k).Result()
		pttl, _ := n.probe.PTTL(ctx, k).Result()
		cancel()
		n.violation(chkLeftover, "%s = %q (PTTL %v) still there %v after everything was released", k, v, pttl, limit)
	}
	return len(left)
}

// guardDone records a Guard call's outcome for names: acknowledged, refused
// (wraps ErrNotHeld: nothing written), or unsure (a network or timeout error:
// the transaction may have been applied).
func (n *nemesis) guardDone(names []string, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, name := range names {
		switch {
		case err == nil:
			n.guardAcked[name]++
		case errors.Is(err, lease.ErrNotHeld):
		default:
			n.guardUnsure[name]++
		}
	}
}

// checkGuard is checker (d): each name's counter must count every
// acknowledged Guard increment, and nothing beyond those and the unsure ones.
func (n *nemesis) checkGuard() {
	n.mu.Lock()
	acked, unsure := maps.Clone(n.guardAcked), maps.Clone(n.guardUnsure)
	n.mu.Unlock()
	for _, name := range append(slices.Clone(nemesisNames), "h0", rwName) {
		ctx, cancel := probeCtx()
		got, err := n.probe.Get(ctx, guardKey(name)).Int64()
		cancel()
		if err != nil && !errors.Is(err, redis.Nil) {
			n.t.Errorf("reading %s: %v", guardKey(name), err)
			continue
		}
		a, u := acked[name], unsure[name]
		switch {
		case got < a:
			n.violation(chkGuard, "%s = %d, but %d Guard increments were acknowledged", guardKey(name), got, a)
		case got > a+u:
			n.violation(chkGuard, "%s = %d: more than the %d acknowledged plus %d unsure Guard increments", guardKey(name), got, a, u)
		}
		n.t.Logf("guard %s: counter %d, acknowledged %d, unsure %d", name, got, a, u)
	}
}

// ownerOps names the worker whose custom token is token, with its last
// operations, or returns "".
func (n *nemesis) ownerOps(token string) string {
	for _, w := range n.workerList {
		if w.token != "" && w.token == token {
			return fmt.Sprintf("; %s's last operations: %s", w.who, w.recent)
		}
	}
	return ""
}
