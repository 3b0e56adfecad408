package rwmutex_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
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
	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
	"github.com/redlease/redlease/rwmutex"
)

var nameSeq atomic.Int64

func uniqueName(t *testing.T) string { return fmt.Sprintf("%s-%d", t.Name(), nameSeq.Add(1)) }

func startRedis(t *testing.T) (*redistest.Server, *redis.Client) {
	t.Helper()
	s := redistest.Start(t)
	return s, s.Client(t)
}

func newRW(t *testing.T, c redis.UniversalClient, name string, opts ...mutex.Option) *rwmutex.RWMutex {
	t.Helper()
	m, err := rwmutex.New(c, name, opts...)
	if err != nil {
		t.Fatalf("rwmutex.New(%q): %v", name, err)
	}
	return m
}

func rwKey(name string) string { return "redlease:{" + name + "}:rw" }

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

// slow is a backoff far longer than any test: only wake-ups (or the cap at
// the earliest expiry) make a waiter retry.
var slow = mutex.WithBackoff(func() backoff.BackOff { return backoff.NewConstantBackOff(time.Minute) })

func TestReadersShare(t *testing.T) {
	_, c := startRedis(t)
	ctx := context.Background()
	m := newRW(t, c, uniqueName(t))
	const n = 5
	var ls []*lease.Lease
	for i := 0; i < n; i++ {
		l, err := m.TryRLock(ctx)
		if err != nil {
			t.Fatalf("reader %d: %v", i, err)
		}
		ls = append(ls, l)
	}
	_, err := m.TryLock(ctx)
	var le *rwmutex.LockedError
	if !errors.Is(err, rwmutex.ErrLocked) || !errors.As(err, &le) || le.Name != m.Name() || le.PTTL <= 0 {
		t.Fatalf("TryLock with readers: %v, want a *LockedError with a PTTL", err)
	}
	if ok, _ := c.HExists(ctx, rwKey(m.Name()), "want").Result(); ok {
		t.Fatal("TryLock left a claim")
	}
	for _, l := range ls {
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	onlyFence(t, c)
}

// TestExclusion mixes waiting readers and writers: a writer is always alone,
// and its fence is larger than every fence handed out before it.
func TestExclusion(t *testing.T) {
	_, c := startRedis(t)
	ctx := context.Background()
	m := newRW(t, c, uniqueName(t), mutex.WithTTL(2*time.Second))
	const workers, rounds = 10, 6
	var readers, writers, peakReaders atomic.Int64
	var mu sync.Mutex
	var maxFence int64
	seen := map[int64]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				write := (w+r)%3 == 0
				actx, cancel := context.WithTimeout(ctx, 30*time.Second)
				var l *lease.Lease
				var err error
				if write {
					l, err = m.Lock(actx)
				} else {
					l, err = m.RLock(actx)
				}
				cancel()
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				if seen[l.Fence()] {
					errs <- fmt.Errorf("fence %d given twice", l.Fence())
				}
				seen[l.Fence()] = true
				if write && l.Fence() <= maxFence {
					errs <- fmt.Errorf("write fence %d not above earlier fence %d", l.Fence(), maxFence)
				}
				if l.Fence() > maxFence {
					maxFence = l.Fence()
				}
				mu.Unlock()
				if write {
					if n := writers.Add(1); n != 1 || readers.Load() != 0 {
						errs <- fmt.Errorf("writer beside %d writers, %d readers", n-1, readers.Load())
					}
				} else {
					n := readers.Add(1)
					if writers.Load() != 0 {
						errs <- errors.New("reader beside a writer")
					}
					for p := peakReaders.Load(); n > p && !peakReaders.CompareAndSwap(p, n); p = peakReaders.Load() {
					}
				}
				time.Sleep(time.Duration(1+rand.Intn(4)) * time.Millisecond)
				if write {
					writers.Add(-1)
				} else {
					readers.Add(-1)
				}
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
	if len(seen) != workers*rounds {
		t.Fatalf("%d acquisitions, want %d", len(seen), workers*rounds)
	}
	t.Logf("peak concurrent readers: %d", peakReaders.Load())
	onlyFence(t, c)
}

// waitClaim waits until a writer's claim is in the hash.
func waitClaim(t *testing.T, c *redis.Client, name string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if ok, _ := c.HExists(context.Background(), rwKey(name), "want").Result(); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no writer claim appeared")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWaitingWriterNotStarved(t *testing.T) {
	_, c := startRedis(t)
	ctx := context.Background()
	name := uniqueName(t)
	m := newRW(t, c, name, slow)
	other := newRW(t, redistestClient(t, c), name, slow) // readers of another "process"
	r1, err := other.TryRLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	wl := make(chan *lease.Lease, 1)
	werr := make(chan error, 1)
	go func() {
		l, err := m.Lock(actx)
		if err != nil {
			werr <- err
			return
		}
		wl <- l
	}()
	waitClaim(t, c, name)
	if _, err := other.TryRLock(ctx); !errors.Is(err, rwmutex.ErrLocked) {
		t.Fatalf("TryRLock behind a waiting writer: %v, want ErrLocked", err)
	}
	// A new reader waits behind the writer.
	rl := make(chan *lease.Lease, 1)
	rerr := make(chan error, 1)
	go func() {
		l, err := other.RLock(actx)
		if err != nil {
			rerr <- err
			return
		}
		rl <- l
	}()
	time.Sleep(100 * time.Millisecond)
	_ = r1.Release(ctx)
	var w *lease.Lease
	select {
	case w = <-wl:
	case err := <-werr:
		t.Fatal(err)
	case <-rl:
		t.Fatal("a new reader got in before the waiting writer")
	case <-time.After(5 * time.Second):
		t.Fatal("the writer was not admitted after the readers left")
	}
	if w.Fence() <= r1.Fence() {
		t.Fatalf("write fence %d not above read fence %d", w.Fence(), r1.Fence())
	}
	if ok, _ := c.HExists(ctx, rwKey(name), "want").Result(); ok {
		t.Fatal("the admitted writer left its claim")
	}
	select {
	case <-rl:
		t.Fatal("a reader got in beside the writer")
	case <-time.After(100 * time.Millisecond):
	}
	_ = w.Release(ctx)
	select {
	case l := <-rl:
		if l.Fence() <= w.Fence() {
			t.Fatalf("read fence %d after write fence %d", l.Fence(), w.Fence())
		}
		_ = l.Release(ctx)
	case err := <-rerr:
		t.Fatal(err)
	case <-time.After(5 * time.Second):
		t.Fatal("the reader was not admitted after the writer released")
	}
	onlyFence(t, c)
}

// redistestClient opens a second client to c's server: another process's
// view (its own wake-up hub and queue).
func redistestClient(t *testing.T, c *redis.Client) *redis.Client {
	t.Helper()
	c2 := redis.NewClient(&redis.Options{Addr: c.Options().Addr})
	t.Cleanup(func() { _ = c2.Close() })
	return c2
}

func TestCrashedWaitingWriterClaimExpires(t *testing.T) {
	_, c := startRedis(t)
	ctx := context.Background()
	name := uniqueName(t)
	m := newRW(t, c, name)
	r1, err := m.TryRLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A writer's refused attempt, then its process dies: the claim stays.
	reply, err := scripts.RWAcquire.Run(ctx, c, []string{rwKey(name), "redlease:fence"}, "dead-token", 300, "write", "dead-claim").Result()
	if err != nil {
		t.Fatal(err)
	}
	if arr, _ := reply.([]any); len(arr) != 4 || arr[0] != int64(0) {
		t.Fatalf("crashed writer's attempt: %v, want refused", reply)
	}
	if _, err := m.TryRLock(ctx); !errors.Is(err, rwmutex.ErrLocked) {
		t.Fatalf("TryRLock behind a claim: %v, want ErrLocked", err)
	}
	start := time.Now()
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	r2, err := m.RLock(actx)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("readers waited %v for a dead writer's claim (TTL 300ms)", d)
	}
	_ = r1.Release(ctx)
	_ = r2.Release(ctx)
	onlyFence(t, c)
}

func TestCrashedReaderExpires(t *testing.T) {
	_, c := startRedis(t)
	ctx := context.Background()
	name := uniqueName(t)
	crashed := newRW(t, c, name, mutex.WithTTL(300*time.Millisecond), mutex.WithAutoRenew(false))
	r, err := crashed.TryRLock(ctx) // abandoned: never released
	if err != nil {
		t.Fatal(err)
	}
	m := newRW(t, c, name, slow)
	start := time.Now()
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	w, err := m.Lock(actx)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("waited %v for an expired reader", d)
	}
	<-r.Lost()
	if !errors.Is(r.Err(), lease.ErrExpired) {
		t.Fatalf("crashed lease: %v, want ErrExpired", r.Err())
	}
	if w.Fence() <= r.Fence() {
		t.Fatalf("write fence %d not above read fence %d", w.Fence(), r.Fence())
	}
	_ = w.Release(ctx)
	onlyFence(t, c)
}

func TestFencesIncrease(t *testing.T) {
	_, c := startRedis(t)
	ctx := context.Background()
	m := newRW(t, c, uniqueName(t))
	var prev int64
	var readers []*lease.Lease
	for i := 0; i < 12; i++ {
		var l *lease.Lease
		var err error
		if i%4 == 3 {
			for _, r := range readers {
				_ = r.Release(ctx)
			}
			readers = nil
			l, err = m.TryLock(ctx)
		} else {
			l, err = m.TryRLock(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
		if l.Fence() <= prev {
			t.Fatalf("fence %d after %d", l.Fence(), prev)
		}
		prev = l.Fence()
		if i%4 == 3 {
			_ = l.Release(ctx)
		} else {
			readers = append(readers, l)
		}
	}
	for _, r := range readers {
		_ = r.Release(ctx)
	}
	onlyFence(t, c)
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

// TestLostReplyRetry runs every script twice, as go-redis does when a reply
// is lost: the retry finds its own field and returns its fence.
func TestLostReplyRetry(t *testing.T) {
	s, _ := startRedis(t)
	c := s.Client(t)
	c.AddHook(twiceHook{})
	ctx := context.Background()
	m := newRW(t, c, uniqueName(t))
	for _, write := range []bool{false, true} {
		var l *lease.Lease
		var err error
		if write {
			l, err = m.TryLock(ctx)
		} else {
			l, err = m.TryRLock(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
		vals, err := c.HGetAll(ctx, rwKey(m.Name())).Result()
		if err != nil || len(vals) != 1 {
			t.Fatalf("holds %v (%v), want exactly 1", vals, err)
		}
		kind := "r:"
		if write {
			kind = "w:"
		}
		want := fmt.Sprintf("%d:", l.Fence())
		if v := vals[kind+l.Token()]; len(v) < len(want) || v[:len(want)] != want {
			t.Fatalf("field %q, want fence %d", v, l.Fence())
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
		if err := l.Release(ctx); !errors.Is(err, lease.ErrNotHeld) {
			t.Fatalf("doubled Release: %v, want ErrNotHeld", err)
		}
	}
	onlyFence(t, c)
}

func TestCancelLeavesNothing(t *testing.T) {
	_, c := startRedis(t)
	ctx := context.Background()
	m := newRW(t, c, uniqueName(t))
	r, err := m.TryRLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	actx, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
	defer cancel()
	if _, err := m.Lock(actx); !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, rwmutex.ErrLocked) {
		t.Fatalf("got %v, want DeadlineExceeded and ErrLocked", err)
	}
	if ok, _ := c.HExists(ctx, rwKey(m.Name()), "want").Result(); ok {
		t.Fatal("a writer that gave up left its claim")
	}
	// Readers are admitted at once again.
	r2, err := m.TryRLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done, cancel2 := context.WithCancel(ctx)
	cancel2()
	for _, f := range []func(context.Context) (*lease.Lease, error){m.Lock, m.RLock, m.TryLock, m.TryRLock} {
		if _, err := f(done); !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want Canceled", err)
		}
	}
	if n, _ := c.HLen(ctx, rwKey(m.Name())).Result(); n != 2 {
		t.Fatalf("%d fields, want 2", n)
	}
	_ = r.Release(ctx)
	_ = r2.Release(ctx)
	onlyFence(t, c)
}

func TestReleaseAdmitsQueuedReaders(t *testing.T) {
	_, c := startRedis(t)
	ctx := context.Background()
	m := newRW(t, c, uniqueName(t), slow)
	w, err := m.TryLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const n = 4
	got := make(chan *lease.Lease, n)
	errs := make(chan error, n)
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for i := 0; i < n; i++ {
		go func() {
			l, err := m.RLock(actx)
			if err != nil {
				errs <- err
				return
			}
			got <- l
		}()
	}
	time.Sleep(200 * time.Millisecond) // all queued
	start := time.Now()
	_ = w.Release(ctx)
	var ls []*lease.Lease
	for i := 0; i < n; i++ {
		select {
		case l := <-got:
			ls = append(ls, l)
		case err := <-errs:
			t.Fatal(err)
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of %d readers admitted after the writer's release", i, n)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("admission took %v", d)
	}
	for _, l := range ls {
		_ = l.Release(ctx)
	}
	onlyFence(t, c)
}

func TestRenewAndProlong(t *testing.T) {
	_, c := startRedis(t)
	ctx := context.Background()
	m := newRW(t, c, uniqueName(t), mutex.WithTTL(150*time.Millisecond))
	r, err := m.TryRLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if r.Err() != nil {
		t.Fatalf("renewed lease ended: %v", r.Err())
	}
	if _, err := m.TryLock(ctx); !errors.Is(err, rwmutex.ErrLocked) {
		t.Fatalf("got %v, want ErrLocked while a reader renews", err)
	}
	if err := r.Extend(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	if d, _ := r.TTL(ctx); d < time.Second {
		t.Fatalf("TTL after Extend %v", d)
	}
	if err := r.Refresh(ctx, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if d, _ := r.TTL(ctx); d > 100*time.Millisecond {
		t.Fatalf("TTL after Refresh %v", d)
	}
	if ok, err := r.Owned(ctx); !ok || err != nil {
		t.Fatalf("Owned: %v %v", ok, err)
	}
	_ = r.Release(ctx)
	onlyFence(t, c)
}

func TestGuard(t *testing.T) {
	_, c := startRedis(t)
	ctx := context.Background()
	m := newRW(t, c, uniqueName(t))
	data := "{" + m.Name() + "}:data"
	r, err := m.TryRLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Guard(ctx, func(redis.Pipeliner) error { return nil }); !errors.Is(err, rwmutex.ErrInvalid) {
		t.Fatalf("Guard on a read lease: %v, want ErrInvalid", err)
	}
	_ = r.Release(ctx)
	w, err := m.TryLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Guard(ctx, func(p redis.Pipeliner) error { return p.Set(ctx, data, "1", 0).Err() }); err != nil {
		t.Fatalf("Guard on a write lease: %v", err)
	}
	if v, _ := c.Get(ctx, data).Result(); v != "1" {
		t.Fatalf("guarded write: %q, want 1", v)
	}
	// The write field expired on the server's clock but is not yet purged:
	// Guard writes nothing.
	field := "w:" + w.Token()
	now, err := c.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	stale := fmt.Sprintf("%d:0:%d", w.Fence(), now.UnixMilli()-1000)
	if err := c.HSet(ctx, rwKey(m.Name()), field, stale).Err(); err != nil {
		t.Fatal(err)
	}
	if err := w.Guard(ctx, func(p redis.Pipeliner) error { return p.Set(ctx, data, "2", 0).Err() }); !errors.Is(err, lease.ErrNotHeld) {
		t.Fatalf("Guard on an expired write field: %v, want ErrNotHeld", err)
	}
	if v, _ := c.Get(ctx, data).Result(); v != "1" {
		t.Fatalf("data %q after a refused Guard, want 1", v)
	}
	<-w.Lost()
	_ = w.Release(ctx)
	if w, err = m.TryLock(ctx); err != nil { // the stale field no longer counts
		t.Fatal(err)
	}
	// The write hold disappears behind the lease's back: Guard writes nothing.
	if err := c.HDel(ctx, rwKey(m.Name()), "w:"+w.Token()).Err(); err != nil {
		t.Fatal(err)
	}
	if err := w.Guard(ctx, func(p redis.Pipeliner) error { return p.Set(ctx, data, "2", 0).Err() }); !errors.Is(err, lease.ErrNotHeld) {
		t.Fatalf("Guard after the hold was lost: %v, want ErrNotHeld", err)
	}
	if v, _ := c.Get(ctx, data).Result(); v != "1" {
		t.Fatalf("data %q after a refused Guard, want 1", v)
	}
	<-w.Lost()
	_ = w.Release(ctx)
	_ = c.Del(ctx, data).Err()
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
		lock   string
		opts   []mutex.Option
	}{
		{"empty name", c, "", nil},
		{"nil client", nil, "x", nil},
		{"typed nil client", nilClient, "x", nil},
		{"ring", ring, "x", nil},
		{"token", c, "x", []mutex.Option{mutex.WithToken("x")}},
		{"replicas", c, "x", []mutex.Option{mutex.WithReplicas(1, time.Second)}},
		{"ttl", c, "x", []mutex.Option{mutex.WithTTL(time.Millisecond)}},
		{"nil option", c, "x", []mutex.Option{nil}},
	}
	for _, tc := range cases {
		if _, err := rwmutex.New(tc.client, tc.lock, tc.opts...); !errors.Is(err, rwmutex.ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", tc.name, err)
		}
	}
	m := newRW(t, c, uniqueName(t))
	var nilCtx context.Context
	for _, f := range []func(context.Context) (*lease.Lease, error){m.Lock, m.RLock, m.TryLock, m.TryRLock} {
		if _, err := f(nilCtx); !errors.Is(err, rwmutex.ErrInvalid) {
			t.Errorf("nil ctx: %v, want ErrInvalid", err)
		}
	}
	if rwmutex.ErrInvalid != lease.ErrInvalid || rwmutex.ErrInvalid != mutex.ErrInvalid {
		t.Error("ErrInvalid is not the module's one value")
	}
}

// TestLostReplyCleanup loses the reply of an acquisition that ran: the
// attempt releases its hold by its token, so nothing stays held.
func TestLostReplyCleanup(t *testing.T) {
	s, _ := startRedis(t)
	c := s.Client(t)
	h := &loseOnce{}
	c.AddHook(h)
	ctx := context.Background()
	m := newRW(t, c, uniqueName(t))
	if err := scripts.RWAcquire.Load(ctx, c).Err(); err != nil { // no NOSCRIPT to hit
		t.Fatal(err)
	}
	for _, try := range []func(context.Context) (*lease.Lease, error){m.TryLock, m.TryRLock} {
		h.arm()
		if _, err := try(ctx); err == nil || errors.Is(err, rwmutex.ErrLocked) {
			t.Fatalf("got %v, want the lost reply's error", err)
		}
		onlyFence(t, c)
	}
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
