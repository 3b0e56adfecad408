// Package revoke tells a holder at once that an operator revoked its hold.
//
// A revoke script (revoke.lua, sem_revoke.lua, rw_revoke.lua) deletes a hold
// and, in the same call, publishes a notice on its prefix's revocation
// channel (Channel) with classic PUBLISH — on Redis Cluster that reaches
// every node — and leaves a tombstone (Tombstone) that lives as long as the
// revoked hold would have.
//
// In each process, the leases held through one redis client share one
// listener per channel. It has no connection of its own: the channel rides
// on the subscription connection the client's lock waiters share
// (wake.Listen), subscribed in the background when the first lease starts
// (no request is added to an acquisition or a release) and unsubscribed
// Linger after the last lease ended. A notice naming a
// watched hold (key, token, fence) ends its lease at once. Pub/sub is
// at-most-once, so a notice published while the subscription was not yet
// confirmed, or while it reconnected, can be missed: when the subscription
// is (re)confirmed, every lease that could have missed one reads its
// tombstones once. A notice that arrives just before its lease is watched (a
// revocation right after the acquisition, while the reply travels) is
// remembered for a while and found when the watch starts.
package revoke

import (
	"strconv"
	"strings"

	"github.com/redlease/redlease/internal/keys"
)

// Channel returns the revocation channel of the locks under prefix.
func Channel(prefix string) string { return channels.Of(prefix) }

var channels = keys.NewSuffix("revoked")

// Tombstone returns the key a revocation of token's hold in key leaves: it
// holds the revoked hold's fence for as long as the hold would have lived.
// It shares key's hash tag, so one script reaches both. It ends with the
// token's length, so it reads back one way only (no key and token pair
// shares it with another, however a custom token or a name is crafted), and
// it never ends like a lock key ("}"), a hash (":sem", ":rw") or a fence
// counter.
func Tombstone(key, token string) string {
	return key + ":revoked:" + token + ":" + strconv.Itoa(len(token))
}

// Hold names one hold: the key that keeps it (a lock key, or the hash of a
// semaphore or read-write lock), its token and its fence.
type Hold struct {
	Key   string
	Token string
	Fence int64
}

// Notice returns the payload the revoke scripts publish for h:
// "<fence>:<len(token)>:<token><key>" (the token may contain any byte).
func Notice(h Hold) string {
	return strconv.FormatInt(h.Fence, 10) + ":" + strconv.Itoa(len(h.Token)) + ":" + h.Token + h.Key
}

// parse decodes a notice; ok is false for anything else.
func parse(payload string) (h Hold, ok bool) {
	f, rest, ok := strings.Cut(payload, ":")
	if !ok {
		return h, false
	}
	n, rest, ok := strings.Cut(rest, ":")
	if !ok {
		return h, false
	}
	fence, err1 := strconv.ParseInt(f, 10, 64)
	size, err2 := strconv.Atoi(n)
	if err1 != nil || err2 != nil || size < 0 || size > len(rest) {
		return h, false
	}
	return Hold{Key: rest[size:], Token: rest[:size], Fence: fence}, true
}
