package wake

import (
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// The registry: one hub per redis client in this process, created by the
// first Join and forgotten by drop once it has nothing left.
var (
	registryMu sync.Mutex
	registry   = map[redis.UniversalClient]*hub{}
)

// A hub holds a client's queues and subscriptions (see the package doc).
type hub struct {
	client  redis.UniversalClient
	cluster bool

	mu     sync.Mutex
	queues map[string]*queue // by channel
	subs   map[int]*sub      // by shard: hash slot on Cluster, 0 elsewhere

	// Other packages' classic channels, by channel (see Interest); they keep
	// their shard's connection open like a queue does.
	interests map[string][]*Interest

	ignore ignoreList // wake-ups announced by a local release (see Expect)
}

// lookup returns client's hub, or nil if this process has none.
func lookup(client redis.UniversalClient) *hub {
	registryMu.Lock()
	defer registryMu.Unlock()
	return registry[client]
}

// lockedHub returns client's hub, creating it if needed, with h.mu held. The
// hub is locked before the registry is unlocked so drop cannot forget it
// in between.
func lockedHub(client redis.UniversalClient) *hub {
	registryMu.Lock()
	defer registryMu.Unlock()
	h := registry[client]
	if h == nil {
		_, cluster := client.(*redis.ClusterClient)
		h = &hub{client: client, cluster: cluster, queues: map[string]*queue{}, subs: map[int]*sub{}, interests: map[string][]*Interest{}, ignore: ignoreList{at: map[string]time.Time{}}}
		registry[client] = h
	}
	h.mu.Lock()
	return h
}

// drop unsubscribes a channel that stayed without waiters for Linger, closes
// its shard's connection when nothing else uses it, and forgets the hub
// when it has nothing left.
func (h *hub) drop(q *queue) {
	h.mu.Lock()
	if len(q.waiters) > 0 || h.queues[q.channel] != q {
		h.mu.Unlock()
		return
	}
	delete(h.queues, q.channel)
	s := h.subs[q.shard]
	last := !h.usedLocked(q.shard)
	if s != nil && last {
		delete(h.subs, q.shard)
		s.stop()
	}
	if s != nil && !last {
		// Queued under h.mu: a Join that re-creates this channel's queue
		// requests its subscription after this, never before.
		s.request(q.channel, false)
	}
	h.mu.Unlock()

	if s != nil && last {
		<-s.done
	}
	h.forgetIfEmpty()
}
