package semaphore_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
)

// TestReviewSilentExpiryAfterPredecessorAcquired: limit 2, held by two
// crashed holders (no renewal, no release: their units free only by expiry,
// at 1s and 3s). Waiters A then B (1 unit each) of one process queue; only A
// attempts before queuing. A acquires at the first expiry; B then heads the
// queue after a predecessor that acquired, knowing of no expiry, and its
// fallback retry is a minute away. The second expiry publishes nothing: B
// must still get in soon after it, not a minute later (before the fix it
// waited for its fallback, a minute).
func TestReviewSilentExpiryAfterPredecessorAcquired(t *testing.T) {
	s, c := startRedis(t)
	other := s.Client(t) // the crashed holders' process
	ctx := context.Background()
	name := uniqueName(t)
	for _, ttl := range []time.Duration{time.Second, 3 * time.Second} {
		if _, err := newSem(t, other, name, 2, mutex.WithTTL(ttl), mutex.WithAutoRenew(false)).TryAcquire(ctx, 1); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	actx, cancel := context.WithTimeout(ctx, time.Minute)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	got := make([]chan *lease.Lease, 2)
	for i := range got {
		got[i] = make(chan *lease.Lease, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := newSem(t, c, name, 2, slow, mutex.WithTTL(30*time.Second)).Acquire(actx, 1)
			if err != nil && actx.Err() == nil {
				t.Error(err)
			}
			got[i] <- l
		}()
		waitQueuedN(t, c, "redlease:{"+name+"}:wake", i+1)
	}
	for i := range got {
		select {
		case l := <-got[i]:
			if l == nil {
				t.FailNow()
			}
			defer l.Release(ctx)
		case <-time.After(10*time.Second - time.Since(start)):
			t.Fatalf("waiter %d not admitted within 10s; the last crashed hold expired at 3s", i)
		}
	}
}
