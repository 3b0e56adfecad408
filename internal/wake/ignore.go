package wake

import (
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// ignoreList holds the wake-ups announced by a local release: its pub/sub
// message is dropped when it arrives, because the local head was woken
// directly. Entries whose message never comes expire after ignoreTTL, oldest
// first. Guarded by the hub's mu.
type ignoreList struct {
	at    map[string]time.Time
	order []ignoreEntry
}

type ignoreEntry struct {
	key string
	at  time.Time
}

const ignoreTTL = 10 * time.Second

// Expect is called before a local release of the hold fence:token of
// channel's lock is sent: the message it publishes ("<fence>:<token>") will
// be ignored here, because Released wakes the local head directly. Recording
// it before the release goes out means the message cannot overtake the
// record.
func Expect(client redis.UniversalClient, channel string, fence int64, token string) {
	h := lookup(client)
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	q := h.queues[channel]
	if q == nil || len(q.waiters) == 0 {
		return // nobody to wake; a waiter joining now may get one spare wake-up
	}
	now := time.Now()
	// Drop from the front what expired or was already consumed (messages
	// mostly arrive in release order, so the queue stays short).
	for len(h.ignore.order) > 0 {
		e := h.ignore.order[0]
		at, ok := h.ignore.at[e.key]
		live := ok && at.Equal(e.at)
		if live && now.Sub(e.at) <= ignoreTTL {
			break
		}
		if live {
			delete(h.ignore.at, e.key)
		}
		h.ignore.order = h.ignore.order[1:]
	}
	key := channel + "\x00" + strconv.FormatInt(fence, 10) + ":" + token
	h.ignore.at[key] = now
	h.ignore.order = append(h.ignore.order, ignoreEntry{key, now})
}

// Released tells the local waiters of channel that this process has just
// released the lock: the head is woken at once, without waiting for the
// pub/sub message (see Expect).
func Released(client redis.UniversalClient, channel string) {
	h := lookup(client)
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if q := h.queues[channel]; q != nil && len(q.waiters) > 0 {
		q.waiters[0].signal()
	}
}

// deliver handles a message published on channel.
// A message that carries the lock's state (see parseState) wakes the
// weighted waiters it admits.
func (h *hub) deliver(channel, payload string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	payload, st := parseState(payload)
	if _, ok := h.ignore.at[channel+"\x00"+payload]; ok {
		delete(h.ignore.at, channel+"\x00"+payload)
		return
	}
	q := h.queues[channel]
	switch {
	case q == nil || len(q.waiters) == 0:
	case st.Kind != 0:
		q.observed(st)
	default:
		q.waiters[0].signal()
	}
}
