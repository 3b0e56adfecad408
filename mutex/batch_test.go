package mutex_test

// Tests of coalesced script calls (internal/batch): concurrent TryLock and
// Release calls of one client go out in pipelines, each keeping its own ctx,
// reply and the exactly-once guarantees.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/history"
	"github.com/redlease/redlease/mutex"
)

// chaos loses script replies at random, alone or in a pipeline: with
// probability lose/2 a call never runs, with lose/2 it runs and its reply is
// lost; with probability twice a call (or a whole pipeline, as go-redis
// retries it) runs twice.
type chaos struct {
	mu          sync.Mutex
	rnd         *rand.Rand
	lose, twice float64
}

func (c *chaos) draw() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rnd.Float64()
}

func (c *chaos) single(ctx context.Context, cmd redis.Cmder, next redis.ProcessHook) error {
	x := c.draw()
	switch {
	case x < c.lose/2:
		cmd.SetErr(errLost)
		return errLost
	case x < c.lose:
		_ = next(ctx, cmd)
		cmd.SetErr(errLost)
		return errLost
	case x < c.lose+c.twice:
		return runTwice(ctx, cmd, next)
	}
	return next(ctx, cmd)
}

func (c *chaos) pipeline(ctx context.Context, cmds []redis.Cmder, next redis.ProcessPipelineHook) error {
	var send, lost []redis.Cmder
	for _, cmd := range cmds {
		x := c.draw()
		if x >= c.lose/2 {
			send = append(send, cmd)
		}
		if x < c.lose {
			lost = append(lost, cmd)
		}
	}
	var err error
	if len(send) > 0 {
		err = next(ctx, send)
		if c.draw() < c.twice {
			err = next(ctx, send)
		}
	}
	for _, cmd := range lost {
		cmd.SetErr(errLost)
	}
	if err == nil && len(lost) > 0 {
		err = errLost
	}
	return err
}

// randomCtx returns a ctx that ends after a random short time, or never.
func randomCtx(rnd *rand.Rand) (context.Context, context.CancelFunc) {
	if rnd.IntN(2) == 0 {
		return context.WithCancel(context.Background())
	}
	return context.WithTimeout(context.Background(), time.Duration(rnd.IntN(400))*time.Microsecond)
}

// TestBatchChaos: 32 goroutines of one client TryLock and Release 8 names
// while script replies are lost at random (before or after the script ran,
// alone or in a pipeline), calls and pipelines run twice, and ctxs end at
// random: no two leases of a name overlap, fences increase per name, no key
// is left without a TTL, and none is left after it.
func TestBatchChaos(t *testing.T) {
	s, check := startRedis(t)
	loadScripts(t, s)
	c, h := hookedClient(t, s.Addr, false)
	h.chaos = &chaos{rnd: rand.New(rand.NewPCG(1, 2)), lose: 0.1, twice: 0.05}
	const ttl, workers, iters, names = time.Second, 32, 40, 8
	base := uniqueName(t)
	var rec history.Recorder
	var wg sync.WaitGroup
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(g), 7))
			for range iters {
				name := fmt.Sprintf("%s-%d", base, rnd.IntN(names))
				m, err := mutex.New(c, name, mutex.WithTTL(ttl), mutex.WithAutoRenew(false))
				if err != nil {
					t.Error(err)
					return
				}
				ctx, cancel := randomCtx(rnd)
				l, err := m.TryLock(ctx)
				cancel()
				if err != nil {
					continue // locked, lost reply or ctx: may have run, cleaned up by the protocol
				}
				sec := rec.Begin(fmt.Sprint(g), name, l.Fence())
				time.Sleep(time.Duration(rnd.IntN(300)) * time.Microsecond)
				end := time.Now()
				if vu := l.ValidUntil(); vu.Before(end) {
					end = vu
				}
				sec.EndAt(end)
				ctx, cancel = randomCtx(rnd)
				_ = l.Release(ctx)
				cancel()
			}
		}()
	}
	wg.Wait()

	ivs := rec.Intervals()
	if vs := history.CheckOverlaps(ivs); len(vs) > 0 {
		t.Fatalf("%d overlaps, first: %v", len(vs), vs[0])
	}
	byName := map[string][]history.Interval{}
	for _, iv := range ivs {
		if iv.End.After(iv.Start) {
			byName[iv.Name] = append(byName[iv.Name], iv)
		}
	}
	for name, list := range byName {
		slices.SortFunc(list, func(a, b history.Interval) int { return a.Start.Compare(b.Start) })
		for i := 1; i < len(list); i++ {
			if list[i].Fence <= list[i-1].Fence {
				t.Fatalf("%s: fence %d after %d", name, list[i].Fence, list[i-1].Fence)
			}
		}
	}
	ctx := context.Background()
	for i := range names {
		key := lockKeyOf(fmt.Sprintf("%s-%d", base, i))
		if d, err := check.PTTL(ctx, key).Result(); err != nil || d == -1 || d > ttl {
			t.Fatalf("%s: PTTL %v, %v; want absent or within the TTL", key, d, err)
		}
	}
	deadline := time.Now().Add(ttl + 5*time.Second)
	for i := range names {
		key := lockKeyOf(fmt.Sprintf("%s-%d", base, i))
		for check.Exists(ctx, key).Val() != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%s still exists after its TTL", key)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	t.Logf("%d leases, %d pipelines, %d acquire and %d release calls", len(ivs), h.pipelineCount(), h.count("acquire"), h.count("release"))
	if len(ivs) == 0 || h.pipelineCount() == 0 {
		t.Fatalf("harness: %d leases, %d pipelines: the test tested nothing", len(ivs), h.pipelineCount())
	}
}

// TestBatchLoneCallerSendsNoPipeline: TryLock and Release one after the
// other send each script alone.
func TestBatchLoneCallerSendsNoPipeline(t *testing.T) {
	s, _ := startRedis(t)
	loadScripts(t, s)
	c, h := hookedClient(t, s.Addr, false)
	ctx := context.Background()
	for range 20 {
		l, err := newMutex(t, c, uniqueName(t), mutex.WithAutoRenew(false)).TryLock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if a, r, p := h.count("acquire"), h.count("release"), h.pipelineCount(); a != 20 || r != 20 || p != 0 {
		t.Fatalf("got %d acquire, %d release calls, %d pipelines; want 20, 20, 0", a, r, p)
	}
}

// holdSenders starts two TryLocks whose acquire calls are held in h until
// the returned release is called, so that both senders of the client's
// batcher (internal/batch) are busy and later calls queue. done receives the
// two TryLock+Release results.
func holdSenders(t *testing.T, c *redis.Client, h *faultHook) (release func(), done <-chan error) {
	t.Helper()
	gate := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release)
	out := make(chan error, 2)
	for i := 0; i < 2; i++ {
		entered := make(chan struct{})
		h.once("acquire", func(ctx context.Context, cmd redis.Cmder, next redis.ProcessHook) error {
			close(entered)
			select {
			case <-gate:
			case <-time.After(faultWait):
			}
			return next(ctx, cmd)
		})
		m := newMutex(t, c, uniqueName(t), mutex.WithAutoRenew(false))
		go func() {
			l, err := m.TryLock(context.Background())
			if err == nil {
				err = l.Release(context.Background())
			}
			out <- err
		}()
		recv(t, entered, fmt.Sprintf("held acquire %d", i+1))
	}
	return release, out
}

// TestBatchCanceledWhileQueuedSendsNothing: a TryLock whose ctx ends while
// its client's senders are busy returns ctx.Err() and sends nothing
// (internal/batch's own test makes sure the call was queued).
func TestBatchCanceledWhileQueuedSendsNothing(t *testing.T) {
	s, check := startRedis(t)
	loadScripts(t, s)
	c, h := hookedClient(t, s.Addr, false)
	unblock, done := holdSenders(t, c, h)

	name := uniqueName(t)
	ctx, cancel := context.WithCancel(context.Background())
	canceled := make(chan error, 1)
	go func() {
		_, err := newMutex(t, c, name).TryLock(ctx)
		canceled <- err
	}()
	time.Sleep(20 * time.Millisecond) // lets it queue; if not, it sends nothing all the same
	cancel()
	if err := recv(t, canceled, "the canceled TryLock"); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	unblock()
	for i := 0; i < 2; i++ {
		if err := recv(t, done, "a held TryLock"); err != nil {
			t.Fatal(err)
		}
	}
	if n := h.count("acquire"); n != 2 {
		t.Fatalf("got %d acquire calls, want 2 (the canceled one sent nothing)", n)
	}
	if n := check.Exists(context.Background(), lockKeyOf(name)).Val(); n != 0 {
		t.Fatal("the canceled TryLock's key exists")
	}
}

// TestBatchInFlightCleanupAfterAcquire: a TryLock whose ctx ends while its
// acquire is in a pipeline in flight returns, and the release that undoes
// the acquisition (which may have run) is sent only after that pipeline is
// done. Sent at once on the other connection, it reached Redis before the
// acquire, found nothing, and the acquire then left the key held by nobody
// until its TTL.
func TestBatchInFlightCleanupAfterAcquire(t *testing.T) {
	s, check := startRedis(t)
	loadScripts(t, s)
	c, h := hookedClient(t, s.Addr, false)
	unblock, done := holdSenders(t, c, h)

	// Two more TryLocks queue; the first sender to finish sends them as one
	// pipeline, where x's acquire is held.
	xEntered, xGate := make(chan struct{}), make(chan struct{})
	var xOnce sync.Once
	letX := func() { xOnce.Do(func() { close(xGate) }) }
	t.Cleanup(letX)
	h.once("acquire", func(ctx context.Context, cmd redis.Cmder, next redis.ProcessHook) error {
		close(xEntered)
		select {
		case <-xGate:
		case <-time.After(faultWait):
		}
		return next(ctx, cmd)
	})
	x, y := uniqueName(t), uniqueName(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	xDone := make(chan error, 1)
	go func() {
		l, err := newMutex(t, c, x, mutex.WithAutoRenew(false)).TryLock(ctx)
		if err == nil {
			_ = l.Release(context.Background())
		}
		xDone <- err
	}()
	time.Sleep(20 * time.Millisecond) // x queues first
	yDone := make(chan error, 1)
	go func() {
		l, err := newMutex(t, c, y, mutex.WithAutoRenew(false)).TryLock(context.Background())
		if err == nil {
			err = l.Release(context.Background())
		}
		yDone <- err
	}()
	time.Sleep(20 * time.Millisecond)
	unblock() // the held acquires end; a sender sends x and y together
	recv(t, xEntered, "x's acquire in the pipeline")
	cancel() // x's caller leaves while its acquire is in flight
	time.Sleep(50 * time.Millisecond)
	letX()
	if err := recv(t, xDone, "x's TryLock"); !errors.Is(err, context.Canceled) {
		t.Fatalf("x: got %v, want context.Canceled", err)
	}
	for i := 0; i < 2; i++ {
		if err := recv(t, done, "a held TryLock"); err != nil {
			t.Fatal(err)
		}
	}
	if err := recv(t, yDone, "y's TryLock"); err != nil {
		t.Fatal(err)
	}
	if h.pipelineCount() < 1 {
		t.Fatal("harness: x and y were not sent in a pipeline")
	}
	if n := check.Exists(context.Background(), lockKeyOf(x)).Val(); n != 0 {
		t.Fatal("x's key is held by nobody: the release that undoes its acquisition ran before it")
	}
}
