package lease_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/core"
	"github.com/redlease/redlease/internal/keys"
	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
	"github.com/redlease/redlease/observe"
)

type reviewErrs struct{}

func (reviewErrs) Locked(name string, pttl time.Duration) error {
	return fmt.Errorf("%w: %s (%v)", mutex.ErrLocked, name, pttl)
}

func (reviewErrs) NotReplicated(acks int64, want int) error {
	return fmt.Errorf("%d of %d replicas", acks, want)
}

// groupSpec builds a lock on names with one group per name (as on a
// cluster, one script call per group, in order), on a plain client.
func groupSpec(t *testing.T, c redis.UniversalClient, names ...string) *core.Spec {
	t.Helper()
	cfg, err := core.Resolve([]mutex.Option{mutex.WithTTL(5 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	var groups []core.Group
	for _, n := range names {
		k, err := cfg.Key(n)
		if err != nil {
			t.Fatal(err)
		}
		g, err := cfg.Group(c, []keys.Key{k})
		if err != nil {
			t.Fatal(err)
		}
		groups = append(groups, g)
	}
	return core.NewSpec("review", observe.KindMultilock, reviewErrs{}, c, cfg, groups)
}

// delay sleeps up to max before each command or pipeline is sent, so that
// callers' ctxs end while their calls are queued or in flight in a batch.
type delay struct{ max time.Duration }

func (d delay) DialHook(next redis.DialHook) redis.DialHook { return next }

func (d delay) nap() { time.Sleep(time.Duration(rand.Int64N(int64(d.max)))) }

func (d delay) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { d.nap(); return next(ctx, cmd) }
}

func (d delay) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { d.nap(); return next(ctx, cmds) }
}

// TestReviewReuseUnderBatching attacks the reuse of the first attempt's
// storage (core.Attempt: arguments, token bytes) by the Release of the lease
// it created. Many goroutines of one client lock one-group and two-group
// locks with ctxs that end while calls are queued or in flight in a batch,
// while the scripts are flushed (NOSCRIPT fallbacks inside pipelines); every
// lease obtained is released by several concurrent Release calls, some
// racing a revocation. Under the race detector a call still reading the
// storage that a Release writes would be reported; the token must never
// change, at most one Release may succeed, and no name is held twice.
func TestReviewReuseUnderBatching(t *testing.T) {
	s := redistest.Start(t)
	c, admin := s.Client(t), s.Client(t)
	c.AddHook(delay{max: 3 * time.Millisecond})
	ctx := context.Background()

	specs := []*core.Spec{
		groupSpec(t, c, "a", "b"),
		groupSpec(t, c, "b", "c"),
		groupSpec(t, c, "c"),
		groupSpec(t, c, "a", "b", "c"),
	}
	var held [3]atomic.Int32 // a, b, c
	idx := func(name string) int { return int(name[0] - 'a') }

	stop := make(chan struct{})
	var bg sync.WaitGroup
	bg.Add(1)
	go func() {
		defer bg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(3 * time.Millisecond):
			}
			admin.ScriptFlush(ctx)
		}
	}()

	var obtained, released atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 12; w++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(seed, 7))
			for it := 0; it < 60; it++ {
				s := specs[rnd.IntN(len(specs))]
				d := time.Duration(1+rnd.IntN(8)) * time.Millisecond // ends while calls are queued or in flight
				if rnd.IntN(3) > 0 {
					d = time.Second
				}
				actx, cancel := context.WithTimeout(ctx, d)
				var l *lease.Lease
				var err error
				if rnd.IntN(2) == 0 {
					l, err = lease.Obtain(actx, s)
				} else {
					l, err = lease.Try(actx, s)
				}
				cancel()
				if err != nil {
					continue
				}
				obtained.Add(1)
				tok := strings.Clone(l.Token())
				names := l.Names()
				for _, n := range names {
					if v := held[idx(n)].Add(1); v != 1 {
						t.Errorf("%s held %d times", n, v)
					}
				}
				time.Sleep(time.Duration(rnd.IntN(500)) * time.Microsecond)
				for _, n := range names {
					held[idx(n)].Add(-1)
				}
				var ok atomic.Int32
				var rg sync.WaitGroup
				for r := 0; r < 3; r++ {
					rg.Add(1)
					go func(r int) {
						defer rg.Done()
						rctx, cancel := context.WithTimeout(ctx, time.Duration(1+r)*time.Millisecond)
						defer cancel()
						if l.Release(rctx) == nil {
							ok.Add(1)
						}
					}(r)
				}
				if rnd.IntN(4) == 0 {
					rg.Add(1)
					go func() {
						defer rg.Done()
						_, _, _ = s.Revoke(ctx, tok)
					}()
				}
				rg.Wait()
				if n := ok.Load(); n > 1 {
					t.Errorf("%d Release calls of one lease succeeded", n)
				} else if n == 1 {
					released.Add(1)
				}
				if l.Token() != tok {
					t.Errorf("token changed from %q to %q", tok, l.Token())
				}
			}
		}(uint64(w))
	}
	wg.Wait()
	close(stop)
	bg.Wait()
	t.Logf("%d leases obtained, %d released by one of their Release calls", obtained.Load(), released.Load())
	if obtained.Load() == 0 {
		t.Fatal("no lease obtained: the test attacked nothing")
	}
}
