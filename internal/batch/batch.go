// Package batch coalesces concurrent script calls of one redis client into
// pipelines, with no goroutine or timer of its own on the path of a lone
// call.
//
// Natural batching: a call that finds fewer than maxSenders calls or batches
// of its client in flight is sent at once, alone, with Do and its own ctx,
// as scripts.Raw.Run would send it. Calls that arrive while maxSenders are
// in flight queue up. When a sender is done, it takes everything queued by
// then as one batch and sends it as one pipeline (one connection checkout,
// one write, one read for all of them) from a goroutine that gives each
// caller its own reply and goes on with the next queue, ending when the
// queue is empty. Queued callers only wait: none has to be woken to send.
// So a lone caller never waits, and under load a batch costs about one
// round trip.
//
// Each call keeps its ctx: a caller whose ctx ends while its call is queued
// gets ctx.Err() and nothing is sent for it; one whose ctx ends while its
// batch is in flight gets an *InFlight wrapping ctx.Err() at once, and its
// call may have run — the same outcome as a lost reply, which every caller
// already handles (see internal/core/protocol.go). A batch runs under a
// context without any caller's cancellation or deadline (the values of its
// first call's ctx are kept), bounded by the client's own timeouts
// (ReadTimeout, WriteTimeout, PoolTimeout, MaxRetries): it runs to
// completion whoever has left, so no caller's ctx ever fails another's call
// (a cleanup sent under a ctx of its own is never cut short by another
// caller's deadline), and only the callers' waiting ends with their ctx.
//
// On Redis Cluster the calls are coalesced per master (of their first key's
// slot): a cluster pipeline waits for every node it goes to, so a stalled
// master would otherwise hold up calls to the healthy ones.
//
// go-redis retries a whole pipeline after a network error, so a script in it
// may run twice; every redlease script is safe to run twice. A NOSCRIPT
// reply inside a pipeline is followed by the call alone through
// scripts.Raw.Run, which falls back to EVAL.
package batch

import (
	"context"
	"errors"
	"runtime"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/scripts"
)

// ErrSenderPanicked is the error of the calls of a batch whose sending
// panicked (the panic, e.g. a hook's, reaches no caller); the calls may have
// run.
var ErrSenderPanicked = errors.New("batch: the sending of this call's batch panicked")

// InFlight is the error of a call whose caller's ctx ended while the call was
// in flight in a batch: it wraps ctx.Err() (errors.Is matches it), and Done
// is closed when that batch is done, after which the call has run or will
// not run through it. A request meant to undo the call (the release of an
// acquisition that may have run) should wait for Done: sent earlier, on
// another connection, it could reach Redis first and find nothing to undo.
type InFlight struct {
	err  error
	done chan struct{}
}

func (e *InFlight) Error() string { return e.err.Error() }

// Unwrap returns the ctx's error.
func (e *InFlight) Unwrap() error { return e.err }

// Done is closed when the call's batch is done.
func (e *InFlight) Done() <-chan struct{} { return e.done }

// errNoReply is the error of a call whose pipeline returned without error
// yet left it without a reply (only a hook that skips the send can).
var errNoReply = errors.New("batch: the pipeline returned no reply for this call")

// One batcher per client (per client and master on Redis Cluster, see
// keyOf) with a call in flight, created by the call that finds none and
// forgotten when the last batch is done (idle batchers are kept for reuse,
// so a lone caller allocates nothing here). One mutex guards the map and
// every batcher's state: it is held for a few instructions per call only.
var (
	mu       sync.Mutex
	batchers = map[any]*batcher{} // by keyOf
	idle     []*batcher
)

// keyOf returns what names the calls that share senders and batches with a
// call with args (which start with Head) on c: c itself, or on Redis Cluster
// the master of the first key's slot as c last knew it (each cluster client
// has its own node clients), so that a stalled master stalls only the calls
// to it (a cluster pipeline waits for all its nodes). A wrong guess only
// groups calls less well: the pipeline still routes each call.
func keyOf(ctx context.Context, c redis.UniversalClient, args []any) any {
	if cc, ok := c.(*redis.ClusterClient); ok && len(args) > 3 {
		if key, ok := args[3].(string); ok {
			if m, err := cc.MasterForKey(ctx, key); err == nil {
				return masterKey{m} // not m: calls on m itself are not c's
			}
		}
	}
	return c
}

// masterKey is the key of a cluster client's calls to one master.
type masterKey struct{ m *redis.Client }

// maxSenders is how many calls or batches of one client may be in flight at
// once: a call that finds fewer goes out at once; others queue for the next
// sender that finishes. Two keep both the client and Redis busy (one works
// on a batch's replies while the other batch is on the wire or in Redis)
// while batches stay large. Read and written under mu (tests set it).
var maxSenders = 2

type batcher struct {
	client  redis.UniversalClient
	key     any     // in batchers
	senders int     // calls or batches in flight, at most maxSenders
	queue   []*call // arrival order; calls whose caller left are skipped
	spare   []*call // a finished batch's slice, reused for the next one
}

// A call's states; each move happens under mu.
const (
	queued uint8 = iota
	sent         // in a batch in flight, its caller waiting
	done         // reply and err are set
	left         // its caller left: before it was sent, or while in flight
)

type call struct {
	ctx   context.Context // the caller's: its values go with the batch
	raw   *scripts.Raw
	args  []any
	cmd   *redis.Cmd
	state uint8
	wake  chan struct{} // one token: the reply is in
	reply any
	err   error
	// finished is made when the caller leaves while the call is in flight
	// (InFlight), and closed when its batch is done.
	finished chan struct{}
}

// Run runs raw with args (which start with raw.Head) on c and returns its
// reply, as raw.Run does, coalescing it with the concurrent calls of c (see
// the package doc). When ctx ends before the reply, it returns at once:
// ctx.Err() if nothing was sent, or an *InFlight wrapping ctx.Err() if the
// call is in a batch in flight (it may have run, or still run). args must
// not change until Run returns, nor afterwards if it returned an error
// matching ctx.Err() (a batch in flight may still read them). A panic while
// sending (a hook's) goes to the caller whose call was sent alone; the calls
// of a batch whose sending panicked return ErrSenderPanicked (they may have
// run), and the calls queued meanwhile are still sent.
func Run(ctx context.Context, c redis.UniversalClient, raw *scripts.Raw, args []any) (any, error) {
	k := keyOf(ctx, c, args)
	mu.Lock()
	b := batchers[k]
	if b == nil {
		b = take(c, k)
	}
	if b.senders < maxSenders {
		b.senders++
		mu.Unlock()
		return b.alone(ctx, raw, args)
	}
	cl := &call{ctx: ctx, raw: raw, args: args, wake: make(chan struct{}, 1)}
	b.queue = append(b.queue, cl)
	mu.Unlock()

	select {
	case <-cl.wake:
	case <-ctx.Done():
	}
	mu.Lock()
	switch cl.state {
	case done:
		mu.Unlock()
		return cl.reply, cl.err
	case sent: // it may have run, or still run
		cl.state = left
		cl.finished = make(chan struct{})
		mu.Unlock()
		return nil, &InFlight{err: ctx.Err(), done: cl.finished}
	}
	cl.state = left // queued: nothing was sent
	mu.Unlock()
	return nil, ctx.Err()
}

// take returns an idle batcher, now c's under k (see keyOf). mu is held.
func take(c redis.UniversalClient, k any) *batcher {
	var b *batcher
	if n := len(idle); n > 0 {
		b, idle = idle[n-1], idle[:n-1]
	} else {
		b = &batcher{}
	}
	b.client, b.key = c, k
	batchers[k] = b
	return b
}

// alone sends one call with Do, then takes over the queue (also when the
// call panics, e.g. in a hook: the queued calls are not stranded).
func (b *batcher) alone(ctx context.Context, raw *scripts.Raw, args []any) (any, error) {
	defer func() {
		mu.Lock()
		if batch := b.takeQueue(); len(batch) > 0 {
			go b.loop(batch)
		}
		mu.Unlock()
	}()
	return raw.Run(ctx, b.client, args)
}

// takeQueue takes the calls still queued as the next batch of the sender
// that asks; when none is queued there is one sender less, and b is
// forgotten when none is left. mu is held; the sender has nothing of b in
// flight any more.
func (b *batcher) takeQueue() []*call {
	batch := b.spare[:0]
	b.spare = nil
	for _, cl := range b.queue {
		if cl.state == queued {
			cl.state = sent
			batch = append(batch, cl)
		}
	}
	clear(b.queue)
	b.queue = b.queue[:0]
	if len(batch) > 0 {
		return batch
	}
	b.spare = batch
	if b.senders--; b.senders > 0 {
		return nil
	}
	delete(batchers, b.key)
	b.client, b.key = nil, nil
	idle = append(idle, b)
	return nil
}

// loop runs on a goroutine of its own, a sender: it sends batch, gives each
// call still waiting its reply, and goes on with the calls queued meanwhile
// until none is. A hook that ends the goroutine while sending
// (runtime.Goexit, which send's recover cannot stop) strands nobody: the
// batch is finished as if it had panicked and the queue goes on from a new
// goroutine.
func (b *batcher) loop(batch []*call) {
	defer func() {
		if len(batch) > 0 { // runtime.Goexit in send, which set the errors
			mu.Lock()
			batch = b.finish(batch)
			mu.Unlock()
			if len(batch) > 0 {
				go b.loop(batch)
			}
		}
	}()
	for len(batch) > 0 {
		b.send(batch)
		mu.Lock()
		b.deliver(batch)
		mu.Unlock()
		batch = nil
		// The callers just woken run first: most send their next call at
		// once, and it joins this sender's next batch instead of going out
		// alone or in a batch of one (no timer: Gosched returns at once when
		// nothing else is runnable).
		runtime.Gosched()
		mu.Lock()
		batch = b.takeQueue()
		mu.Unlock()
	}
}

// finish delivers batch (see deliver) and returns the next batch (see
// takeQueue). mu is held.
func (b *batcher) finish(batch []*call) []*call {
	b.deliver(batch)
	return b.takeQueue()
}

// deliver gives each call of the sent batch still waiting its reply and
// closes the Done of those whose caller left. mu is held.
func (b *batcher) deliver(batch []*call) {
	for _, cl := range batch {
		if cl.state == sent {
			cl.state = done
			cl.wake <- struct{}{}
		} else if cl.finished != nil { // its caller left while in flight
			close(cl.finished)
		}
	}
	clear(batch)
	b.spare = batch[:0]
}

// send sends batch as one pipeline (a single call alone, with Do) under the
// values of its first call's ctx without its cancellation, and sets each
// call's reply. A panic while sending (e.g. in a hook) is recovered, since
// nobody could recover it on this goroutine: the calls get
// ErrSenderPanicked.
func (b *batcher) send(batch []*call) {
	ok := false
	defer func() {
		if !ok {
			_ = recover() // nil after runtime.Goexit: ErrSenderPanicked all the same (see loop)
			for _, cl := range batch {
				cl.reply, cl.err, cl.cmd = nil, ErrSenderPanicked, nil
			}
		}
	}()
	ctx := context.WithoutCancel(batch[0].ctx)
	if len(batch) == 1 {
		cl := batch[0]
		cl.reply, cl.err = cl.raw.Run(ctx, b.client, cl.args)
	} else {
		sendPipeline(ctx, b.client, batch)
	}
	ok = true
}

// sendPipeline runs batch as one pipeline on c and sets each call's reply;
// calls that got NOSCRIPT are sent again alone through Raw.Run (EVAL
// fallback).
func sendPipeline(ctx context.Context, c redis.UniversalClient, batch []*call) {
	pipe := c.Pipeline()
	for _, cl := range batch {
		cl.cmd = redis.NewCmd(ctx, cl.args...)
		_ = pipe.Process(ctx, cl.cmd) // queues it; Exec sends
	}
	// Each command carries its own reply or error, except when the pipeline
	// failed before its replies were read in a way go-redis does not copy to
	// its commands (v9.7.3: no connection from the pool, a hook's error):
	// those are left with a nil reply and a nil error, which must not pass
	// for a reply.
	_, execErr := pipe.Exec(ctx)
	if execErr == nil {
		execErr = errNoReply
	}
	for _, cl := range batch {
		v, err := cl.cmd.Result()
		if v == nil && err == nil {
			err = execErr
		}
		if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			v, err = cl.raw.Run(ctx, c, cl.args)
		}
		cl.reply, cl.err, cl.cmd = v, err, nil
	}
}
