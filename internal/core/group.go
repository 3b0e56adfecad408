package core

import (
	"sync/atomic"

	"github.com/redlease/redlease/internal/keys"
)

// Group is a set of lock keys in one hash slot, taken, renewed and released
// by one script call. Build it with NewGroup; it is read-only afterwards and
// shared by every acquisition of its lock.
type Group struct {
	Keys []keys.Key

	lock     []string // KEYS of release, renew, extend, refresh, inspect
	acquire  []string // KEYS of acquire and handoff: lock keys, then the slot's fence counter
	keyArgs  []any    // acquire, boxed once for raw script calls (lock keys = keyArgs[:len(Keys)])
	wakeArgs []any    // ARGV[2..] of release: pointers to the Keys' Wake (boxing them allocates nothing)
}

// NewGroup precomputes the script arguments of ks, whose fence counter is
// fence (see keys.FenceKey).
func NewGroup(ks []keys.Key, fence string) Group {
	n := len(ks)
	acquire := make([]string, n+1)
	return newGroup(ks, fence, acquire, make([]any, 2*n+1))
}

// newGroup builds the group of ks in the storage given: acquire has room for
// len(ks)+1 keys, args for 2*len(ks)+1 values.
func newGroup(ks []keys.Key, fence string, acquire []string, args []any) Group {
	n := len(ks)
	g := Group{Keys: ks, lock: acquire[:n:n], acquire: acquire, keyArgs: args[: n+1 : n+1], wakeArgs: args[n+1:]}
	for i := range ks {
		g.acquire[i] = ks[i].Lock
		g.keyArgs[i] = ks[i].Lock
		g.wakeArgs[i] = &ks[i].Wake
	}
	g.acquire[n] = fence
	g.keyArgs[n] = fenceArg(fence)
	return g
}

// fenceArg boxes a fence counter's name; the last one is remembered, since
// most processes have one (every mutex.New would box it again).
func fenceArg(fence string) any {
	if p := lastFenceArg.Load(); p != nil && p.key == fence {
		return p.arg
	}
	a := &boxedKey{key: fence, arg: fence}
	lastFenceArg.Store(a)
	return a.arg
}

type boxedKey struct {
	key string
	arg any
}

var lastFenceArg atomic.Pointer[boxedKey]

// LockKeys returns the lock keys of g. The slice must not be modified.
func (g Group) LockKeys() []string { return g.lock }

func (g Group) acquireKeys() []string { return g.acquire }

// ReleaseArgs returns the release script's ARGV for g: token, the fence of
// each key's hold (nil: any fence, for an attempt's cleanup), the channels.
func (g Group) ReleaseArgs(token any, fences []int64) []any {
	out := make([]any, 0, 1+2*len(g.wakeArgs))
	return g.appendReleaseArgs(out, token, fences)
}

// appendReleaseArgs appends ReleaseArgs to out; fences is read through
// pointers (no boxing), so it must not change until the call returns.
func (g Group) appendReleaseArgs(out []any, token any, fences []int64) []any {
	out = append(out, token)
	for i := range g.Keys {
		if fences == nil {
			out = append(out, "")
		} else {
			out = append(out, &fences[i])
		}
	}
	return append(out, g.wakeArgs...)
}
