package rwmutex_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/scripts"
	"github.com/redlease/redlease/internal/wake"
	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
)

// holdWriteReply parks the reply of the first rw_acquire in write mode that
// runs through the client, until release is closed: the script has run
// (the writer's claim is set) but the writer has not yet queued.
type holdWriteReply struct {
	parked  chan struct{} // closed when the reply is parked
	release chan struct{}
	armed   chan struct{} // capacity 1: one reply to park
}

func newHoldWriteReply() *holdWriteReply {
	h := &holdWriteReply{parked: make(chan struct{}), release: make(chan struct{}), armed: make(chan struct{}, 1)}
	h.armed <- struct{}{}
	return h
}

func (h *holdWriteReply) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *holdWriteReply) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (h *holdWriteReply) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		args := cmd.Args()
		// EVALSHA sha 2 hash fence token ttl mode claim
		isAcquire := len(args) == 9 && (cmd.Name() == "evalsha" && args[1] == scripts.RWAcquire.Hash() || cmd.Name() == "eval")
		if err == nil && isAcquire && args[7] == "write" {
			select {
			case <-h.armed:
				close(h.parked)
				<-h.release
			default:
			}
		}
		return err
	}
}

// TestReaderAtHeadPassesTurnToWriterBehind is the regression test of the
// stall fixed in 8cf01f6. In one process, a reader R queues at the head of
// the local queue and a writer W of the same RWMutex queues behind it, W's
// claim already set. When the other process's write hold goes, R is woken
// but refused (W's claim keeps readers out). Before the fix R stayed at the
// head and only R retried, on its backoff capped at the claim's expiry, so
// W was admitted only after its claim expired (TTL 30 s here); now R passes
// the turn and W is admitted at once. (Since releases wake weighted waiters,
// the state R's refusal reports — a claim, no holds — also wakes W
// directly: either way W must get in.)
func TestReaderAtHeadPassesTurnToWriterBehind(t *testing.T) {
	s, _ := startRedis(t)
	c := s.Client(t)
	gate := newHoldWriteReply()
	c.AddHook(gate)
	other := s.Client(t) // another process: its own hub and queue
	ctx := context.Background()
	name := uniqueName(t)
	ttl := mutex.WithTTL(30 * time.Second)
	m := newRW(t, c, name, slow, ttl)
	x, err := newRW(t, other, name, ttl).TryLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	actx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	type result struct {
		l   *lease.Lease
		err error
	}
	wres := make(chan result, 1)
	go func() {
		l, err := m.Lock(actx)
		wres <- result{l, err}
	}()
	<-gate.parked // W's first attempt ran: claim set, W not yet queued
	ch := "redlease:{" + name + "}:wake"
	rres := make(chan result, 1)
	go func() {
		l, err := m.RLock(actx)
		rres <- result{l, err}
	}()
	waitQueuedN(t, c, ch, 1) // R failed (write hold) and heads the queue
	close(gate.release)
	waitQueuedN(t, c, ch, 2) // W behind R
	if ok, _ := c.HExists(ctx, rwKey(name), "want").Result(); !ok {
		t.Fatal("W's claim is not set")
	}
	if err := x.Release(ctx); err != nil {
		t.Fatal(err)
	}
	var w result
	select {
	case w = <-wres:
	case r := <-rres:
		t.Fatalf("the reader got in before the waiting writer: %v", r.err)
	case <-time.After(5 * time.Second):
		t.Fatal("writer behind a refused reader at the head not admitted within 5s of the release (claim TTL 30s): the reader kept the turn")
	}
	if w.err != nil {
		t.Fatal(w.err)
	}
	if err := w.l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-rres:
		if r.err != nil {
			t.Fatal(r.err)
		}
		_ = r.l.Release(ctx)
	case <-time.After(5 * time.Second):
		t.Fatal("the reader was not admitted after the writer released")
	}
	onlyFence(t, c)
}

func waitQueuedN(t *testing.T, c redis.UniversalClient, ch string, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for wake.QueueLen(c, ch) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d waiters queued", wake.QueueLen(c, ch), n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
