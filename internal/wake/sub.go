package wake

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/keys"
)

// sub is one subscription connection of a shard and its two goroutines: run,
// which opens the connection and performs every subscription and
// unsubscription, and read, which reads the connection. The hub owns run: it
// asks it to stop (stop, under h.mu) and waits for done. run owns read and
// the PubSub: it closes the PubSub exactly once and waits for read.
type sub struct {
	h      *hub
	shard  int
	probe  string             // a channel of the shard, for the SPUBLISH probe
	cancel context.CancelFunc // aborts run's requests in flight (see stop)

	// Guarded by h.mu. The hub decides the order of the requests under its
	// lock and run performs them in that order without it, so no network
	// I/O happens under h.mu, and an unsubscription is never overtaken by a
	// later subscription of the same channel.
	ops     []op
	stopped bool          // the hub forgot this sub: run closes it
	kick    chan struct{} // capacity 1: ops or stopped changed

	// Guarded by mu: written by run and by rebind (in read). run and rebind
	// hold mu while they use the PubSub, so the two never interleave.
	mu      sync.Mutex
	ps      *redis.PubSub // nil until the first subscription
	sharded bool
	closing chan struct{} // closed by run, under mu, before it closes ps

	done chan struct{} // closed when run (and so read) returned
}

// op is a request to subscribe (add) or unsubscribe a channel: a wake-up
// channel, sharded if the server knows sharded pub/sub, or an Interest's
// channel, always classic.
type op struct {
	channel string
	add     bool
	classic bool
}

// newSub starts the subscription of shard, probing with channel. h.mu must
// be held; the caller records the sub in h.subs and requests channel.
func newSub(h *hub, shard int, channel string) *sub {
	ctx, cancel := context.WithCancel(context.Background())
	s := &sub{
		h: h, shard: shard, probe: channel, cancel: cancel,
		kick: make(chan struct{}, 1), closing: make(chan struct{}), done: make(chan struct{}),
	}
	go s.run(ctx)
	return s
}

// request queues a subscription (add) or unsubscription of channel. h.mu
// must be held.
func (s *sub) request(channel string, add bool) {
	s.ops = append(s.ops, op{channel, add, false})
	s.poke()
}

// requestClassic is request for an Interest's channel. h.mu must be held.
func (s *sub) requestClassic(channel string, add bool) {
	s.ops = append(s.ops, op{channel, add, true})
	s.poke()
}

// stop asks run to close the subscription, also while it is still opening;
// the caller then waits for done. h.mu must be held, and s must already be
// gone from h.subs so that no request follows.
func (s *sub) stop() {
	s.stopped = true
	s.cancel()
	s.poke()
}

func (s *sub) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// next takes the queued requests, and reports whether s was stopped.
func (h *hub) next(s *sub) ([]op, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ops := s.ops
	s.ops = nil
	return ops, s.stopped
}

// run decides between sharded (SSUBSCRIBE, Redis 7+) and classic pub/sub,
// matching what the release script manages to publish with, then performs
// the hub's requests until it is stopped.
func (s *sub) run(ctx context.Context) {
	defer close(s.done)
	reading := false
	readDone := make(chan struct{})
	defer func() {
		s.mu.Lock()
		close(s.closing)
		ps := s.ps
		s.mu.Unlock()
		if ps != nil {
			_ = ps.Close()
		}
		if reading {
			<-readDone
		}
	}()

	// SPUBLISH to a channel nobody listens to costs nothing and tells whether
	// the server knows sharded pub/sub.
	pctx, cancel := context.WithTimeout(ctx, confirmWait)
	err := s.h.client.Do(pctx, "spublish", s.probe, "").Err()
	cancel()
	s.mu.Lock()
	s.sharded = !isUnknownCommand(err)
	s.mu.Unlock()

	for {
		ops, stopped := s.h.next(s)
		if stopped {
			return
		}
		if s.apply(ctx, ops) && !reading {
			reading = true
			go func() {
				defer close(readDone)
				s.read()
			}()
		}
		<-s.kick
	}
}

// apply performs ops in order, opening the connection with the first
// subscription. It reports whether the connection exists.
func (s *sub) apply(ctx context.Context, ops []op) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range ops {
		octx, cancel := context.WithTimeout(ctx, confirmWait)
		sharded := s.sharded && !o.classic
		switch {
		case o.add && s.ps == nil && sharded:
			s.ps = s.h.client.SSubscribe(octx, o.channel)
		case o.add && s.ps == nil:
			s.ps = s.h.client.Subscribe(octx, o.channel)
		case o.add && sharded:
			_ = s.ps.SSubscribe(octx, o.channel)
		case o.add:
			_ = s.ps.Subscribe(octx, o.channel)
		case s.ps == nil:
			// Never subscribed: nothing to undo.
		case sharded:
			_ = s.ps.SUnsubscribe(octx, o.channel)
		default:
			_ = s.ps.Unsubscribe(octx, o.channel)
		}
		cancel()
	}
	return s.ps != nil
}

// current returns the connection, never nil once read runs, and its kind.
func (s *sub) current() (*redis.PubSub, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ps, s.sharded
}

// rebind replaces the subscription after the server dropped it or refused it
// with a redirection: on Redis Cluster the shard's slot moved to another
// master. The new connection is routed by the client's refreshed slot map;
// heads are woken since a release may have been missed meanwhile.
func (s *sub) rebind() {
	if cc, ok := s.h.client.(*redis.ClusterClient); ok {
		cc.ReloadState(context.Background())
	}
	t := time.NewTimer(50 * time.Millisecond) // let the slot map reload
	select {
	case <-s.closing:
		t.Stop()
		return
	case <-t.C:
	}
	ctx, cancel := context.WithTimeout(context.Background(), confirmWait)
	defer cancel()
	s.mu.Lock()
	select {
	case <-s.closing:
		s.mu.Unlock()
		return
	default:
	}
	// Listed under mu: a request run performs later is applied to the new
	// connection, and one it performed earlier is reflected in the list.
	channels, classic := s.h.channelsOf(s.shard), s.h.classicOf(s.shard)
	if len(channels) == 0 && len(classic) == 0 {
		s.mu.Unlock()
		return
	}
	old := s.ps
	// The sharded channels first: a new PubSub connects to the node of the
	// first channel it subscribes, which must serve their slot. A classic
	// channel is served by any node.
	if len(channels) > 0 {
		s.ps = s.h.client.SSubscribe(ctx, channels...)
		if len(classic) > 0 {
			_ = s.ps.Subscribe(ctx, classic...)
		}
	} else {
		s.ps = s.h.client.Subscribe(ctx, classic...)
	}
	s.mu.Unlock()
	_ = old.Close()
	s.h.reconnected(s.shard)
}

func (s *sub) read() {
	pause := 10 * time.Millisecond
	failed := false
	for {
		ps, sharded := s.current()
		msg, err := ps.Receive(context.Background())
		if err != nil {
			select {
			case <-s.closing:
				return
			default:
			}
			s.h.lost(s)
			if _, _, moved := keys.Redirect(err); sharded && moved {
				s.rebind()
				continue
			}
			// go-redis reconnects and resubscribes on the next Receive;
			// pause so a server that is down is not hammered.
			failed = true
			t := time.NewTimer(pause)
			select {
			case <-s.closing:
				t.Stop()
				return
			case <-t.C:
			}
			if pause < time.Second {
				pause *= 2
			}
			continue
		}
		pause = 10 * time.Millisecond
		switch m := msg.(type) {
		case *redis.Message:
			if hs := s.h.handlersOf(m.Channel); hs != nil {
				for _, hd := range hs {
					hd.Message(m.Payload)
				}
			} else {
				s.h.deliver(m.Channel, m.Payload)
			}
		case *redis.Subscription:
			switch m.Kind {
			case "subscribe", "ssubscribe":
				s.h.confirmed(m.Channel)
				if m.Kind == "subscribe" {
					for _, hd := range s.h.handlersOf(m.Channel) {
						hd.Confirmed()
					}
				}
				if failed {
					failed = false
					s.h.reconnected(s.shard)
				}
			case "sunsubscribe":
				// Unasked for while waiters still queue: the server gave the
				// channel's slot away (Redis Cluster resharding or failover).
				if s.h.wants(s, m.Channel) {
					s.h.lost(s)
					s.rebind()
				}
			}
		}
	}
}
