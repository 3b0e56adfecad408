package multilock_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/redlease/redlease/internal/keys"
	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/multilock"
	"github.com/redlease/redlease/mutex"
)

// TestReviewClusterCustomTokenHoldsEarlierGroupWhileWaiting: on Redis
// Cluster, a MultiLock with WithToken over {A, B} (different slots, A first)
// finds B held. Its attempt never releases group A (a custom-token attempt
// never deletes), so A stays held by nobody; while Lock waits, every retry
// re-obtains A and raises its TTL again, so A is held for as long as the
// wait lasts (far past its TTL), and still after Lock gave up. The package
// doc promises "no waiter holds keys while it sleeps" and "none of the keys
// stays held".
func TestReviewClusterCustomTokenHoldsEarlierGroupWhileWaiting(t *testing.T) {
	c := redistest.StartCluster(t, 3, 0)
	client := c.Client(t)
	ctx := context.Background()
	base := fmt.Sprintf("%s-%d", t.Name(), seq.Add(1))
	var a, b string
	for i := 0; ; i++ {
		x, y := fmt.Sprintf("%s-a%d", base, i), fmt.Sprintf("%s-b%d", base, i)
		kx, _ := keys.For("redlease:", x)
		ky, _ := keys.For("redlease:", y)
		if kx.Slot < ky.Slot {
			a, b = x, y
			break
		}
	}
	holderB, err := mutex.New(c.Client(t), b, mutex.WithTTL(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	lb, err := holderB.TryLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Release(ctx)

	ttl := 300 * time.Millisecond
	ml, err := multilock.New(client, []string{a, b}, mutex.WithToken("svc-ml"), mutex.WithTTL(ttl),
		mutex.WithBackoff(func() backoff.BackOff { return backoff.NewConstantBackOff(50 * time.Millisecond) }))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ml.TryLock(ctx); !errors.Is(err, mutex.ErrLocked) {
		t.Fatalf("TryLock: %v, want ErrLocked", err)
	}
	if n, _ := client.Exists(ctx, lockKey(a)).Result(); n != 0 {
		v, _ := client.Get(ctx, lockKey(a)).Result()
		t.Errorf("after a failed TryLock (B busy), %s still holds %q", lockKey(a), v)
	}

	// Lock waits for B for 5 TTLs (retrying every 50ms, as WithBackoff allows): A must not stay held all along.
	wctx, cancel := context.WithTimeout(ctx, 5*ttl)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := ml.Lock(wctx); done <- err }()
	other, err := mutex.New(c.Client(t), a, mutex.WithTTL(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var got bool
	for time.Since(start) < 4*ttl {
		if l, err := other.TryLock(ctx); err == nil {
			_ = l.Release(ctx)
			got = true
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	<-done
	if !got {
		t.Errorf("name %q (TTL %v) was held by nobody for %v while a custom-token MultiLock waited for %q", a, ttl, time.Since(start).Round(time.Millisecond), b)
	}
}
