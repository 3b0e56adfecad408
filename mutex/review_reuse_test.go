package mutex_test

import (
	"context"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
)

// TestReviewReleaseRaces: a lease whose Release reuses its first attempt's
// storage is released by several concurrent Release calls racing renewal
// rounds, Extend, Refresh, TTL, a revocation, its expiry and local waiters
// (a handoff), with random and custom tokens. Under the race detector no
// two of them may use the release storage at once; at most one Release
// succeeds and the token never changes (TTL 40ms: mutual exclusion is
// checked with a long TTL in lease's TestReviewReuseUnderBatching).
func TestReviewReleaseRaces(t *testing.T) {
	_, c := startRedis(t)
	ctx := context.Background()
	name := uniqueName(t)
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(seed, 3))
			opts := []mutex.Option{mutex.WithTTL(40 * time.Millisecond), mutex.WithRenewInterval(3 * time.Millisecond)}
			if seed%3 == 0 {
				opts = append(opts, mutex.WithToken("custom-"+string(rune('a'+seed))))
			}
			if seed%2 == 1 {
				opts = append(opts, mutex.WithAutoRenew(false))
			}
			m := newMutex(t, c, name, opts...)
			for it := 0; it < 40; it++ {
				lctx, cancel := context.WithTimeout(ctx, time.Second)
				var l *lease.Lease
				var err error
				if rnd.IntN(2) == 0 {
					l, err = m.Lock(lctx)
				} else {
					l, err = m.TryLock(lctx)
				}
				cancel()
				if err != nil {
					continue
				}
				tok := strings.Clone(l.Token())
				time.Sleep(time.Duration(rnd.IntN(2000)) * time.Microsecond)
				if rnd.IntN(5) == 0 {
					time.Sleep(50 * time.Millisecond) // expires without renewal
				}
				var ok atomic.Int32
				var rg sync.WaitGroup
				run := func(f func()) {
					rg.Add(1)
					go func() { defer rg.Done(); f() }()
				}
				for r := 0; r < 3; r++ {
					run(func() {
						if l.Release(ctx) == nil {
							ok.Add(1)
						}
					})
				}
				run(func() { _ = l.Extend(ctx, 30*time.Millisecond) })
				run(func() { _ = l.Refresh(ctx, 30*time.Millisecond) })
				run(func() { _, _ = l.TTL(ctx) })
				if rnd.IntN(4) == 0 {
					run(func() { _ = m.Revoke(ctx, tok) }) // may find it released already
				}
				rg.Wait()
				if n := ok.Load(); n > 1 {
					t.Errorf("%d Release calls of one lease succeeded", n)
				}
				if l.Token() != tok {
					t.Errorf("token changed from %q to %q", tok, l.Token())
				}
			}
		}(uint64(w))
	}
	wg.Wait()
}
