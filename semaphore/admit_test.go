package semaphore_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/scripts"
	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
)

// countScript counts the EVALSHA calls of one script through a client.
type countScript struct {
	sha string
	n   atomic.Int64
}

func (h *countScript) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *countScript) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (h *countScript) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if args := cmd.Args(); cmd.Name() == "evalsha" && len(args) > 1 && args[1] == h.sha {
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

// TestReleaseAdmitsFittingWaitersInOrder: limit 4, a holder of 4, and
// waiters of one process wanting 1, 1, 3 and 1, queued in that order. The
// holder's release (in this process, or in another one, whose wake-up
// message carries the units left held) wakes the two 1s at once and nobody
// else: not the 3, which does not fit, nor the last 1 behind it. Each
// release after that admits the next in line once it fits. Every acquire
// attempt after the waiters queued is an admission: none is wasted.
func TestReleaseAdmitsFittingWaitersInOrder(t *testing.T) {
	for _, remote := range []bool{false, true} {
		name := "local"
		if remote {
			name = "remote"
		}
		t.Run(name, func(t *testing.T) {
			s, _ := startRedis(t)
			c := s.Client(t)
			count := &countScript{sha: scripts.SemAcquire.Hash()}
			c.AddHook(count)
			ctx := context.Background()
			if err := scripts.SemAcquire.Load(ctx, c).Err(); err != nil {
				t.Fatal(err)
			}
			hc := c
			if remote {
				hc = s.Client(t) // another process: its own hub
			}
			name := uniqueName(t)
			opts := []mutex.Option{slow, mutex.WithTTL(30 * time.Second)}
			holder, err := newSem(t, hc, name, 4, opts...).TryAcquire(ctx, 4)
			if err != nil {
				t.Fatal(err)
			}
			pre := count.n.Load() // the holder's, in the local case
			actx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			wants := []int64{1, 1, 3, 1}
			got := make([]chan *lease.Lease, len(wants))
			for i, n := range wants {
				got[i] = make(chan *lease.Lease, 1)
				go func() {
					l, err := newSem(t, c, name, 4, opts...).Acquire(actx, n)
					if err != nil {
						t.Error(err)
					}
					got[i] <- l
				}()
				waitQueuedN(t, c, "redlease:{"+name+"}:wake", i+1)
			}
			// Only the first waiter tried (before and right after queuing,
			// at the head); the others found it queued and queued behind.
			for deadline := time.Now().Add(10 * time.Second); count.n.Load()-pre < 2 && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
			time.Sleep(50 * time.Millisecond) // room for a wrong attempt
			base := count.n.Load()
			if base-pre != 2 {
				t.Fatalf("%d attempts before the release, want 2", base-pre)
			}
			ls := make([]*lease.Lease, len(wants))
			admitted := func(i int) {
				t.Helper()
				select {
				case ls[i] = <-got[i]:
					if ls[i] == nil {
						t.FailNow()
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("waiter %d (wants %d) not admitted", i, wants[i])
				}
			}
			waiting := func(is ...int) {
				t.Helper()
				time.Sleep(100 * time.Millisecond) // room for a wrong admission
				for _, i := range is {
					select {
					case <-got[i]:
						t.Fatalf("waiter %d (wants %d) admitted out of turn", i, wants[i])
					default:
					}
				}
			}
			attempts := func(want int64) {
				t.Helper()
				if n := count.n.Load() - base; n != want {
					t.Fatalf("%d acquire attempts since the waiters queued, want %d (one per admission)", n, want)
				}
			}
			_ = holder.Release(ctx)
			admitted(0)
			admitted(1)
			waiting(2, 3)
			attempts(2)
			_ = ls[0].Release(ctx) // 1 held: the 3 fits, the 1 behind it not yet
			admitted(2)
			waiting(3)
			attempts(3)
			_ = ls[1].Release(ctx) // 3 held: the last 1 fits
			admitted(3)
			attempts(4)
			for _, l := range ls[2:] {
				_ = l.Release(ctx)
			}
			onlyFence(t, c)
		})
	}
}

// slow is a backoff far longer than any test: only wake-ups (or the cap at
// the earliest expiry) make a waiter retry.
var slow = mutex.WithBackoff(func() backoff.BackOff { return backoff.NewConstantBackOff(time.Minute) })
