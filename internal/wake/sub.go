package wake

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// sub is one subscription connection and the goroutine that reads it. It is
// owned by its hub: close signals the reader and waits for it.
type sub struct {
	h     *hub
	shard int

	// Set by open before opened is closed; sharded is read-only afterwards,
	// ps is replaced (under mu) when the shard's slot moves.
	mu      sync.Mutex
	ps      *redis.PubSub
	sharded bool
	opened  chan struct{}

	closing chan struct{}
	done    chan struct{}
	once    sync.Once
}

// open decides between sharded (SSUBSCRIBE, Redis 7+) and classic pub/sub,
// matching what the release script manages to publish with, then starts the
// reader goroutine.
func (s *sub) open(ctx context.Context, channel string) {
	c := s.h.client
	// SPUBLISH to a channel nobody listens to costs nothing and tells whether
	// the server knows sharded pub/sub.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), confirmWait)
	err := c.Do(pctx, "spublish", channel, "").Err()
	cancel()
	s.sharded = !isUnknownCommand(err)
	if s.sharded {
		s.ps = c.SSubscribe(ctx, channel)
	} else {
		s.ps = c.Subscribe(ctx, channel)
	}
	close(s.opened)
	go s.read()
}

// add subscribes to one more channel once the connection is open.
func (s *sub) add(ctx context.Context, channel string) {
	select {
	case <-s.opened:
	case <-ctx.Done():
		return
	}
	ps := s.current()
	if s.sharded {
		_ = ps.SSubscribe(ctx, channel)
	} else {
		_ = ps.Subscribe(ctx, channel)
	}
}

func (s *sub) current() *redis.PubSub {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ps
}

func (s *sub) unsubscribe(channel string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	ps := s.current()
	if s.sharded {
		_ = ps.SUnsubscribe(ctx, channel)
	} else {
		_ = ps.Unsubscribe(ctx, channel)
	}
}

func (s *sub) close() {
	s.once.Do(func() {
		s.mu.Lock()
		close(s.closing)
		ps := s.ps
		s.mu.Unlock()
		_ = ps.Close()
	})
	<-s.done
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
	channels := s.h.channelsOf(s.shard)
	if len(channels) == 0 {
		return
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
	old := s.ps
	s.ps = s.h.client.SSubscribe(ctx, channels...)
	s.mu.Unlock()
	_ = old.Close()
	s.h.reconnected(s.shard)
}

func (s *sub) read() {
	defer close(s.done)
	pause := 10 * time.Millisecond
	failed := false
	for {
		msg, err := s.current().Receive(context.Background())
		if err != nil {
			select {
			case <-s.closing:
				return
			default:
			}
			if s.sharded && isRedirect(err) {
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
			s.h.deliver(m.Channel, m.Payload)
		case *redis.Subscription:
			switch m.Kind {
			case "subscribe", "ssubscribe":
				s.h.confirmed(m.Channel)
				if failed {
					failed = false
					s.h.reconnected(s.shard)
				}
			case "sunsubscribe":
				// Unasked for while waiters still queue: the server gave the
				// channel's slot away (Redis Cluster resharding or failover).
				if s.h.wants(s, m.Channel) {
					s.rebind()
				}
			}
		}
	}
}

// isRedirect reports a MOVED or ASK reply.
func isRedirect(err error) bool {
	msg := err.Error()
	return strings.HasPrefix(msg, "MOVED ") || strings.HasPrefix(msg, "ASK ")
}
