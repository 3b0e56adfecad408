//go:build faults

package faults

import (
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/redlease/redlease/internal/faultproxy"
)

// busyScript keeps Redis busy in a loop for ARGV[1] milliseconds: every
// other client waits (below busy-reply-threshold, so none gets BUSY).
const busyScript = `local t = redis.call('time')
local start = t[1] * 1000000 + t[2]
local limit = tonumber(ARGV[1]) * 1000
repeat
  local now = redis.call('time')
until now[1] * 1000000 + now[2] - start >= limit
return 1`

// faultKinds are the faults the schedule picks from, uniformly.
var faultKinds = []string{
	"lose-script-replies", "lose-any-replies", "lose-exec-replies", "lose-script-rate",
	"blackhole", "latency", "reset", "debug-sleep", "slow-script",
}

var directions = []faultproxy.Direction{faultproxy.Upstream, faultproxy.Downstream, faultproxy.Both}

// runFaults applies random faults until stop, one at a time with quiet gaps,
// except DEBUG SLEEP and the slow script, which the probe sends directly to
// Redis on goroutines of their own (counted in async) and which may overlap
// the next faults. Every step draws all its choices from r first, so that a
// seed replays the same schedule.
func (n *nemesis) runFaults(stop <-chan struct{}, r *rand.Rand, async *sync.WaitGroup) {
	for {
		kind := faultKinds[r.IntN(len(faultKinds))]
		gap := time.Duration(r.IntN(400)) * time.Millisecond
		hold := time.Duration(100+r.IntN(600)) * time.Millisecond
		count := 1 + r.IntN(3)
		prob := 0.05 + 0.25*r.Float64()
		dir := directions[r.IntN(len(directions))]
		latency := time.Duration(20+r.IntN(380)) * time.Millisecond
		sleep := 0.2 + 0.4*r.Float64()
		if !pause(stop, gap) {
			return
		}
		n.faults.add(kind)
		switch kind {
		case "lose-script-replies":
			n.p.LoseReplies(faultproxy.ScriptReplies, count)
			pause(stop, hold)
			n.p.LoseReplies(faultproxy.ScriptReplies, 0)
		case "lose-any-replies":
			n.p.LoseReplies(faultproxy.AnyReplies, count)
			pause(stop, hold)
			n.p.LoseReplies(faultproxy.AnyReplies, 0)
		case "lose-exec-replies":
			n.p.LoseReplies(faultproxy.ExecReplies, count)
			pause(stop, hold)
			n.p.LoseReplies(faultproxy.ExecReplies, 0)
		case "lose-script-rate":
			n.p.LoseRepliesRate(faultproxy.ScriptReplies, prob)
			pause(stop, hold)
			n.p.LoseRepliesRate(faultproxy.ScriptReplies, 0)
		case "blackhole":
			n.p.Blackhole(dir)
			pause(stop, hold)
			n.p.Restore()
		case "latency":
			n.p.SetLatency(dir, latency)
			pause(stop, hold)
			n.p.SetLatency(faultproxy.Both, 0)
		case "reset":
			n.p.ResetAll()
		case "debug-sleep":
			async.Add(1)
			go func() {
				defer async.Done()
				ctx, cancel := probeCtx()
				defer cancel()
				if err := n.probe.Do(ctx, "DEBUG", "SLEEP", strconv.FormatFloat(sleep, 'f', 3, 64)).Err(); err != nil {
					n.t.Errorf("DEBUG SLEEP: %v", err)
				}
			}()
		case "slow-script":
			async.Add(1)
			go func() {
				defer async.Done()
				ctx, cancel := probeCtx()
				defer cancel()
				if err := n.probe.Eval(ctx, busyScript, nil, 300).Err(); err != nil {
					n.t.Errorf("slow script: %v", err)
				}
			}()
		}
	}
}
