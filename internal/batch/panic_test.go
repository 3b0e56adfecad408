package batch

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// panicker panics in the next single script call (or pipeline) once armed,
// as a user's faulty hook would.
type panicker struct{ single, pipe atomic.Bool }

func (p *panicker) DialHook(next redis.DialHook) redis.DialHook { return next }

func (p *panicker) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if (cmd.Name() == "evalsha" || cmd.Name() == "eval") && p.single.CompareAndSwap(true, false) {
			panic("hook panicked")
		}
		return next(ctx, cmd)
	}
}

func (p *panicker) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if p.pipe.CompareAndSwap(true, false) {
			panic("hook panicked")
		}
		return next(ctx, cmds)
	}
}

// runRecover runs Run, turning a panic into the panicked result.
func runRecover(ctx context.Context, c redis.UniversalClient, args []any) <-chan result {
	ch := make(chan result, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				ch <- result{v: r, err: errors.New("panicked")}
			}
		}()
		v, err := Run(ctx, c, setScript, args)
		ch <- result{v, err}
	}()
	return ch
}

// TestLoneSenderPanicStrandsNobody: a panic in a lone sender's call (a
// faulty hook) reaches its caller, and the calls queued meanwhile, and later
// ones, still go out: the client's batcher is not left busy forever.
func TestLoneSenderPanicStrandsNobody(t *testing.T) {
	_, c, h := hooked(t)
	p := &panicker{}
	c.AddHook(p)
	ctx := context.Background()
	entered, release := h.arm(false)
	defer release()
	p.single.Store(true)
	first := runRecover(ctx, c, setArgs("first", "1"))
	waitFor(t, entered, "the first call")
	queued := runAsync(ctx, c, setArgs("queued", "2"))
	waitQueued(t, c, 1)
	release()
	if r := recv(t, first); r.err == nil || r.v != "hook panicked" {
		t.Fatalf("first call: got %v, %v; want its panic", r.v, r.err)
	}
	if r := recv(t, queued); r.err != nil || r.v != "2" {
		t.Fatalf("queued call: got %v, %v", r.v, r.err)
	}
	if r := recv(t, runAsync(ctx, c, setArgs("later", "3"))); r.err != nil || r.v != "3" {
		t.Fatalf("later call: got %v, %v", r.v, r.err)
	}
}

// TestBatchPanicStrandsNobody: when the pipeline of a batch panics (a faulty
// hook), the process does not crash, every call of the batch gets
// ErrSenderPanicked at once, and later calls still go out.
func TestBatchPanicStrandsNobody(t *testing.T) {
	_, c, h := hooked(t)
	p := &panicker{}
	c.AddHook(p)
	ctx := context.Background()
	entered, release := h.arm(false)
	defer release()
	first := runAsync(ctx, c, setArgs("first", "1"))
	waitFor(t, entered, "the first call")
	leader := runRecover(ctx, c, setArgs("a", "a"))
	waitQueued(t, c, 1)
	other := runAsync(ctx, c, setArgs("b", "b"))
	waitQueued(t, c, 2)
	p.pipe.Store(true)
	release()
	if r := recv(t, first); r.err != nil || r.v != "1" {
		t.Fatalf("first call: got %v, %v", r.v, r.err)
	}
	if r := recv(t, leader); !errors.Is(r.err, ErrSenderPanicked) {
		t.Fatalf("first call of the batch: got %v, %v; want ErrSenderPanicked", r.v, r.err)
	}
	if r := recv(t, other); !errors.Is(r.err, ErrSenderPanicked) {
		t.Fatalf("other call of the batch: got %v, %v; want ErrSenderPanicked", r.v, r.err)
	}
	if r := recv(t, runAsync(ctx, c, setArgs("later", "3"))); r.err != nil || r.v != "3" {
		t.Fatalf("later call: got %v, %v", r.v, r.err)
	}
	if n := queueLen(c); n != 0 {
		t.Fatalf("%d calls left queued", n)
	}
}

// TestBatchPanicAfterLeaderLeft: when the pipeline of a batch panics after
// its leader's ctx ended (the leader returned ctx.Err()), the panic reaches
// no caller and does not crash the process: the calls of the batch still
// waiting get ErrSenderPanicked, and later calls still go out.
func TestBatchPanicAfterLeaderLeft(t *testing.T) {
	_, c, h := hooked(t)
	p := &panicker{}
	c.AddHook(p) // after h: the pipeline is held in h, then panics in p
	ctx := context.Background()
	entered, release := h.arm(false)
	defer release()
	first := runAsync(ctx, c, setArgs("first", "1"))
	waitFor(t, entered, "the first call")
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	leader := runRecover(lctx, c, setArgs("a", "a"))
	waitQueued(t, c, 1)
	other := runRecover(ctx, c, setArgs("b", "b"))
	waitQueued(t, c, 2)
	pipeEntered, pipeRelease := h.arm(true)
	defer pipeRelease()
	p.pipe.Store(true)
	release()
	waitFor(t, pipeEntered, "the batch's pipeline")
	cancel()
	select {
	case r := <-leader:
		if !errors.Is(r.err, context.Canceled) {
			t.Fatalf("leader: got %v, %v; want context.Canceled", r.v, r.err)
		}
	case <-time.After(leaderWaitBound):
		pipeRelease()
		r := recv(t, leader)
		t.Fatalf("the leader still waited for its held batch %v after its ctx ended (then got %v, %v)", leaderWaitBound, r.v, r.err)
	}
	pipeRelease()
	if r := recv(t, other); !errors.Is(r.err, ErrSenderPanicked) {
		t.Fatalf("other call of the batch: got %v, %v; want ErrSenderPanicked", r.v, r.err)
	}
	if r := recv(t, first); r.err != nil || r.v != "1" {
		t.Fatalf("first call: got %v, %v", r.v, r.err)
	}
	if r := recv(t, runAsync(ctx, c, setArgs("later", "3"))); r.err != nil || r.v != "3" {
		t.Fatalf("later call: got %v, %v", r.v, r.err)
	}
}
