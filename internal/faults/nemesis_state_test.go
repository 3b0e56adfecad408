//go:build faults

package faults

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/lease"
)

// The nemesis reads lock keys directly, so it is the one place that knows
// their layout. Both formats are accepted: the value is the token (today), or
// "<fence>:<gen>:<token>" (the protocol being written), where the token may
// itself contain ':'.

// lockPrefix is the default key prefix (mutex.WithKeyPrefix).
const lockPrefix = "redlease:"

// lockKey is the key holding name's lock.
func lockKey(name string) string { return lockPrefix + "{" + name + "}" }

// guardKey is the counter the nemesis increments under Lease.Guard; it
// carries the lock name as hash tag.
func guardKey(name string) string { return "{" + name + "}:guarded" }

// fencedValue matches "<fence>:<gen>:<token>", the generation with a
// waiter's mark "w" or without.
var fencedValue = regexp.MustCompile(`(?s)^\d+:\d+w?:(.*)$`)

// holdsToken reports whether v, the value of a lock key, says the key is held
// with token. It is the only test of ownership the nemesis makes.
func holdsToken(v, token string) bool {
	if v == token {
		return true
	}
	m := fencedValue.FindStringSubmatch(v)
	return m != nil && m[1] == token
}

// tokenOf returns the token in v, the value of a lock key, in either format.
func tokenOf(v string) string {
	if m := fencedValue.FindStringSubmatch(v); m != nil {
		return m[1]
	}
	return v
}

// lockKeys lists the lock keys in Redis: keys matching prefix+"{*}", never a
// fence counter (…:fence, or a global prefix+"fence").
func lockKeys(ctx context.Context, c redis.UniversalClient) ([]string, error) {
	all, err := c.Keys(ctx, lockPrefix+"{*}").Result()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, k := range all {
		if strings.HasSuffix(k, ":fence") || k == lockPrefix+"fence" {
			continue
		}
		out = append(out, k)
	}
	return out, nil
}

// live is a lease a worker holds (or abandoned and waits to lose), with the
// names it covers.
type live struct {
	l     *lease.Lease
	w     *worker
	names []string
	log   *opLog // what the worker did with the lease
	units int64  // units of a semaphore lease (checkUnits); 0 for a lock
	rw    string // an rwmutex lease (checkRW): "r" or "w"; "" for the rest
}

type orphanKey struct{ name, token string }

// orphan is the first sighting of a key held by a token no live lease holds.
type orphan struct {
	at   time.Time
	pttl time.Duration
}

// registry knows which tokens live leases hold, for the belief checker and
// for telling a leaked key from a held one. Safe for concurrent use.
type registry struct {
	leakAfter time.Duration

	mu       sync.Mutex
	leases   map[*lease.Lease]live
	tokens   map[orphanKey]int // live leases per (name, token)
	orphans  map[orphanKey]orphan
	attempts map[orphanKey]time.Time // latest acquisition attempt with a custom token
	leaked   map[orphanKey]string    // why each leaked key counts as leaked
	seen     int                     // orphan observations
}

func newRegistry(leakAfter time.Duration) *registry {
	return &registry{leakAfter: leakAfter, leases: map[*lease.Lease]live{},
		tokens: map[orphanKey]int{}, orphans: map[orphanKey]orphan{}, attempts: map[orphanKey]time.Time{}, leaked: map[orphanKey]string{}}
}

func (r *registry) add(lv live) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.leases[lv.l] = lv
	for _, n := range lv.names {
		k := orphanKey{n, lv.l.Token()}
		r.tokens[k]++
		delete(r.orphans, k) // seen before the acquisition returned: not an orphan
	}
}

// attempting records that an acquisition of names with the custom token
// starts now: it may create their keys again with that token.
func (r *registry) attempting(names []string, token string) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range names {
		r.attempts[orphanKey{n, token}] = now
	}
}

func (r *registry) remove(l *lease.Lease) {
	r.mu.Lock()
	defer r.mu.Unlock()
	lv, ok := r.leases[l]
	if !ok {
		return
	}
	delete(r.leases, l)
	for _, n := range lv.names {
		k := orphanKey{n, l.Token()}
		if r.tokens[k]--; r.tokens[k] <= 0 {
			delete(r.tokens, k)
		}
	}
}

func (r *registry) snapshot() []live {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]live, 0, len(r.leases))
	for _, lv := range r.leases {
		out = append(out, lv)
	}
	return out
}

func (r *registry) size() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.leases)
}

// observe records that name's key held value with remaining TTL pttl at
// time at. A token no live lease holds is an orphan; an orphan seen again
// more than leakAfter after it was first seen, or one without a TTL, is a
// leaked key. It returns why the key counts as leaked, or "". A random token
// is fresh per Lock or TryLock call, so an orphan key with it outlives the
// call by at most a TTL; a custom token is reused by its worker's next
// attempts, which may create the key anew: such a key counts from then.
func (r *registry) observe(name, value string, pttl time.Duration, at time.Time) string {
	k := orphanKey{name, tokenOf(value)}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tokens[k] > 0 {
		return ""
	}
	r.seen++
	first, ok := r.orphans[k]
	if ok && pttl > first.pttl-at.Sub(first.at)+50*time.Millisecond && r.attempts[k].After(first.at) {
		// Set again since first seen, and an attempt with this token began
		// since: a new key of a new (failed) attempt, not the old one kept.
		ok = false
	}
	if !ok {
		first = orphan{at, pttl}
		r.orphans[k] = first
	}
	why := ""
	switch {
	case pttl == -1:
		why = "no TTL"
	case at.Sub(first.at) > r.leakAfter:
		why = fmt.Sprintf("held by a token no live lease holds for %v (first seen with PTTL %v)",
			at.Sub(first.at).Round(time.Millisecond), first.pttl)
	}
	if why != "" {
		if _, dup := r.leaked[k]; dup {
			return ""
		}
		r.leaked[k] = why
	}
	return why
}

func (r *registry) leaks() (observed, leaked int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen, len(r.leaked)
}
