// Package core holds what mutex, multilock and lease share: a lock's
// resolved configuration (Spec), its key groups, one acquisition attempt,
// the waiting loop, release and handoff, and the protocol that makes each of
// them safe when a reply is lost (protocol.go).
package core

import (
	"strconv"
	"strings"
	"time"
)

// Margin is subtracted from every local validity deadline on top of the
// drift allowance: Redis stores expiry with 1 ms precision and the local
// timer fires a little after its time.
const Margin = 5 * time.Millisecond

// MinTTL is the shortest TTL a lock accepts.
const MinTTL = 10 * time.Millisecond

// Validity returns the local deadline of a key set with TTL ttl by a request
// sent at sentAt: the key cannot expire in Redis before it, given a clock
// drift rate of at most drift.
func Validity(sentAt time.Time, ttl time.Duration, drift float64) time.Time {
	return sentAt.Add(ttl - time.Duration(float64(ttl)*drift) - Margin)
}

// Holds reports whether v, the value of a lock key, is a hold of token:
// "<fence>:<gen>:<token>", or "<fence>:<gen>w:<token>" once a waiter marked
// it (see protocol.go).
func Holds(v, token string) bool {
	_, ok := holdOf(v, token)
	return ok
}

// HoldsFence reports whether v is the hold of token with fence.
func HoldsFence(v, token string, fence int64) bool {
	f, ok := holdOf(v, token)
	return ok && f == strconv.FormatInt(fence, 10)
}

func holdOf(v, token string) (fence string, ok bool) {
	f, rest, ok := strings.Cut(v, ":")
	if !ok || !digits(f) {
		return "", false
	}
	g, t, ok := strings.Cut(rest, ":")
	return f, ok && generation(g) && t == token
}

// generation reports whether g is a value's generation: digits, with the
// waiter mark "w" or without.
func generation(g string) bool {
	return digits(strings.TrimSuffix(g, "w"))
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
