package rwmutex_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

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

// TestWriterReleaseAdmitsReadersUpToWriter: behind a write hold, waiters of
// one process queue as reader, reader, writer, reader. The writer's release
// (in this process, or in another one, whose wake-up message carries the
// lock's state) wakes the two readers at once and nobody else; the writer,
// at the head once they are in, tries once to set its claim (which keeps new
// readers out), is woken when the last of them releases, and the last
// reader when the writer releases. Apart from the claim, every acquire
// attempt after the waiters queued is an admission: none is wasted.
func TestWriterReleaseAdmitsReadersUpToWriter(t *testing.T) {
	for _, remote := range []bool{false, true} {
		name := "local"
		if remote {
			name = "remote"
		}
		t.Run(name, func(t *testing.T) {
			s, _ := startRedis(t)
			c := s.Client(t)
			count := &countScript{sha: scripts.RWAcquire.Hash()}
			c.AddHook(count)
			ctx := context.Background()
			if err := scripts.RWAcquire.Load(ctx, c).Err(); err != nil {
				t.Fatal(err)
			}
			hc := c
			if remote {
				hc = s.Client(t) // another process: its own hub
			}
			name := uniqueName(t)
			opts := []mutex.Option{slow, mutex.WithTTL(30 * time.Second)}
			holder, err := newRW(t, hc, name, opts...).TryLock(ctx)
			if err != nil {
				t.Fatal(err)
			}
			pre := count.n.Load()
			actx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			writes := []bool{false, false, true, false}
			got := make([]chan *lease.Lease, len(writes))
			for i, write := range writes {
				got[i] = make(chan *lease.Lease, 1)
				go func() {
					m := newRW(t, c, name, opts...)
					lock := m.RLock
					if write {
						lock = m.Lock
					}
					l, err := lock(actx)
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
			ls := make([]*lease.Lease, len(writes))
			admitted := func(i int) {
				t.Helper()
				select {
				case ls[i] = <-got[i]:
					if ls[i] == nil {
						t.FailNow()
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("waiter %d not admitted", i)
				}
			}
			waiting := func(is ...int) {
				t.Helper()
				time.Sleep(100 * time.Millisecond) // room for a wrong admission
				for _, i := range is {
					select {
					case <-got[i]:
						t.Fatalf("waiter %d admitted out of turn", i)
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
			waitClaim(t, c, name)
			waiting(2, 3)
			attempts(3) // two readers, the writer's claim
			if _, err := newRW(t, s.Client(t), name).TryRLock(ctx); err == nil {
				t.Fatal("a new reader got in past the waiting writer's claim")
			}
			_ = ls[0].Release(ctx)
			waiting(2, 3)
			attempts(3)
			_ = ls[1].Release(ctx)
			admitted(2)
			waiting(3)
			attempts(4)
			_ = ls[2].Release(ctx)
			admitted(3)
			attempts(5)
			_ = ls[3].Release(ctx)
			onlyFence(t, c)
		})
	}
}
