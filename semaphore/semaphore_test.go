package semaphore_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/internal/scripts"
	"github.com/redlease/redlease/internal/wake"
	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
	"github.com/redlease/redlease/semaphore"
)

var nameSeq atomic.Int64

func uniqueName(t *testing.T) string { return fmt.Sprintf("%s-%d", t.Name(), nameSeq.Add(1)) }

func startRedis(t *testing.T) (*redistest.Server, *redis.Client) {
	t.Helper()
	s := redistest.Start(t)
	return s, s.Client(t)
}

func newSem(t *testing.T, c redis.UniversalClient, name string, limit int64, opts ...mutex.Option) *semaphore.Semaphore {
	t.Helper()
	s, err := semaphore.New(c, name, limit, opts...)
	if err != nil {
		t.Fatalf("semaphore.New(%q, %d): %v", name, limit, err)
	}
	return s
}

func semKey(name string) string { return "redlease:{" + name + "}:sem" }

// onlyFence fails t unless the fence counter is the only key left.
func onlyFence(t *testing.T, c *redis.Client) {
	t.Helper()
	ks, err := c.Keys(context.Background(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(ks) != 1 || ks[0] != "redlease:fence" {
		t.Fatalf("keys left: %v, want only redlease:fence", ks)
	}
}

func TestLimitEnforced(t *testing.T) {
	_, c := startRedis(t)
	ctx := context.Background()
	const limit, workers, rounds = 3, 12, 5
	sem := newSem(t, c, uniqueName(t), limit, mutex.WithTTL(2*time.Second))
	var held, peak atomic.Int64
	var mu sync.Mutex
	var fences []int64
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				n := int64(1 + (w+r)%2) // weighted: 1 or 2 units
				actx, cancel := context.WithTimeout(ctx, 20*time.Second)
				l, err := sem.Acquire(actx, n)
				cancel()
				if err != nil {
					errs <- err
					return
				}
				now := held.Add(n)
				for {
					p := peak.Load()
					if now <= p || peak.CompareAndSwap(p, now) {
						break
					}
				}
				mu.Lock()
				fences = append(fences, l.Fence())
				mu.Unlock()
				time.Sleep(2 * time.Millisecond)
				held.Add(-n)
				if err := l.Release(ctx); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if p := peak.Load(); p > limit || p < 2 {
		t.Fatalf("peak units held %d, want in [2, %d]", p, limit)
	}
	seen := map[int64]bool{}
	for _, f := range fences {
		if seen[f] {
			t.Fatalf("fence %d given twice", f)
		}
		seen[f] = true
	}
	if len(fences) != workers*rounds {
		t.Fatalf("%d acquisitions, want %d", len(fences), workers*rounds)
	}
	onlyFence(t, c)
}

func TestTryAcquireNoPermits(t *testing.T) {
	_, c := startRedis(t)
	ctx := context.Background()
	sem := newSem(t, c, uniqueName(t), 5)
	l, err := sem.TryAcquire(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	_, err = sem.TryAcquire(ctx, 3)
	var np *semaphore.NoPermitsError
	if !errors.Is(err, semaphore.ErrNoPermits) || !errors.As(err, &np) || np.Free != 2 || np.Name != sem.Name() {
		t.Fatalf("got %v (%+v), want ErrNoPermits with Free 2", err, np)
	}
	if free, err := sem.Available(ctx); err != nil || free != 2 {
		t.Fatalf("Available: %d, %v; want 2", free, err)
	}
	l2, err := sem.TryAcquire(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if l2.Fence() <= l.Fence() {
		t.Fatalf("fence %d after %d, want larger", l2.Fence(), l.Fence())
	}
	if err := l.Guard(ctx, func(redis.Pipeliner) error { return nil }); !errors.Is(err, semaphore.ErrInvalid) {
		t.Fatalf("Guard: %v, want ErrInvalid", err)
	}
	if ok, err := l.Owned(ctx); !ok || err != nil {
		t.Fatalf("Owned: %v %v", ok, err)
	}
	if d, err := l.TTL(ctx); err != nil || d <= 0 || d > 10*time.Second {
		t.Fatalf("TTL: %v %v", d, err)
	}
	_ = l.Release(ctx)
	if err := l.Release(ctx); !errors.Is(err, lease.ErrReleased) {
		t.Fatalf("second Release: %v, want ErrReleased", err)
	}
	_ = l2.Release(ctx)
	if free, _ := sem.Available(ctx); free != 5 {
		t.Fatalf("Available after releases: %d, want 5", free)
	}
	onlyFence(t, c)
}

func TestCrashedHolderExpires(t *testing.T) {
	_, c := startRedis(t)
	ctx := context.Background()
	name := uniqueName(t)
	crashed := newSem(t, c, name, 2, mutex.WithTTL(300*time.Millisecond), mutex.WithAutoRenew(false))
	l, err := crashed.TryAcquire(ctx, 2) // abandoned: never released
	if err != nil {
		t.Fatal(err)
	}
	sem := newSem(t, c, name, 2)
	if _, err := sem.TryAcquire(ctx, 1); !errors.Is(err, semaphore.ErrNoPermits) {
		t.Fatalf("got %v, want ErrNoPermits", err)
	}
	start := time.Now()
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	l2, err := sem.Acquire(actx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("waited %v for an expired holder", d)
	}
	<-l.Lost()
	if !errors.Is(l.Err(), lease.ErrExpired) {
		t.Fatalf("crashed lease: %v, want ErrExpired", l.Err())
	}
	_ = l2.Release(ctx)
	// The abandoned field was purged by the acquisition, the other released.
	onlyFence(t, c)
}

func TestRenewKeepsUnits(t *testing.T) {
	_, c := startRedis(t)
	ctx := context.Background()
	sem := newSem(t, c, uniqueName(t), 1, mutex.WithTTL(150*time.Millisecond))
	l, err := sem.TryAcquire(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if l.Err() != nil {
		t.Fatalf("renewed lease ended: %v", l.Err())
	}
	if _, err := sem.TryAcquire(ctx, 1); !errors.Is(err, semaphore.ErrNoPermits) {
		t.Fatalf("got %v, want ErrNoPermits while renewed", err)
	}
	if err := l.Extend(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	if d, _ := l.TTL(ctx); d < time.Second {
		t.Fatalf("TTL after Extend %v", d)
	}
	if err := l.Refresh(ctx, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if d, _ := l.TTL(ctx); d > 100*time.Millisecond {
		t.Fatalf("TTL after Refresh %v", d)
	}
	_ = l.Release(ctx)
	onlyFence(t, c)
}

func TestReleaseWakesWaiters(t *testing.T) {
	_, c := startRedis(t)
	ctx := context.Background()
	// A backoff far longer than the test: only wake-ups can admit the waiters.
	sem := newSem(t, c, uniqueName(t), 3, mutex.WithBackoff(func() backoff.BackOff { return backoff.NewConstantBackOff(time.Minute) }))
	big, err := sem.TryAcquire(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	const waiters = 3
	got := make(chan *lease.Lease, waiters)
	errs := make(chan error, waiters)
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for i := 0; i < waiters; i++ {
		go func() {
			l, err := sem.Acquire(actx, 1)
			if err != nil {
				errs <- err
				return
			}
			got <- l
		}()
	}
	time.Sleep(200 * time.Millisecond) // all queued
	start := time.Now()
	_ = big.Release(ctx)
	for i := 0; i < waiters; i++ {
		select {
		case l := <-got:
			defer l.Release(ctx)
		case err := <-errs:
			t.Fatal(err)
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of %d waiters admitted after one release of 3 units", i, waiters)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("admission took %v", d)
	}
}

func TestCancelLeavesNothing(t *testing.T) {
	_, c := startRedis(t)
	ctx := context.Background()
	sem := newSem(t, c, uniqueName(t), 2)
	l, err := sem.TryAcquire(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	actx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := sem.Acquire(actx, 1); !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, semaphore.ErrNoPermits) {
		t.Fatalf("got %v, want DeadlineExceeded and ErrNoPermits", err)
	}
	done, cancel2 := context.WithCancel(ctx)
	cancel2()
	if _, err := sem.Acquire(done, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want Canceled", err)
	}
	if n, _ := c.HLen(ctx, semKey(sem.Name())).Result(); n != 1 {
		t.Fatalf("%d holds, want 1", n)
	}
	_ = l.Release(ctx)
	onlyFence(t, c)
}

func TestInvalid(t *testing.T) {
	_, c := startRedis(t)
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": "127.0.0.1:1"}})
	defer ring.Close()
	var nilClient *redis.Client
	cases := []struct {
		name   string
		client redis.UniversalClient
		limit  int64
		opts   []mutex.Option
	}{
		{"limit 0", c, 0, nil},
		{"limit -1", c, -1, nil},
		{"nil client", nil, 1, nil},
		{"typed nil client", nilClient, 1, nil},
		{"ring", ring, 1, nil},
		{"token", c, 1, []mutex.Option{mutex.WithToken("x")}},
		{"replicas", c, 1, []mutex.Option{mutex.WithReplicas(1, time.Second)}},
		{"ttl", c, 1, []mutex.Option{mutex.WithTTL(time.Millisecond)}},
		{"nil option", c, 1, []mutex.Option{nil}},
	}
	for _, tc := range cases {
		if _, err := semaphore.New(tc.client, "x", tc.limit, tc.opts...); !errors.Is(err, semaphore.ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", tc.name, err)
		}
	}
	if _, err := semaphore.New(c, "", 1); !errors.Is(err, semaphore.ErrInvalid) {
		t.Errorf("empty name: %v", err)
	}
	sem := newSem(t, c, uniqueName(t), 2)
	ctx := context.Background()
	for _, n := range []int64{0, -1, 3} {
		if _, err := sem.Acquire(ctx, n); !errors.Is(err, semaphore.ErrInvalid) {
			t.Errorf("Acquire(%d): %v, want ErrInvalid", n, err)
		}
		if _, err := sem.TryAcquire(ctx, n); !errors.Is(err, semaphore.ErrInvalid) {
			t.Errorf("TryAcquire(%d): %v, want ErrInvalid", n, err)
		}
	}
	if semaphore.ErrInvalid != lease.ErrInvalid || semaphore.ErrInvalid != mutex.ErrInvalid {
		t.Error("ErrInvalid is not the module's one value")
	}
}

// TestLostReplyRetry runs every acquire script twice, as go-redis does when
// a reply is lost: the retry must find its own hold and return its fence, so
// one attempt holds units once.
func TestLostReplyRetry(t *testing.T) {
	s, _ := startRedis(t)
	c := s.Client(t)
	c.AddHook(twiceHook{})
	ctx := context.Background()
	sem := newSem(t, c, uniqueName(t), 2)
	l, err := sem.TryAcquire(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	vals, err := c.HGetAll(ctx, semKey(sem.Name())).Result()
	if err != nil || len(vals) != 1 {
		t.Fatalf("holds %v (%v), want exactly 1", vals, err)
	}
	if v := vals[l.Token()]; v == "" || v[:len(fmt.Sprint(l.Fence()))+1] != fmt.Sprintf("%d:", l.Fence()) {
		t.Fatalf("field %q, want fence %d", v, l.Fence())
	}
	if free, _ := sem.Available(ctx); free != 1 {
		t.Fatalf("free %d, want 1", free)
	}
	if n, _ := c.Get(ctx, "redlease:fence").Int64(); n != l.Fence() {
		t.Fatalf("fence counter %d, want %d (the retry drew no fence)", n, l.Fence())
	}
	if err := l.Extend(ctx, time.Second); err != nil { // twice: applied once
		t.Fatal(err)
	}
	if d, _ := l.TTL(ctx); d > 11*time.Second+100*time.Millisecond {
		t.Fatalf("TTL %v after a doubled Extend by 1s", d)
	}
	// The second run of release finds the field gone: ErrNotHeld, as for a
	// mutex whose release reply was lost (see internal/core/protocol.go).
	if err := l.Release(ctx); !errors.Is(err, lease.ErrNotHeld) {
		t.Fatalf("doubled Release: %v, want ErrNotHeld", err)
	}
	if free, _ := sem.Available(ctx); free != 2 {
		t.Fatalf("free %d after release, want 2", free)
	}
}

// twiceHook runs every EVALSHA/EVAL twice and returns the second reply.
type twiceHook struct{}

func (twiceHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (twiceHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (twiceHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		switch cmd.Name() {
		case "evalsha", "eval":
			if err := next(ctx, cmd); err != nil {
				return err
			}
		}
		return next(ctx, cmd)
	}
}

// TestLostReplyCleanup loses the reply of an acquisition that ran: the
// attempt releases its hold by its token, so no units stay held.
func TestLostReplyCleanup(t *testing.T) {
	s, _ := startRedis(t)
	c := s.Client(t)
	h := &loseOnce{}
	c.AddHook(h)
	ctx := context.Background()
	sem := newSem(t, c, uniqueName(t), 2)
	if err := scripts.SemAcquire.Load(ctx, c).Err(); err != nil { // no NOSCRIPT to hit
		t.Fatal(err)
	}
	h.arm()
	if _, err := sem.TryAcquire(ctx, 2); err == nil || errors.Is(err, semaphore.ErrNoPermits) {
		t.Fatalf("got %v, want the lost reply's error", err)
	}
	if free, err := sem.Available(ctx); err != nil || free != 2 {
		t.Fatalf("free %d (%v) after a lost reply, want 2", free, err)
	}
	onlyFence(t, c)
}

// loseOnce runs the next script call and then reports a read timeout.
type loseOnce struct{ armed atomic.Bool }

func (h *loseOnce) arm() { h.armed.Store(true) }

func (h *loseOnce) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *loseOnce) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (h *loseOnce) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		n := cmd.Name()
		if (n == "evalsha" || n == "eval") && h.armed.CompareAndSwap(true, false) {
			_ = next(ctx, cmd)
			err := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
			cmd.SetErr(err)
			return err
		}
		return next(ctx, cmd)
	}
}

func TestFencesIncrease(t *testing.T) {
	_, c := startRedis(t)
	ctx := context.Background()
	name := uniqueName(t)
	sem := newSem(t, c, name, 3)
	m, err := mutex.New(c, name) // another name's holds draw from the same counter
	if err != nil {
		t.Fatal(err)
	}
	var prev int64
	for i := 0; i < 10; i++ {
		l, err := sem.TryAcquire(ctx, 1+int64(i%3))
		if err != nil {
			t.Fatal(err)
		}
		if l.Fence() <= prev {
			t.Fatalf("fence %d after %d", l.Fence(), prev)
		}
		prev = l.Fence()
		_ = l.Release(ctx)
		ml, err := m.TryLock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_ = ml.Release(ctx)
	}
	onlyFence(t, c)
}

// TestTryAcquireDefersToWaiters: a queued large request is not overtaken by
// a later small TryAcquire of the same process.
func TestTryAcquireDefersToWaiters(t *testing.T) {
	_, c := startRedis(t)
	ctx := context.Background()
	sem := newSem(t, c, uniqueName(t), 3)
	small, err := sem.TryAcquire(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	got := make(chan error, 1)
	var big *lease.Lease
	go func() {
		var err error
		big, err = sem.Acquire(actx, 3)
		got <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for wake.QueueLen(c, "redlease:{"+sem.Name()+"}:wake") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the waiter never queued")
		}
		time.Sleep(5 * time.Millisecond)
	}
	_, err = sem.TryAcquire(ctx, 1)
	var np *semaphore.NoPermitsError
	if !errors.As(err, &np) || np.Free != 2 {
		t.Fatalf("got %v, want a *NoPermitsError with Free 2 (deferring to the waiter)", err)
	}
	_ = small.Release(ctx)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	_ = big.Release(ctx)
	onlyFence(t, c)
}
