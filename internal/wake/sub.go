package wake

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// sub is one subscription connection and the goroutine that reads it. It is
// owned by its hub: close signals the reader and waits for it.
type sub struct {
	h     *hub
	shard int

	// Set by open before opened is closed; read-only afterwards.
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
	if s.sharded {
		_ = s.ps.SSubscribe(ctx, channel)
	} else {
		_ = s.ps.Subscribe(ctx, channel)
	}
}

func (s *sub) unsubscribe(channel string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if s.sharded {
		_ = s.ps.SUnsubscribe(ctx, channel)
	} else {
		_ = s.ps.Unsubscribe(ctx, channel)
	}
}

func (s *sub) close() {
	s.once.Do(func() {
		close(s.closing)
		_ = s.ps.Close()
	})
	<-s.done
}

func (s *sub) read() {
	defer close(s.done)
	pause := 10 * time.Millisecond
	failed := false
	for {
		msg, err := s.ps.Receive(context.Background())
		if err != nil {
			select {
			case <-s.closing:
				return
			default:
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
			if m.Kind == "subscribe" || m.Kind == "ssubscribe" {
				s.h.confirmed(m.Channel)
				if failed {
					failed = false
					s.h.reconnected(s.shard)
				}
			}
		}
	}
}
