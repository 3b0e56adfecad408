package wake

import (
	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/keys"
)

// Handler receives what the hub's subscription brings for one Interest. Its
// methods are called from the hub's reading goroutine, in the order the
// connection saw the events, with no lock of this package held. They must
// not block (every channel of the connection waits meanwhile) and must not
// call Interest.Stop, which may wait for that goroutine.
type Handler interface {
	// Message delivers a message published on the channel.
	Message(payload string)
	// Confirmed reports that the channel's subscription was confirmed: the
	// first time, and again after each Lost.
	Confirmed()
	// Lost reports that the connection failed or is being replaced:
	// messages may be missed until the next Confirmed.
	Lost()
}

// Interest keeps a classic (SUBSCRIBE) channel subscribed on the hub's
// connection for another package, so that a process keeps one subscription
// connection per client (see the package doc).
type Interest struct {
	h       *hub
	channel string
	shard   int
	handler Handler
	stopped bool // guarded by h.mu
}

// Listen subscribes channel with classic SUBSCRIBE on client's hub and
// passes what arrives to handler until Stop. It sends nothing itself: the
// subscription is made in the background, and Handler.Confirmed tells when
// it is in place; a failed subscription is retried as the hub's connection
// reconnects. channel must not be a wake-up channel. Several interests in
// the same channel each get every event. On Redis Cluster, where PUBLISH
// reaches every node, the channel rides on a shard connection the hub
// already has; with none, on the connection of the channel's own slot.
func Listen(client redis.UniversalClient, channel string, handler Handler) *Interest {
	h := lockedHub(client)
	defer h.mu.Unlock()
	shard := 0
	if h.cluster {
		shard = keys.Slot(channel)
		if i := h.interests[channel]; len(i) > 0 {
			shard = i[0].shard
		} else if _, ok := h.subs[shard]; !ok {
			for other := range h.subs {
				shard = other
				break
			}
		}
	}
	in := &Interest{h: h, channel: channel, shard: shard, handler: handler}
	h.interests[channel] = append(h.interests[channel], in)
	s := h.subs[shard]
	if s == nil {
		s = newSub(h, shard, channel)
		h.subs[shard] = s
	}
	// Requested even when another interest has the channel: the repeated
	// SUBSCRIBE is harmless and brings this interest its own confirmation.
	s.requestClassic(channel, true)
	return in
}

// Stop ends the interest; the channel is unsubscribed when it was the
// channel's last interest, and the connection closed when nothing else
// uses it (the caller lingers, if it wants to, before Stop). Stop is
// idempotent; it may wait for the connection to close but never for a
// reply, and must not be called from a Handler method.
func (in *Interest) Stop() {
	h := in.h
	h.mu.Lock()
	if in.stopped {
		h.mu.Unlock()
		return
	}
	in.stopped = true
	list := h.interests[in.channel]
	for i, x := range list {
		if x == in {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) > 0 {
		h.interests[in.channel] = list
		h.mu.Unlock()
		return
	}
	delete(h.interests, in.channel)
	s := h.subs[in.shard]
	last := !h.usedLocked(in.shard)
	if s != nil && last {
		delete(h.subs, in.shard)
		s.stop()
	}
	if s != nil && !last {
		s.requestClassic(in.channel, false)
	}
	h.mu.Unlock()
	if s != nil && last {
		<-s.done
	}
	h.forgetIfEmpty()
}

// usedLocked reports whether a queue or an interest still uses shard's
// connection. h.mu must be held.
func (h *hub) usedLocked(shard int) bool {
	for _, q := range h.queues {
		if q.shard == shard {
			return true
		}
	}
	for _, list := range h.interests {
		if len(list) > 0 && list[0].shard == shard {
			return true
		}
	}
	return false
}

// handlersOf returns the handlers of channel's interests.
func (h *hub) handlersOf(channel string) []Handler {
	h.mu.Lock()
	defer h.mu.Unlock()
	list := h.interests[channel]
	if len(list) == 0 {
		return nil
	}
	out := make([]Handler, len(list))
	for i, in := range list {
		out[i] = in.handler
	}
	return out
}

// classicOf lists the interest channels on shard.
func (h *hub) classicOf(shard int) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for ch, list := range h.interests {
		if len(list) > 0 && list[0].shard == shard {
			out = append(out, ch)
		}
	}
	return out
}

// lost tells the interests on s's shard that messages may have been missed.
func (h *hub) lost(s *sub) {
	h.mu.Lock()
	var out []Handler
	for _, list := range h.interests {
		for _, in := range list {
			if in.shard == s.shard {
				out = append(out, in.handler)
			}
		}
	}
	h.mu.Unlock()
	for _, hd := range out {
		hd.Lost()
	}
}

// forgetIfEmpty removes h from the registry once it has neither queues nor
// interests.
func (h *hub) forgetIfEmpty() {
	registryMu.Lock()
	defer registryMu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.queues) == 0 && len(h.interests) == 0 && registry[h.client] == h {
		delete(registry, h.client)
	}
}
