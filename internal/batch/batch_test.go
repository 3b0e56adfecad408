package batch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/redlease/redlease/internal/leaktest"
	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/internal/scripts"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, leaktest.Options()...) }

// hangGuard bounds every wait; reaching it means a hang, not slowness.
const hangGuard = 10 * time.Second

// setScript sets KEYS[1] to ARGV[1] and returns ARGV[1]; ARGV[1] == "fail"
// makes it return a script error instead.
const setSrc = `if ARGV[1] == "fail" then return redis.error_reply("ERR asked to fail") end
redis.call("SET", KEYS[1], ARGV[1])
return ARGV[1]`

var setScript = scripts.NewRaw(setSrc)

func setArgs(key, val string) []any {
	return append(setScript.Head(nil, 1), key, val)
}

// hook counts single commands and pipelines, and holds the next single
// command back until release is closed when block is armed.
type hook struct {
	mu        sync.Mutex
	singles   int
	pipelines int
	piped     int // commands sent in pipelines
	block     chan struct{}
	entered   chan struct{}
	blockPipe bool // block the next pipeline instead of the next single command
}

func (h *hook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *hook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() != "evalsha" && cmd.Name() != "eval" {
			return next(ctx, cmd)
		}
		h.mu.Lock()
		h.singles++
		h.mu.Unlock()
		h.hold(false)
		return next(ctx, cmd)
	}
}

func (h *hook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.mu.Lock()
		h.pipelines++
		h.piped += len(cmds)
		h.mu.Unlock()
		h.hold(true)
		return next(ctx, cmds)
	}
}

// hold waits for the armed block, once, if it is for this kind of call.
func (h *hook) hold(pipe bool) {
	h.mu.Lock()
	block, entered := h.block, h.entered
	if block == nil || h.blockPipe != pipe {
		h.mu.Unlock()
		return
	}
	h.block, h.entered = nil, nil
	h.mu.Unlock()
	close(entered)
	select {
	case <-block:
	case <-time.After(hangGuard):
	}
}

// arm holds the next call (a pipeline if pipe) until the returned release is
// called; entered is closed when the call reaches the hook.
func (h *hook) arm(pipe bool) (entered <-chan struct{}, release func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.block, h.entered, h.blockPipe = make(chan struct{}), make(chan struct{}), pipe
	b, e := h.block, h.entered
	var once sync.Once
	return e, func() { once.Do(func() { close(b) }) }
}

func (h *hook) counts() (singles, pipelines, piped int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.singles, h.pipelines, h.piped
}

// hooked starts a server and a hooked client; the batcher sends one call or
// batch at a time (see senders) unless the test says otherwise.
func hooked(t *testing.T) (*redistest.Server, *redis.Client, *hook) {
	t.Helper()
	senders(t, 1)
	s := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: s.Addr, DialTimeout: time.Second, ReadTimeout: 3 * time.Second, WriteTimeout: 3 * time.Second})
	if err := c.ScriptLoad(context.Background(), setSrc).Err(); err != nil {
		t.Fatal(err)
	}
	h := &hook{}
	c.AddHook(h)
	t.Cleanup(func() { _ = c.Close() })
	return s, c, h
}

// senders sets maxSenders to n for the rest of the test.
func senders(t *testing.T, n int) {
	mu.Lock()
	old := maxSenders
	maxSenders = n
	mu.Unlock()
	t.Cleanup(func() {
		mu.Lock()
		maxSenders = old
		mu.Unlock()
	})
}

// queueLen returns how many calls of c wait in its queue.
func queueLen(c redis.UniversalClient) int {
	mu.Lock()
	defer mu.Unlock()
	n := 0
	for _, b := range batchers {
		if b.client == c {
			n += len(b.queue)
		}
	}
	return n
}

// busy reports whether c has a batcher (a call or batch in flight). mu is
// held.
func busy(c redis.UniversalClient) bool {
	for _, b := range batchers {
		if b.client == c {
			return true
		}
	}
	return false
}

func waitQueued(t *testing.T, c redis.UniversalClient, n int) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for queueLen(c) < n {
		if time.Now().After(deadline) {
			t.Fatalf("harness: %d of %d calls queued", queueLen(c), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(hangGuard):
		t.Fatalf("harness: timed out waiting for %s", what)
	}
}

type result struct {
	v   any
	err error
}

func runAsync(ctx context.Context, c redis.UniversalClient, args []any) <-chan result {
	ch := make(chan result, 1)
	go func() {
		v, err := Run(ctx, c, setScript, args)
		ch <- result{v, err}
	}()
	return ch
}

func recv(t *testing.T, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(hangGuard):
		t.Fatal("harness: timed out waiting for a call")
	}
	return result{}
}

// TestLoneCallerSendsNoPipeline: calls one after the other go out alone, with
// Do, and leave no batcher behind.
func TestLoneCallerSendsNoPipeline(t *testing.T) {
	_, c, h := hooked(t)
	ctx := context.Background()
	for i := 0; i < 20; i++ {
		v, err := Run(ctx, c, setScript, setArgs(fmt.Sprint("lone-", i), "v"))
		if err != nil || v != "v" {
			t.Fatalf("call %d: got %v, %v; want v", i, v, err)
		}
	}
	singles, pipelines, _ := h.counts()
	if singles != 20 || pipelines != 0 {
		t.Fatalf("got %d single calls and %d pipelines, want 20 and 0", singles, pipelines)
	}
	mu.Lock()
	defer mu.Unlock()
	if busy(c) {
		t.Fatal("a batcher is left for an idle client")
	}
}

// TestQueuedCallsShareOnePipeline: calls queued behind one in flight go out
// as one pipeline, each with its own reply or error.
func TestQueuedCallsShareOnePipeline(t *testing.T) {
	s, c, h := hooked(t)
	ctx := context.Background()
	entered, release := h.arm(false)
	defer release()
	first := runAsync(ctx, c, setArgs("first", "1"))
	waitFor(t, entered, "the first call")
	const n = 10
	var chans []<-chan result
	for i := 0; i < n; i++ {
		val := fmt.Sprint("v", i)
		if i == 3 {
			val = "fail"
		}
		chans = append(chans, runAsync(ctx, c, setArgs(fmt.Sprint("q-", i), val)))
	}
	waitQueued(t, c, n)
	release()
	if r := recv(t, first); r.err != nil || r.v != "1" {
		t.Fatalf("first call: got %v, %v", r.v, r.err)
	}
	for i, ch := range chans {
		r := recv(t, ch)
		if i == 3 {
			if r.err == nil || !strings.Contains(r.err.Error(), "asked to fail") {
				t.Fatalf("call %d: got %v, %v; want its script error", i, r.v, r.err)
			}
			continue
		}
		if want := fmt.Sprint("v", i); r.err != nil || r.v != want {
			t.Fatalf("call %d: got %v, %v; want %s", i, r.v, r.err, want)
		}
	}
	singles, pipelines, piped := h.counts()
	if singles != 1 || pipelines != 1 || piped != n {
		t.Fatalf("got %d single calls, %d pipelines of %d calls; want 1, 1 of %d", singles, pipelines, piped, n)
	}
	check := s.Client(t)
	if v, err := check.Get(ctx, "q-9").Result(); err != nil || v != "v9" {
		t.Fatalf("q-9 = %q, %v", v, err)
	}
}

// TestCanceledWhileQueuedSendsNothing: a queued caller whose ctx ends gets
// ctx.Err() at once and its call is never sent; the calls queued after it
// still go out.
func TestCanceledWhileQueuedSendsNothing(t *testing.T) {
	s, c, h := hooked(t)
	ctx := context.Background()
	entered, release := h.arm(false)
	defer release()
	first := runAsync(ctx, c, setArgs("first", "1"))
	waitFor(t, entered, "the first call")

	cctx, cancel := context.WithCancel(ctx)
	canceled := runAsync(cctx, c, setArgs("canceled", "x"))
	waitQueued(t, c, 1)
	later := runAsync(ctx, c, setArgs("later", "y"))
	waitQueued(t, c, 2)
	cancel()
	if r := recv(t, canceled); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("canceled call: got %v, %v; want context.Canceled", r.v, r.err)
	}
	release()
	if r := recv(t, first); r.err != nil {
		t.Fatalf("first call: %v", r.err)
	}
	if r := recv(t, later); r.err != nil || r.v != "y" {
		t.Fatalf("later call: got %v, %v", r.v, r.err)
	}
	if n, err := s.Client(t).Exists(ctx, "canceled").Result(); err != nil || n != 0 {
		t.Fatalf("the canceled call ran: EXISTS = %d, %v", n, err)
	}
	if singles, pipelines, _ := h.counts(); singles != 2 || pipelines != 0 {
		t.Fatalf("got %d single calls and %d pipelines, want 2 and 0 (the later call went alone)", singles, pipelines)
	}
}

// TestCanceledInFlightReturnsAtOnce: a caller whose ctx ends while its batch
// is in flight returns ctx.Err() without waiting for the batch; the batch
// still runs for everyone in it.
func TestCanceledInFlightReturnsAtOnce(t *testing.T) {
	s, c, h := hooked(t)
	ctx := context.Background()
	entered, release := h.arm(false)
	first := runAsync(ctx, c, setArgs("first", "1"))
	waitFor(t, entered, "the first call")
	pipeEntered, pipeRelease := h.arm(true)
	defer pipeRelease()

	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a := runAsync(ctx, c, setArgs("a", "a"))
	waitQueued(t, c, 1)
	gone := runAsync(cctx, c, setArgs("gone", "g"))
	waitQueued(t, c, 2)
	release()
	waitFor(t, pipeEntered, "the pipeline")
	cancel()
	if r := recv(t, gone); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("canceled call: got %v, %v; want context.Canceled", r.v, r.err)
	}
	pipeRelease()
	for _, ch := range []<-chan result{first, a} {
		if r := recv(t, ch); r.err != nil {
			t.Fatal(r.err)
		}
	}
	// The batch ran it anyway: the caller must treat it as "may have run".
	if v, err := s.Client(t).Get(ctx, "gone").Result(); err != nil || v != "g" {
		t.Fatalf("gone = %q, %v; want the batch to have run it", v, err)
	}
}

// TestNoscriptInPipeline: after SCRIPT FLUSH every call of a pipeline gets
// NOSCRIPT; each is sent again alone with the EVAL fallback.
func TestNoscriptInPipeline(t *testing.T) {
	s, c, h := hooked(t)
	ctx := context.Background()
	if _, err := Run(ctx, c, setScript, setArgs("load", "l")); err != nil {
		t.Fatal(err)
	}
	entered, release := h.arm(false)
	defer release()
	first := runAsync(ctx, c, setArgs("first", "1"))
	waitFor(t, entered, "the first call")
	if err := s.Client(t).ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	var chans []<-chan result
	for i := 0; i < 5; i++ {
		chans = append(chans, runAsync(ctx, c, setArgs(fmt.Sprint("n-", i), fmt.Sprint(i))))
	}
	waitQueued(t, c, 5)
	release()
	if r := recv(t, first); r.err != nil || r.v != "1" {
		t.Fatalf("first call: got %v, %v", r.v, r.err)
	}
	for i, ch := range chans {
		if r := recv(t, ch); r.err != nil || r.v != fmt.Sprint(i) {
			t.Fatalf("call %d: got %v, %v", i, r.v, r.err)
		}
	}
	if _, pipelines, _ := h.counts(); pipelines != 1 {
		t.Fatalf("got %d pipelines, want 1", pipelines)
	}
}

// TestManyCallers: concurrent callers with random cancels all return, each
// with its own reply or ctx.Err(), and leave no batcher behind; with one
// sender at a time and with two.
func TestManyCallers(t *testing.T) {
	for _, n := range []int{1, 2} {
		t.Run(fmt.Sprintf("senders=%d", n), func(t *testing.T) { manyCallers(t, n) })
	}
}

func manyCallers(t *testing.T, n int) {
	_, c, _ := hooked(t)
	senders(t, n)
	var wg sync.WaitGroup
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration((g*7+i*13)%400)*time.Microsecond)
				val := fmt.Sprint(g, "-", i)
				v, err := Run(ctx, c, setScript, setArgs("k-"+val, val))
				cancel()
				if err == nil && v != val {
					t.Errorf("got %v, want %s", v, val)
				}
				var ne net.Error // a dial under the short deadline times out so
				timeout := errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
				if err != nil && !timeout {
					t.Errorf("call %s: %v", val, err)
				}
			}
		}()
	}
	wg.Wait()
	waitIdle(t, c) // batches of callers that left may still be in flight
}

// waitIdle waits until c has no batcher: every call or batch of it is done.
func waitIdle(t *testing.T, c redis.UniversalClient) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for {
		mu.Lock()
		inFlight := busy(c)
		mu.Unlock()
		if !inFlight {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("a batcher is left for an idle client")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestTwoSendersThenQueue: with two senders, a second call goes out at once
// while the first is in flight; calls arriving while both are in flight
// queue, and the first sender to finish sends them as one pipeline.
func TestTwoSendersThenQueue(t *testing.T) {
	_, c, h := hooked(t)
	senders(t, 2)
	ctx := context.Background()
	entered1, release1 := h.arm(false)
	defer release1()
	first := runAsync(ctx, c, setArgs("first", "1"))
	waitFor(t, entered1, "the first call")
	entered2, release2 := h.arm(false)
	defer release2()
	second := runAsync(ctx, c, setArgs("second", "2"))
	waitFor(t, entered2, "the second call, sent while the first is in flight")
	const n = 3
	var chans []<-chan result
	for i := 0; i < n; i++ {
		chans = append(chans, runAsync(ctx, c, setArgs(fmt.Sprint("q-", i), fmt.Sprint("v", i))))
	}
	waitQueued(t, c, n)
	release2()
	if r := recv(t, second); r.err != nil || r.v != "2" {
		t.Fatalf("second call: got %v, %v", r.v, r.err)
	}
	for i, ch := range chans {
		if r := recv(t, ch); r.err != nil || r.v != fmt.Sprint("v", i) {
			t.Fatalf("queued call %d: got %v, %v", i, r.v, r.err)
		}
	}
	release1()
	if r := recv(t, first); r.err != nil || r.v != "1" {
		t.Fatalf("first call: got %v, %v", r.v, r.err)
	}
	if singles, pipelines, piped := h.counts(); singles != 2 || pipelines != 1 || piped != n {
		t.Fatalf("got %d single calls and %d pipelines of %d calls; want 2, 1 and %d", singles, pipelines, piped, n)
	}
	waitIdle(t, c)
}

// TestExecFailureReachesEveryCall: when a batch's pipeline fails before any
// reply is read (here no connection: the client is closed), every call of
// the batch gets the failure. Before, go-redis left those commands with a
// nil reply and a nil error, which the batch passed on as a nil reply.
func TestExecFailureReachesEveryCall(t *testing.T) {
	_, c, h := hooked(t)
	ctx := context.Background()
	entered, release := h.arm(false)
	defer release()
	first := runAsync(ctx, c, setArgs("first", "1"))
	waitFor(t, entered, "the first call")
	a := runAsync(ctx, c, setArgs("a", "a"))
	waitQueued(t, c, 1)
	b := runAsync(ctx, c, setArgs("b", "b"))
	waitQueued(t, c, 2)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	release()
	recv(t, first) // closed under it: its error is go-redis's business
	for name, ch := range map[string]<-chan result{"a": a, "b": b} {
		r := recv(t, ch)
		if r.err == nil || !strings.Contains(r.err.Error(), "closed") {
			t.Errorf("call %s of the failed batch: got %v, %v; want the client's closed error", name, r.v, r.err)
		}
	}
}

// stub answers every command itself, so a benchmark measures the client side
// only.
type stub struct{}

func (stub) DialHook(next redis.DialHook) redis.DialHook { return next }
func (stub) ProcessHook(redis.ProcessHook) redis.ProcessHook {
	return func(_ context.Context, cmd redis.Cmder) error {
		cmd.(*redis.Cmd).SetVal(int64(1))
		return nil
	}
}
func (stub) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// BenchmarkLoneCall: what Run adds to a lone call (no round trip: the
// client's hook answers): direct is raw.Run, batched is Run.
func BenchmarkLoneCall(b *testing.B) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	c.AddHook(stub{})
	defer c.Close()
	ctx := context.Background()
	args := setArgs("k", "v")
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			_, _ = setScript.Run(ctx, c, args)
		}
	})
	b.Run("batched", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			_, _ = Run(ctx, c, setScript, args)
		}
	})
}
