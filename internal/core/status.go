package core

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redlease/redlease/internal/revoke"
	"github.com/redlease/redlease/internal/scripts"
)

// KeyStatus is what the status script reports of one lock key.
type KeyStatus struct {
	Name    string
	Held    bool
	Token   string
	Fence   int64
	TTL     time.Duration // negative when free or without expiry
	Waiters int64         // subscribers of the wake-up channel; -1 unknown
}

// Status reads every key of s, one status script call per group, in
// acquisition order.
func (s *Spec) Status(ctx context.Context) ([]KeyStatus, error) {
	var out []KeyStatus
	for _, g := range s.Groups {
		args := make([]any, len(g.Keys))
		for i, k := range g.Keys {
			args[i] = k.Wake
		}
		reply, err := scripts.Status.Run(ctx, s.Client, g.LockKeys(), args...).Result()
		if err != nil {
			return nil, err
		}
		arr, ok := reply.([]any)
		if !ok || len(arr) != 3*len(g.Keys) {
			return nil, fmt.Errorf("%w: status returned %T %v", ErrReply, reply, reply)
		}
		for i, k := range g.Keys {
			v, ok1 := arr[3*i].(string)
			pttl, ok2 := arr[3*i+1].(int64)
			subs, ok3 := arr[3*i+2].(int64)
			if !ok1 || !ok2 || !ok3 {
				return nil, fmt.Errorf("%w: status returned %v", ErrReply, arr)
			}
			st := KeyStatus{Name: k.Name, Held: v != "", TTL: time.Duration(pttl) * time.Millisecond, Waiters: subs}
			if pttl < 0 {
				st.TTL = time.Duration(pttl)
			}
			if st.Held {
				st.Token, st.Fence = splitHold(v)
			}
			out = append(out, st)
		}
	}
	return out, nil
}

// splitHold parses "<fence>:<gen>:<token>" (the generation marked with "w"
// or not); a value of another shape is
// returned whole as the token, with fence 0.
func splitHold(v string) (token string, fence int64) {
	f, rest, ok := strings.Cut(v, ":")
	if ok && digits(f) {
		if g, t, ok := strings.Cut(rest, ":"); ok && generation(g) {
			if n, err := strconv.ParseInt(f, 10, 64); err == nil {
				return t, n
			}
		}
	}
	return v, 0
}

// Revoke deletes every key of s that holds token, with any fence, one revoke
// script call per group, publishing the wake-ups and the revocation notices
// (see revoke.lua). It returns how many keys it deleted and how many others
// carry a tombstone of token (revoked earlier, or by a first run whose reply
// was lost). On a Redis error in one group it carries on with the others and
// returns the first error.
func (s *Spec) Revoke(ctx context.Context, token string) (revoked, already int, err error) {
	for _, g := range s.Groups {
		ks := make([]string, 0, 2*len(g.Keys))
		ks = append(ks, g.LockKeys()...)
		args := make([]any, 0, 2+len(g.Keys))
		args = append(args, token, s.RevokeChannel)
		for _, k := range g.Keys {
			ks = append(ks, revoke.Tombstone(k.Lock, token))
			args = append(args, k.Wake)
		}
		reply, rerr := scripts.Revoke.Run(ctx, s.Client, ks, args...).Result()
		var r, a int64
		if rerr == nil {
			r, a, rerr = ParsePair(reply)
		}
		if rerr != nil {
			if err == nil {
				err = rerr
			}
			continue
		}
		revoked += int(r)
		already += int(a)
	}
	return revoked, already, err
}

// RevokeHolds fills out (len(fences) long) with the holds of a lease of s
// with token and fences (one per key, across groups), as revocation notices
// name them, and returns it.
func (s *Spec) RevokeHolds(out []revoke.Hold, token string, fences []int64) []revoke.Hold {
	i := 0
	for _, g := range s.Groups {
		for _, k := range g.Keys {
			if i < len(fences) && i < len(out) {
				out[i] = revoke.Hold{Key: k.Lock, Token: token, Fence: fences[i]}
			}
			i++
		}
	}
	return out
}
