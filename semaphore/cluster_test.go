package semaphore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
)

// TestCluster runs a semaphore on names in many slots of a real Redis
// Cluster: the hash and its fence counter share a slot, and a release wakes
// a waiter through sharded pub/sub (the backoff is too long to matter).
func TestCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3, 0)
	c := cl.Client(t)
	ctx := context.Background()
	slow := mutex.WithBackoff(func() backoff.BackOff { return backoff.NewConstantBackOff(time.Minute) })
	for i := 0; i < 6; i++ {
		name := fmt.Sprintf("%s-%d", uniqueName(t), i)
		sem := newSem(t, c, name, 2, slow)
		a, err := sem.TryAcquire(ctx, 2)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := make(chan *lease.Lease, 1)
		errs := make(chan error, 1)
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		go func() {
			l, err := sem.Acquire(actx, 1)
			if err != nil {
				errs <- err
				return
			}
			got <- l
		}()
		time.Sleep(100 * time.Millisecond)
		_ = a.Release(ctx)
		select {
		case l := <-got:
			if l.Fence() <= a.Fence() {
				t.Fatalf("%s: fence %d after %d", name, l.Fence(), a.Fence())
			}
			if err := l.Extend(ctx, time.Second); err != nil {
				t.Fatal(err)
			}
			_ = l.Release(ctx)
		case err := <-errs:
			t.Fatalf("%s: %v", name, err)
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: the waiter was not woken by the release", name)
		}
		cancel()
		if n, err := c.Exists(ctx, semKey(name)).Result(); err != nil || n != 0 {
			t.Fatalf("%s: hash left (%d, %v)", name, n, err)
		}
	}
}
