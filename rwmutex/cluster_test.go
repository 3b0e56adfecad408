package rwmutex_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/lease"
)

// TestCluster runs a read-write lock on names in many slots of a real Redis
// Cluster: the hash and its fence counter share a slot, Guard's WATCH works
// there, and a reader's release wakes a waiting writer through sharded
// pub/sub (the backoff is too long to matter).
func TestCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3, 0)
	c := cl.Client(t)
	ctx := context.Background()
	for i := 0; i < 6; i++ {
		name := fmt.Sprintf("%s-%d", uniqueName(t), i)
		m := newRW(t, c, name, slow)
		r, err := m.TryRLock(ctx)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := make(chan *lease.Lease, 1)
		errs := make(chan error, 1)
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		go func() {
			l, err := m.Lock(actx)
			if err != nil {
				errs <- err
				return
			}
			got <- l
		}()
		time.Sleep(100 * time.Millisecond)
		_ = r.Release(ctx)
		select {
		case w := <-got:
			if w.Fence() <= r.Fence() {
				t.Fatalf("%s: fence %d after %d", name, w.Fence(), r.Fence())
			}
			data := "{" + name + "}:data"
			if err := w.Guard(ctx, func(p redis.Pipeliner) error { return p.Set(ctx, data, "x", 0).Err() }); err != nil {
				t.Fatalf("%s: Guard: %v", name, err)
			}
			_ = c.Del(ctx, data).Err()
			_ = w.Release(ctx)
		case err := <-errs:
			t.Fatalf("%s: %v", name, err)
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: the writer was not woken by the release", name)
		}
		cancel()
		if n, err := c.Exists(ctx, rwKey(name)).Result(); err != nil || n != 0 {
			t.Fatalf("%s: hash left (%d, %v)", name, n, err)
		}
	}
}
