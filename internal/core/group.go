package core

import (
	"github.com/redlease/redlease/internal/keys"
)

// Group is a set of lock keys in one hash slot, taken, renewed and released
// by one script call. Build it with NewGroup; it is read-only afterwards and
// shared by every acquisition of its lock.
type Group struct {
	Keys []keys.Key

	lock     []string // KEYS of release, renew, extend, refresh, inspect
	acquire  []string // KEYS of acquire and handoff: lock keys, then the slot's fence counter
	wakeArgs []any    // ARGV[2..] of release
}

// NewGroup precomputes the script arguments of ks, whose fence counter is
// fence (see keys.FenceKey).
func NewGroup(ks []keys.Key, fence string) Group {
	g := Group{Keys: ks, lock: make([]string, len(ks)), acquire: make([]string, 0, len(ks)+1), wakeArgs: make([]any, len(ks))}
	for i, k := range ks {
		g.lock[i] = k.Lock
		g.wakeArgs[i] = k.Wake
	}
	g.acquire = append(g.acquire, g.lock...)
	g.acquire = append(g.acquire, fence)
	return g
}

// LockKeys returns the lock keys of g. The slice must not be modified.
func (g Group) LockKeys() []string { return g.lock }

func (g Group) acquireKeys() []string { return g.acquire }

// ReleaseArgs returns the release script's ARGV for g: token, the fence of
// each key's hold (nil: any fence, for an attempt's cleanup), the channels.
func (g Group) ReleaseArgs(token any, fences []int64) []any {
	out := make([]any, 0, 1+2*len(g.wakeArgs))
	out = append(out, token)
	for i := range g.Keys {
		if fences == nil {
			out = append(out, "")
		} else {
			out = append(out, fences[i])
		}
	}
	return append(out, g.wakeArgs...)
}
