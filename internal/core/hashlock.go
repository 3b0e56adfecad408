package core

import (
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/keys"
)

// HashLock is what a primitive kept in one hash per name (semaphore,
// rwmutex) resolves once in its constructor.
type HashLock struct {
	Config Config
	Key    keys.Key // Lock is the hash: prefix+"{"+name+"}"+suffix
	Group  Group    // the hash and its slot's fence counter
	Fence  string   // the slot's fence counter
}

// ResolveHash checks client, applies opts, refuses WithToken and
// WithReplicas (each acquisition of a hash hold has its own token; replica
// acknowledgement is not supported) and derives the hash of name, kind's
// suffix appended to the lock key. Its errors name the value and the rule;
// the caller wraps them into ErrInvalid.
func ResolveHash[O Option](client redis.UniversalClient, name, kind, suffix string, opts []O) (HashLock, error) {
	var h HashLock
	if err := CheckClient(client); err != nil {
		return h, err
	}
	cfg, err := Resolve(opts)
	if err != nil {
		return h, err
	}
	if cfg.TokenSet {
		return h, fmt.Errorf("WithToken: a %s makes a token per acquisition", kind)
	}
	if cfg.Replicas != 0 {
		return h, fmt.Errorf("WithReplicas: not supported by %s", kind)
	}
	k, err := cfg.Key(name)
	if err != nil {
		return h, err
	}
	k.Lock += suffix
	g, err := cfg.Group(client, []keys.Key{k})
	if err != nil {
		return h, err
	}
	return HashLock{Config: cfg, Key: k, Group: g, Fence: g.acquire[len(g.acquire)-1]}, nil
}

// ParseHeld decodes a hash hold's prolong or inspect reply: {1, ms} held
// with ms remaining, or {0, _} gone.
func ParseHeld(reply any, err error) (bool, time.Duration, error) {
	if err != nil {
		return false, 0, err
	}
	ok, ms, err := ParsePair(reply)
	if err != nil {
		return false, 0, err
	}
	if ok != 1 {
		return false, 0, nil
	}
	if ms < 0 {
		return false, 0, fmt.Errorf("%w: remaining time %d", ErrReply, ms)
	}
	return true, time.Duration(ms) * time.Millisecond, nil
}

// ParseInts decodes a script reply that is an array of n integers.
func ParseInts(reply any, n int) ([]int64, error) {
	arr, ok := reply.([]any)
	if !ok || len(arr) != n {
		return nil, fmt.Errorf("%w: %T %v", ErrReply, reply, reply)
	}
	out := make([]int64, n)
	for i, v := range arr {
		if out[i], ok = v.(int64); !ok {
			return nil, fmt.Errorf("%w: %v", ErrReply, arr)
		}
	}
	return out, nil
}
