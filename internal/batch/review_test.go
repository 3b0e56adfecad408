package batch

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/internal/scripts"
)

// countSrc counts its runs in KEYS[1] and returns ARGV[1]: each caller can
// tell its own reply, and how often its call ran.
const countSrc = `redis.call("INCR", KEYS[1])
return ARGV[1]`

var countScript = scripts.NewRaw(countSrc)

var errDropped = errors.New("review: hook dropped the call")

// chaos delays, reorders, drops (returns an error without sending) and
// panics in script calls and pipelines, at random.
type chaos struct {
	drop, panics float64
	dropped      atomic.Int64
	panicked     atomic.Int64
}

func (h *chaos) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *chaos) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() != "evalsha" && cmd.Name() != "eval" {
			return next(ctx, cmd)
		}
		if err := h.act(); err != nil {
			cmd.SetErr(err)
			return err
		}
		return next(ctx, cmd)
	}
}

func (h *chaos) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if err := h.act(); err != nil {
			return err // leaves the commands untouched: batch must not take that for a reply
		}
		// Reorder: each command must still get its own reply.
		shuffled := append([]redis.Cmder(nil), cmds...)
		rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		return next(ctx, shuffled)
	}
}

func (h *chaos) act() error {
	r := rand.Float64()
	switch {
	case r < h.panics:
		h.panicked.Add(1)
		panic("review: hook panicked")
	case r < h.panics+h.drop:
		h.dropped.Add(1)
		return errDropped
	case r < 0.5:
		time.Sleep(time.Duration(rand.IntN(1500)) * time.Microsecond)
	}
	return nil
}

// outcome is what one call's caller saw.
type outcome struct {
	key, val   string
	v          any
	err        error
	panicked   bool
	runsAtDone int64 // for an InFlight: the key's count right after Done
}

// reviewStress runs callers×calls calls on c with random short ctxs and
// checks every outcome against the counts Redis kept: a reply is the
// caller's own and its call ran exactly once; a call whose caller left while
// it was queued never runs; a call left in flight gets an InFlight whose
// Done closes, and it does not run after Done; nothing else fails except by
// the hook. strictCtx: a plain ctx error means nothing was sent (go-redis
// without ContextTimeoutEnabled checks ctx only before sending).
func reviewStress(t *testing.T, c redis.UniversalClient, h *chaos, callers, calls int, strictCtx bool) {
	t.Helper()
	prefix := fmt.Sprint("rv", rand.Int64(), "-")
	var (
		omu  sync.Mutex
		outs []outcome
		wg   sync.WaitGroup
	)
	for g := 0; g < callers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < calls; i++ {
				o := outcome{key: fmt.Sprint(prefix, g, "-", i), val: fmt.Sprint(g, ":", i, ":", rand.Int64())}
				ctx, cancel := context.Background(), context.CancelFunc(func() {})
				switch rand.IntN(4) {
				case 0:
					ctx, cancel = context.WithTimeout(ctx, time.Duration(rand.IntN(800))*time.Microsecond)
				case 1:
					ctx, cancel = context.WithCancel(ctx)
					d := time.Duration(rand.IntN(1500)) * time.Microsecond
					time.AfterFunc(d, cancel)
				}
				args := append(countScript.Head(nil, 1), o.key, o.val)
				func() {
					defer func() {
						if r := recover(); r != nil {
							o.panicked = true
						}
					}()
					o.v, o.err = Run(ctx, c, countScript, args)
				}()
				cancel()
				var f *InFlight
				if errors.As(o.err, &f) {
					select {
					case <-f.Done():
					case <-time.After(hangGuard):
						t.Errorf("call %s: InFlight.Done not closed after %v", o.key, hangGuard)
					}
					n, err := c.Get(context.Background(), o.key).Int64()
					if err != nil && !errors.Is(err, redis.Nil) {
						t.Errorf("get %s: %v", o.key, err)
					}
					o.runsAtDone = n
				}
				omu.Lock()
				outs = append(outs, o)
				omu.Unlock()
			}
		}()
	}
	wg.Wait()
	waitIdle(t, c)
	checkBatchers(t)

	var ok, inflight, queuedLeft, other int
	for _, o := range outs {
		n, err := c.Get(context.Background(), o.key).Int64()
		if err != nil && !errors.Is(err, redis.Nil) {
			t.Fatalf("get %s: %v", o.key, err)
		}
		var f *InFlight
		var ne net.Error
		switch {
		case o.panicked:
			other++
			if n > 1 {
				t.Errorf("call %s (panicked): ran %d times", o.key, n)
			}
		case o.err == nil:
			ok++
			if o.v != o.val {
				t.Errorf("call %s: got reply %v, want its own %s", o.key, o.v, o.val)
			}
			if n != 1 {
				t.Errorf("call %s succeeded but ran %d times", o.key, n)
			}
		case errors.As(o.err, &f):
			inflight++
			if !errors.Is(o.err, context.Canceled) && !errors.Is(o.err, context.DeadlineExceeded) {
				t.Errorf("call %s: InFlight wraps %v", o.key, f.err)
			}
			if n != o.runsAtDone || n > 1 {
				t.Errorf("call %s (left in flight): ran %d times at Done, %d in the end", o.key, o.runsAtDone, n)
			}
		case errors.Is(o.err, context.Canceled) || errors.Is(o.err, context.DeadlineExceeded):
			queuedLeft++
			if strictCtx && n != 0 {
				t.Errorf("call %s: %v (nothing sent) but ran %d times", o.key, o.err, n)
			}
			if n > 1 {
				t.Errorf("call %s: ran %d times", o.key, n)
			}
		case errors.Is(o.err, errDropped), errors.Is(o.err, ErrSenderPanicked), errors.As(o.err, &ne) && ne.Timeout():
			other++
			if errors.Is(o.err, errDropped) && n != 0 {
				// A dropped pipeline was never sent; a dropped lone call neither.
				t.Errorf("call %s: dropped but ran %d times", o.key, n)
			}
			if n > 1 {
				t.Errorf("call %s: ran %d times", o.key, n)
			}
		default:
			t.Errorf("call %s: unexpected error %v", o.key, o.err)
		}
	}
	t.Logf("%d calls: %d ok, %d left in flight, %d left before sending, %d failed by the hook (dropped %d, panicked %d)",
		len(outs), ok, inflight, queuedLeft, other, h.dropped.Load(), h.panicked.Load())
	if ok == 0 {
		t.Error("no call succeeded: the test exercised nothing")
	}
}

// checkBatchers checks the batcher registry when no call is in flight: no
// batcher is left for any client, and the idle list holds distinct
// batchers, each without client, sender or queued call.
func checkBatchers(t *testing.T) {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if len(batchers) != 0 {
		t.Errorf("%d batchers left with nothing in flight", len(batchers))
	}
	seen := map[*batcher]bool{}
	for _, b := range idle {
		if seen[b] {
			t.Error("a batcher is twice in the idle list")
		}
		seen[b] = true
		if b.client != nil || b.senders != 0 || len(b.queue) != 0 {
			t.Errorf("idle batcher: client %v, %d senders, %d queued", b.client, b.senders, len(b.queue))
		}
		for _, cl := range b.queue[:cap(b.queue)] {
			if cl != nil {
				t.Error("an idle batcher's queue still points to a call")
				break
			}
		}
		for _, cl := range b.spare[:cap(b.spare)] {
			if cl != nil {
				t.Error("an idle batcher's spare slice still points to a call")
				break
			}
		}
	}
}

func loadCount(t *testing.T, c redis.UniversalClient) {
	t.Helper()
	if err := c.ScriptLoad(context.Background(), countSrc).Err(); err != nil {
		t.Fatal(err)
	}
}

// TestReviewStressOwnReplies: 48 callers on one client, two senders (and one,
// and three), random ctx ends, a hook that delays, reorders, drops and
// panics: every caller gets its own reply, only for a call that ran once; a
// call dropped or left in the queue never runs; an InFlight's Done closes
// and its call does not run after it; no batcher is left behind.
func TestReviewStressOwnReplies(t *testing.T) {
	for _, n := range []int{2, 1, 3} {
		t.Run(fmt.Sprint("senders=", n), func(t *testing.T) {
			senders(t, n)
			s := redistest.Start(t)
			c := redis.NewClient(&redis.Options{Addr: s.Addr, DialTimeout: time.Second, ReadTimeout: 3 * time.Second, WriteTimeout: 3 * time.Second, PoolSize: 8})
			t.Cleanup(func() { _ = c.Close() })
			loadCount(t, c)
			h := &chaos{drop: 0.03, panics: 0.01}
			c.AddHook(h)
			reviewStress(t, c, h, 48, 40, true)
		})
	}
}

// TestReviewStressNoscript: the script is not loaded (and is flushed during
// the run), so batched calls take the NOSCRIPT fallback; replies stay the
// callers' own.
func TestReviewStressNoscript(t *testing.T) {
	s := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: s.Addr, DialTimeout: time.Second, ReadTimeout: 3 * time.Second, WriteTimeout: 3 * time.Second})
	t.Cleanup(func() { _ = c.Close() })
	h := &chaos{}
	c.AddHook(h)
	stop := make(chan struct{})
	flushed := make(chan struct{})
	go func() {
		defer close(flushed)
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
				_ = c.ScriptFlush(context.Background()).Err()
			}
		}
	}()
	defer func() { close(stop); <-flushed }()
	reviewStress(t, c, h, 32, 30, true)
}

// TestReviewStressContextTimeout: the same on a client with
// ContextTimeoutEnabled (a lone call's deadline reaches the socket; a batch
// runs without one) and a small pool.
func TestReviewStressContextTimeout(t *testing.T) {
	s := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: s.Addr, DialTimeout: time.Second, ReadTimeout: 3 * time.Second, WriteTimeout: 3 * time.Second,
		ContextTimeoutEnabled: true, PoolSize: 2})
	t.Cleanup(func() { _ = c.Close() })
	loadCount(t, c)
	h := &chaos{drop: 0.03, panics: 0.01}
	c.AddHook(h)
	reviewStress(t, c, h, 32, 30, false)
}

// TestReviewStressCluster: the same on a Redis Cluster client (a pipeline is
// split by slot and node); keys are spread over all masters and the script
// cache is cold on every node.
func TestReviewStressCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster")
	}
	cl := redistest.StartCluster(t, 3, 0)
	c := cl.Client(t)
	h := &chaos{drop: 0.03, panics: 0.01}
	c.AddHook(h)
	reviewStress(t, c, h, 32, 30, true)
}

// goexiter calls runtime.Goexit in the next pipeline once armed, as a hook
// calling t.FailNow (or anything that ends its goroutine) would.
type goexiter struct{ pipe atomic.Bool }

func (g *goexiter) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (g *goexiter) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (g *goexiter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if g.pipe.CompareAndSwap(true, false) {
			runtime.Goexit()
		}
		return next(ctx, cmds)
	}
}

// TestReviewBatchGoexitStrandsNobody: a hook that ends the sending
// goroutine with runtime.Goexit while a batch is sent (send's recover
// cannot stop it) must not strand the batch's callers, the calls queued
// meanwhile, an InFlight's Done, or the client's later calls.
func TestReviewBatchGoexitStrandsNobody(t *testing.T) {
	_, c, h := hooked(t)
	g := &goexiter{}
	c.AddHook(g)
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	entered, release := h.arm(false)
	defer release()
	first := runAsync(ctx, c, setArgs("first", "1"))
	waitFor(t, entered, "the first call")
	a := runAsync(ctx, c, setArgs("a", "a"))
	waitQueued(t, c, 1)
	bctx, bcancel := context.WithCancel(ctx)
	defer bcancel()
	b := runAsync(bctx, c, setArgs("b", "b"))
	waitQueued(t, c, 2)
	g.pipe.Store(true)
	pipeEntered, pipeRelease := h.arm(true)
	defer pipeRelease()
	release()
	if r := recv(t, first); r.err != nil || r.v != "1" {
		t.Fatalf("first call: got %v, %v", r.v, r.err)
	}
	waitFor(t, pipeEntered, "the batch's pipeline")
	bcancel() // b leaves while its call is in flight
	rb := recv(t, b)
	var f *InFlight
	if !errors.As(rb.err, &f) {
		t.Fatalf("b: got %v, %v; want InFlight", rb.v, rb.err)
	}
	late := runAsync(ctx, c, setArgs("late", "late")) // queued behind the batch
	waitQueued(t, c, 1)
	pipeRelease()
	if r := recv(t, a); !errors.Is(r.err, ErrSenderPanicked) {
		t.Fatalf("a: got %v, %v; want ErrSenderPanicked", r.v, r.err)
	}
	select {
	case <-f.Done():
	case <-ctx.Done():
		t.Fatal("b's InFlight.Done never closed")
	}
	if r := recv(t, late); r.err != nil || r.v != "late" {
		t.Fatalf("call queued meanwhile: got %v, %v", r.v, r.err)
	}
	if r := recv(t, runAsync(ctx, c, setArgs("later", "3"))); r.err != nil || r.v != "3" {
		t.Fatalf("later call: got %v, %v", r.v, r.err)
	}
	waitIdle(t, c)
}

// TestReviewClusterSlowMasterStallsNoOtherMaster: on Redis Cluster, while
// one master is stalled (CLIENT PAUSE, 1.5 s; the client's ReadTimeout is
// 2 s), calls whose keys live on the other masters still get their replies
// well within their 500 ms ctx, as they would sent alone with Do: a batch
// must not make them wait for the stalled master's calls.
func TestReviewClusterSlowMasterStallsNoOtherMaster(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster")
	}
	cl := redistest.StartCluster(t, 3, 0)
	c := cl.Client(t)
	ctx := context.Background()
	if err := c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		return m.ScriptLoad(ctx, countSrc).Err()
	}); err != nil {
		t.Fatal(err)
	}
	slow := cl.Masters()[0]
	var slowKeys, fastKeys []string
	for i := 0; len(slowKeys) < 64 || len(fastKeys) < 64; i++ {
		k := fmt.Sprint("hol-", i)
		m, err := c.MasterForKey(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if m.Options().Addr == slow.Addr {
			slowKeys = append(slowKeys, k)
		} else {
			fastKeys = append(fastKeys, k)
		}
	}
	admin := slow.Client(t)
	if err := admin.Do(ctx, "client", "pause", 1500, "all").Err(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var fastFailed, fastOK atomic.Int64
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 4; i++ {
				var k string
				slowCall := g%4 == 0
				if slowCall {
					k = slowKeys[(g*4+i)%len(slowKeys)]
				} else {
					k = fastKeys[(g*4+i)%len(fastKeys)]
				}
				cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
				v, err := Run(cctx, c, countScript, append(countScript.Head(nil, 1), k, k))
				cancel()
				if slowCall {
					continue
				}
				if err != nil || v != k {
					fastFailed.Add(1)
					t.Logf("call on a healthy master: %v, %v", v, err)
				} else {
					fastOK.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	waitIdle(t, c)
	t.Logf("healthy masters: %d ok, %d failed", fastOK.Load(), fastFailed.Load())
	if fastFailed.Load() > 0 {
		t.Errorf("%d calls on healthy masters failed while another master stalled", fastFailed.Load())
	}
}
