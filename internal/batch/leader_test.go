package batch

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redlease/redlease/internal/scripts"
)

// expiring is a ctx whose deadline passes when expire is called: a test
// decides when it ends instead of racing a clock.
type expiring struct {
	context.Context
	done chan struct{}
	once sync.Once
}

func newExpiring() *expiring {
	return &expiring{Context: context.Background(), done: make(chan struct{})}
}

func (e *expiring) Deadline() (time.Time, bool) { return time.Now().Add(time.Hour), true }
func (e *expiring) Done() <-chan struct{}       { return e.done }
func (e *expiring) Err() error {
	select {
	case <-e.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}
func (e *expiring) expire() { e.once.Do(func() { close(e.done) }) }

// delScript deletes KEYS[1] and returns how many keys it deleted, as a
// cleanup's release would.
var delScript = scripts.NewRaw(`return redis.call("DEL", KEYS[1])`)

func delArgs(key string) []any { return append(delScript.Head(nil, 1), key) }

// leaderWaitBound is how long a leader whose ctx ended may take to return
// while its batch is held: generous, and well below the hook's hangGuard, so
// a leader that waits for its batch is told apart from one that left.
const leaderWaitBound = hangGuard / 2

// TestLeaderLeavesWhenItsCtxEnds: the caller that sends a batch (the first
// queued one) returns ctx.Err() as soon as its ctx ends (deadline or cancel)
// while the batch is in flight, like every other caller; the batch still runs
// to completion, every other call of it gets its own reply, and later calls
// go out. Before, the sender waited for the batch's replies past its ctx.
func TestLeaderLeavesWhenItsCtxEnds(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func() (context.Context, func())
		want error
	}{
		{"deadline", func() (context.Context, func()) { e := newExpiring(); return e, e.expire }, context.DeadlineExceeded},
		{"cancel", func() (context.Context, func()) { return context.WithCancel(context.Background()) }, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, c, h := hooked(t)
			ctx := context.Background()
			entered, release := h.arm(false)
			defer release()
			first := runAsync(ctx, c, setArgs("first", "1"))
			waitFor(t, entered, "the first call")

			lctx, end := tc.make()
			defer end()
			leader := runAsync(lctx, c, setArgs("leader", "l"))
			waitQueued(t, c, 1)
			other := runAsync(ctx, c, setArgs("other", "o"))
			waitQueued(t, c, 2)
			pipeEntered, pipeRelease := h.arm(true)
			defer pipeRelease()
			release()
			waitFor(t, pipeEntered, "the batch's pipeline")

			end() // the batch is held in the hook until pipeRelease
			select {
			case r := <-leader:
				if !errors.Is(r.err, tc.want) {
					t.Fatalf("leader: got %v, %v; want %v", r.v, r.err, tc.want)
				}
			case <-time.After(leaderWaitBound):
				pipeRelease()
				r := recv(t, leader)
				t.Fatalf("the leader still waited for its held batch %v after its ctx ended (then got %v, %v)", leaderWaitBound, r.v, r.err)
			}
			select {
			case r := <-other:
				t.Fatalf("the other call returned %v, %v before its batch's reply", r.v, r.err)
			default:
			}
			pipeRelease()
			if r := recv(t, other); r.err != nil || r.v != "o" {
				t.Fatalf("other call of the batch: got %v, %v; want o", r.v, r.err)
			}
			if r := recv(t, first); r.err != nil || r.v != "1" {
				t.Fatalf("first call: got %v, %v", r.v, r.err)
			}
			// The batch ran the leader's call too: "may have run".
			if v, err := s.Client(t).Get(ctx, "leader").Result(); err != nil || v != "l" {
				t.Fatalf("leader = %q, %v; want the batch to have run it", v, err)
			}
			if r := recv(t, runAsync(ctx, c, setArgs("later", "3"))); r.err != nil || r.v != "3" {
				t.Fatalf("later call: got %v, %v", r.v, r.err)
			}
			if n := queueLen(c); n != 0 {
				t.Fatalf("%d calls left queued", n)
			}
		})
	}
}

// TestCleanupInLeftLeadersBatchRuns: a cleanup-like call (ctx without the
// caller's cancellation, with a timeout of its own, as internal/core cleanup
// sends a release) batched under a leader whose deadline passes runs to
// completion: no caller's ctx ever cuts a batch short (a reverted change did,
// and left a failed multilock attempt's keys held until their TTL).
func TestCleanupInLeftLeadersBatchRuns(t *testing.T) {
	s, c, h := hooked(t)
	ctx := context.Background()
	check := s.Client(t)
	if err := check.Set(ctx, "held", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := check.ScriptLoad(ctx, `return redis.call("DEL", KEYS[1])`).Err(); err != nil {
		t.Fatal(err)
	}
	entered, release := h.arm(false)
	defer release()
	first := runAsync(ctx, c, setArgs("first", "1"))
	waitFor(t, entered, "the first call")

	lctx := newExpiring()
	defer lctx.expire()
	leader := runAsync(lctx, c, setArgs("leader", "l"))
	waitQueued(t, c, 1)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(lctx), hangGuard)
	defer cancel()
	cleanup := make(chan result, 1)
	go func() {
		v, err := Run(cctx, c, delScript, delArgs("held"))
		cleanup <- result{v, err}
	}()
	waitQueued(t, c, 2)
	pipeEntered, pipeRelease := h.arm(true)
	defer pipeRelease()
	release()
	waitFor(t, pipeEntered, "the batch's pipeline")

	lctx.expire()
	select {
	case r := <-leader:
		if !errors.Is(r.err, context.DeadlineExceeded) {
			t.Fatalf("leader: got %v, %v; want context.DeadlineExceeded", r.v, r.err)
		}
	case <-time.After(leaderWaitBound):
		pipeRelease()
		recv(t, leader)
		t.Fatalf("the leader still waited for its held batch %v after its deadline", leaderWaitBound)
	}
	pipeRelease()
	if r := recv(t, cleanup); r.err != nil || r.v != int64(1) {
		t.Fatalf("cleanup: got %v, %v; want 1 key deleted", r.v, r.err)
	}
	if n, err := check.Exists(ctx, "held").Result(); err != nil || n != 0 {
		t.Fatalf("the cleanup's key is still held: EXISTS = %d, %v", n, err)
	}
	if r := recv(t, first); r.err != nil {
		t.Fatalf("first call: %v", r.err)
	}
}
