package core

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/keys"
	"github.com/redlease/redlease/internal/scripts"
	"github.com/redlease/redlease/internal/wake"
)

// ErrReply reports a script reply of an unexpected shape.
var ErrReply = errors.New("redlease: unexpected script reply")

// ErrSlowReply reports an acquisition whose reply arrived after the validity
// it would have granted: the keys are released and the attempt counts as
// failed (Lock retries it).
var ErrSlowReply = errors.New("redlease: acquire reply arrived after the lease's validity")

// cleanupTimeout bounds the release of a partial or uncertain acquisition:
// plenty for a reachable Redis, and it keeps a Lock against an unreachable
// one from overrunning its ctx by much. Keys a failed cleanup leaves expire
// with their TTL.
const cleanupTimeout = 500 * time.Millisecond

// Try makes one acquisition attempt: each group in order, all or nothing,
// with one fresh token (or the custom token) for all groups. When a group is
// held by someone else, the groups already taken are released and the error
// is a *LockedError. When a call fails (network, ctx, a slow reply), it may
// still have run, once or more: the groups taken so far are released by
// their fences, and the failed one, whose fences are unknown, by the
// attempt's token, which no other request ever used (with a custom token it
// is left to expire: it cannot be told from the owner's other holds). So
// nothing another request created is touched (see protocol.go). On success
// the keys hold the grant's token and fences.
func (s *Spec) Try(ctx context.Context) (Grant, error) {
	token, custom := s.Token, "1"
	if token == "" {
		token, custom = NewToken(), "0"
	}
	var tokenArg any = token
	sentAt := time.Now()
	fences := make([]int64, 0, len(s.Groups[0].Keys))
	for gi, g := range s.Groups {
		var reply any
		var err error
		acks := int64(-1)
		if s.Replicas > 0 {
			reply, acks, err = RunReplicated(ctx, s.Client, s.Replicas, s.ReplicaTimeout, scripts.Acquire, g.acquireKeys(), tokenArg, s.TTLArg, custom)
		} else {
			reply, err = scripts.Acquire.Run(ctx, s.Client, g.acquireKeys(), tokenArg, s.TTLArg, custom).Result()
		}
		var got []int64
		busy, pttl := 0, time.Duration(0)
		if err == nil {
			got, busy, pttl, err = ParseAcquire(reply, len(g.Keys))
		}
		if err != nil {
			s.cleanup(ctx, s.Groups[:gi], token, fences)
			if custom == "0" {
				s.cleanup(ctx, s.Groups[gi:gi+1], token, nil) // it may have run
			}
			return Grant{}, err
		}
		if busy > 0 {
			s.cleanup(ctx, s.Groups[:gi], token, fences)
			k := g.Keys[busy-1]
			return Grant{}, &LockedError{Name: k.Name, PTTL: pttl, key: k}
		}
		fences = append(fences, got...)
		if acks >= 0 && acks < int64(s.Replicas) {
			s.cleanup(ctx, s.Groups[:gi+1], token, fences)
			return Grant{}, NotReplicated(acks, s.Replicas)
		}
	}
	if !time.Now().Before(Validity(sentAt, s.TTL, s.Drift)) {
		s.cleanup(ctx, s.Groups, token, fences)
		return Grant{}, fmt.Errorf("%w (TTL %v)", ErrSlowReply, s.TTL)
	}
	return Grant{Spec: s, Token: token, Fences: fences, SentAt: sentAt, PTTL: s.TTL}, nil
}

// cleanup releases holds that an attempt with token may have created in
// groups: with fences, exactly those holds; with nil fences, any hold of
// token (only for a token made for one request). It runs even when ctx is
// done, bounded by its own timeout; if Redis stays unreachable the keys
// expire with their TTL.
func (s *Spec) cleanup(ctx context.Context, groups []Group, token string, fences []int64) {
	if len(groups) == 0 {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_, _ = releasePlain(cctx, s.Client, groups, token, fences)
}

// ReleaseGroups releases a lease's groups: the holds of token with fences
// (one per key, across groups). It returns the first key that no longer held
// its hold, if any; other keys are released anyway. Local waiters of
// released keys are woken without waiting for pub/sub, and a single-key lock
// whose next local waiter made an offer is handed to it in the same script
// call when no other process waits (see handoff).
func ReleaseGroups(ctx context.Context, c redis.UniversalClient, groups []Group, token string, fences []int64) (missing *keys.Key, err error) {
	if len(groups) == 1 && len(groups[0].Keys) == 1 {
		if w, offer := wake.Head(c, groups[0].Keys[0].Wake); w != nil {
			if next, ok := offer.(*Spec); ok {
				return handoff(ctx, c, groups[0], token, fences[0], w, next)
			}
		}
	}
	return releasePlain(ctx, c, groups, token, fences)
}

// releasePlain runs the release script on each group; fences as for cleanup.
// Whatever the reply, the local head of each key's queue is woken: the
// release may have run (a first run whose reply was lost), and a needless
// wake-up only costs the head one attempt.
func releasePlain(ctx context.Context, c redis.UniversalClient, groups []Group, token string, fences []int64) (missing *keys.Key, err error) {
	var tokenArg any = token
	offset := 0
	for _, g := range groups {
		var gf []int64
		if fences != nil {
			gf = fences[offset : offset+len(g.Keys)]
			for i, k := range g.Keys {
				wake.Expect(c, k.Wake, WakePayload(gf[i], token))
			}
		}
		offset += len(g.Keys)
		reply, rerr := scripts.Release.Run(ctx, c, g.LockKeys(), g.ReleaseArgs(tokenArg, gf)...).Result()
		for _, k := range g.Keys {
			wake.Released(c, k.Wake)
		}
		var first int64
		if rerr == nil {
			_, first, rerr = ParsePair(reply)
		}
		if rerr != nil {
			if err == nil {
				err = rerr
			}
			continue
		}
		if first > 0 && first <= int64(len(g.Keys)) && missing == nil {
			k := g.Keys[first-1]
			missing = &k
		}
	}
	return missing, err
}

// handoff releases the single key of g held with token and fence and, if no
// other process subscribes to its wake-up channel, gives it to w — the head
// of this process's queue — in one script call, under a token made for this
// handoff alone: the next holder gets the lock one round trip after the
// release started instead of two. Otherwise the key is released and the
// wake-up published as usual. A retried handoff returns the first run's
// result; if the outcome stays unknown, both holds it may have left — the
// handoff token's and the releaser's — are released, and the local head is
// woken.
func handoff(ctx context.Context, c redis.UniversalClient, g Group, token string, fence int64, w *wake.Waiter, next *Spec) (*keys.Key, error) {
	k := g.Keys[0]
	wake.Expect(c, k.Wake, WakePayload(fence, token))
	hand := NewToken()
	sentAt := time.Now()
	reply, err := scripts.Handoff.Run(ctx, c, g.acquireKeys(), token, fence, hand, next.TTLArg, k.Wake).Result()
	var status, got int64
	if err == nil {
		status, got, err = ParseHandoff(reply)
	}
	if err != nil {
		next.cleanup(ctx, []Group{g}, hand, nil)
		next.cleanup(ctx, []Group{g}, token, []int64{fence})
		wake.Released(c, k.Wake)
		return nil, err
	}
	switch status {
	case 0:
		wake.Released(c, k.Wake) // a first run whose reply was lost may have released it
		return &k, nil
	case 1:
		wake.Released(c, k.Wake)
		return nil, nil
	}
	grant := Grant{Spec: next, Token: hand, Fences: []int64{got}, SentAt: sentAt, PTTL: next.TTL}
	if !grant.Valid() || !w.Deliver(grant) {
		// Too late to be valid, or the waiter left meanwhile: release it
		// (publishing the wake-up for whoever waits now).
		next.cleanup(ctx, []Group{g}, hand, grant.Fences)
	}
	return nil, nil
}

// Valid reports whether g's validity has not yet passed.
func (g Grant) Valid() bool {
	return time.Now().Before(Validity(g.SentAt, g.PTTL, g.Spec.Drift))
}

// ParseHandoff decodes the handoff script's reply: status 0 (not held),
// 1 (released), or 2 with the new holder's fence.
func ParseHandoff(reply any) (status, fence int64, err error) {
	arr, ok := reply.([]any)
	if !ok || len(arr) == 0 {
		return 0, 0, fmt.Errorf("%w: handoff returned %T %v", ErrReply, reply, reply)
	}
	status, ok = arr[0].(int64)
	switch {
	case !ok:
	case (status == 0 || status == 1) && len(arr) == 1:
		return status, 0, nil
	case status == 2 && len(arr) == 2:
		if f, ok := arr[1].(int64); ok && f > 0 {
			return 2, f, nil
		}
	}
	return 0, 0, fmt.Errorf("%w: handoff returned %v", ErrReply, arr)
}

// ParseAcquire decodes the acquire script's reply for a group of n keys:
// the fences on success, or the 1-based index of the held key and its PTTL.
func ParseAcquire(reply any, n int) (fences []int64, busy int, pttl time.Duration, err error) {
	arr, ok := reply.([]any)
	if !ok || len(arr) == 0 {
		return nil, 0, 0, fmt.Errorf("%w: acquire returned %T %v", ErrReply, reply, reply)
	}
	status, ok := arr[0].(int64)
	if !ok {
		return nil, 0, 0, fmt.Errorf("%w: acquire status %T %v", ErrReply, arr[0], arr[0])
	}
	switch status {
	case 1:
		if len(arr) != n+1 {
			return nil, 0, 0, fmt.Errorf("%w: acquire returned %d fences for %d keys", ErrReply, len(arr)-1, n)
		}
		fences = make([]int64, n)
		for i := range fences {
			f, ok := arr[i+1].(int64)
			if !ok || f <= 0 {
				return nil, 0, 0, fmt.Errorf("%w: fence %v", ErrReply, arr[i+1])
			}
			fences[i] = f
		}
		return fences, 0, 0, nil
	case 0:
		if len(arr) != 3 {
			return nil, 0, 0, fmt.Errorf("%w: acquire busy reply %v", ErrReply, arr)
		}
		ms, ok1 := arr[1].(int64)
		idx, ok2 := arr[2].(int64)
		if !ok1 || !ok2 || idx < 1 || idx > int64(n) {
			return nil, 0, 0, fmt.Errorf("%w: acquire busy reply %v", ErrReply, arr)
		}
		pttl = time.Duration(ms) * time.Millisecond
		if ms < 0 {
			pttl = time.Duration(ms) // -1: no TTL, -2: gone since; kept negative
		}
		return nil, int(idx), pttl, nil
	}
	return nil, 0, 0, fmt.Errorf("%w: acquire status %d", ErrReply, status)
}

// ParsePair decodes a two-integer script reply.
func ParsePair(reply any) (a, b int64, err error) {
	arr, ok := reply.([]any)
	if !ok || len(arr) != 2 {
		return 0, 0, fmt.Errorf("%w: %T %v", ErrReply, reply, reply)
	}
	a, ok1 := arr[0].(int64)
	b, ok2 := arr[1].(int64)
	if !ok1 || !ok2 {
		return 0, 0, fmt.Errorf("%w: %v", ErrReply, arr)
	}
	return a, b, nil
}
