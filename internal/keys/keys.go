// Package keys derives the Redis key names redlease uses for a lock name and
// computes their Redis Cluster hash slot.
//
// For a prefix P and a name N the lock key is P+"{"+N+"}" and the wake-up
// channel the lock key plus ":wake"; they share a hash tag. Fences come from
// one counter per hash slot (see FenceKey), not one per name, so that no key
// outlives the leases of a name: after the last release of a name nothing of
// it remains in Redis, and fences stay strictly increasing per name because
// every name of a slot draws from the same counter.
package keys

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Key holds the Redis names belonging to one lock name.
type Key struct {
	Name string // the caller's lock name
	Lock string // holds "<fence>:<gen>[w]:<token>" while the lock is held
	Wake string // pub/sub channel a release publishes on
	Slot int    // Redis Cluster hash slot shared by Lock and Wake
}

// RuleError describes why a name or prefix was refused; callers wrap it into
// their package's ErrInvalid.
type RuleError struct{ Value, Rule string }

func (e *RuleError) Error() string { return fmt.Sprintf("%q: %s", e.Value, e.Rule) }

// For returns the keys of name under prefix. It refuses an empty name and a
// prefix/name pair whose lock key would have an empty hash tag (for example a
// name starting with '}' or a prefix containing "{}"): Redis would then hash the
// whole key, and the lock and fence keys could land in different slots.
func For(prefix, name string) (Key, error) {
	return forName(prefix, name, true)
}

// ForUnsharded is For for a client that is not a Redis Cluster client, where
// hash slots route nothing: Slot is left 0 (the CRC16 is not computed).
func ForUnsharded(prefix, name string) (Key, error) {
	return forName(prefix, name, false)
}

func forName(prefix, name string, slot bool) (Key, error) {
	if name == "" {
		return Key{}, &RuleError{Value: name, Rule: "lock name must not be empty"}
	}
	// One string holds both names: the lock key is the channel's prefix.
	wake := prefix + "{" + name + "}:wake"
	lock := wake[:len(wake)-len(":wake")]
	tag := HashTag(lock)
	if tag == lock {
		return Key{}, &RuleError{Value: name, Rule: fmt.Sprintf("lock key %q has an empty hash tag (a name may not start with '}', a prefix may not contain \"{}\")", truncate(lock))}
	}
	k := Key{Name: name, Lock: lock, Wake: wake}
	if slot {
		k.Slot = slotOfTag(tag)
	}
	return k, nil
}

// FenceKey returns the fence counter that serves the lock keys of slot under
// prefix. Without cluster (a single Redis, Sentinel) there is one counter,
// prefix+"fence". On Redis Cluster the counter must share the lock keys' slot
// so that one script can use both: it is prefix+"{"+tag+"}:fence" with the
// shortest tag (base 36 numbers in order) that puts the key in slot. Tags are
// searched once per prefix and slot and remembered; ok is false if no tag
// reaches slot (a prefix whose own hash tag pins every key elsewhere).
func FenceKey(prefix string, slot int, cluster bool) (key string, ok bool) {
	if !cluster {
		return unshardedFence(prefix), true
	}
	ck := fenceCacheKey{prefix, slot}
	if k, ok := fenceCache.Load(ck); ok {
		return k.(string), true
	}
	for i := 0; i < 1<<22; i++ {
		k := prefix + "{" + strconv.FormatInt(int64(i), 36) + "}:fence"
		if Slot(k) == slot {
			fenceCache.Store(ck, k)
			return k, true
		}
	}
	return "", false
}

type fenceCacheKey struct {
	prefix string
	slot   int
}

var fenceCache sync.Map // fenceCacheKey → string

// The fence counter without cluster, remembered for the last prefix.
var unsharded = NewSuffix("fence")

func unshardedFence(prefix string) string { return unsharded.Of(prefix) }

// Suffix makes prefix+suffix and remembers it for the last prefix asked
// for: most processes use one prefix, so building a lock then needs no
// concatenation. Safe for concurrent use; not to be copied.
type Suffix struct {
	suffix string
	last   atomic.Pointer[[2]string] // prefix, prefix+suffix
}

// NewSuffix returns a Suffix appending suffix.
func NewSuffix(suffix string) *Suffix { return &Suffix{suffix: suffix} }

// Of returns prefix+suffix.
func (c *Suffix) Of(prefix string) string {
	if p := c.last.Load(); p != nil && p[0] == prefix {
		return p[1]
	}
	k := prefix + c.suffix
	c.last.Store(&[2]string{prefix, k})
	return k
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// HashTag returns the part of key that Redis Cluster hashes: the text between
// the first '{' and the next '}' when non-empty, else the whole key.
func HashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

// Slot returns the Redis Cluster hash slot of key (CRC16/XMODEM of its hash
// tag, modulo 16384).
func Slot(key string) int {
	return slotOfTag(HashTag(key))
}

func slotOfTag(tag string) int { return int(crc16(tag) % 16384) }

// crcTable[b] is the CRC16/XMODEM of the byte b: a table lookup per byte
// instead of eight shifts.
var crcTable = func() (t [256]uint16) {
	for i := range t {
		crc := uint16(i) << 8
		for b := 0; b < 8; b++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
		t[i] = crc
	}
	return t
}()

func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc = crc<<8 ^ crcTable[byte(crc>>8)^s[i]]
	}
	return crc
}

// Redirect parses a Redis Cluster redirection, "MOVED 3999 127.0.0.1:6381"
// or "ASK 3999 127.0.0.1:6381": the slot's new owner. ok is false for any
// other error.
func Redirect(err error) (kind, addr string, ok bool) {
	if err == nil {
		return "", "", false
	}
	f := strings.Fields(err.Error())
	if len(f) != 3 || (f[0] != "MOVED" && f[0] != "ASK") {
		return "", "", false
	}
	return f[0], f[2], true
}
