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
// still have run, once or more: the groups taken so far and the failed one
// are released by the attempt's token, which only this attempt ever used, so
// nothing another request created is touched (see protocol.go). On success
// the keys hold the grant's token.
func (s *Spec) Try(ctx context.Context) (Grant, error) {
	token := s.Token
	if token == "" {
		token = NewToken()
	}
	var tokenArg any = token
	sentAt := time.Now()
	fences := make([]int64, 0, len(s.Groups[0].Keys))
	var gen int64
	for gi, g := range s.Groups {
		var reply any
		var err error
		acks := int64(-1)
		if s.Replicas > 0 {
			reply, acks, err = RunReplicated(ctx, s.Client, s.Replicas, s.ReplicaTimeout, scripts.Acquire, g.acquireKeys(), tokenArg, s.TTLArg)
		} else {
			reply, err = scripts.Acquire.Run(ctx, s.Client, g.acquireKeys(), tokenArg, s.TTLArg).Result()
		}
		if err != nil {
			s.cleanup(ctx, s.Groups[:gi+1], token) // it may have run
			return Grant{}, err
		}
		got, ggen, busy, pttl, err := ParseAcquire(reply, len(g.Keys))
		if err != nil {
			s.cleanup(ctx, s.Groups[:gi+1], token)
			return Grant{}, err
		}
		if busy > 0 {
			s.cleanup(ctx, s.Groups[:gi], token)
			k := g.Keys[busy-1]
			return Grant{}, &LockedError{Name: k.Name, PTTL: pttl, key: k}
		}
		if acks >= 0 && acks < int64(s.Replicas) {
			s.cleanup(ctx, s.Groups[:gi+1], token)
			return Grant{}, NotReplicated(acks, s.Replicas)
		}
		fences = append(fences, got...)
		gen = max(gen, ggen)
	}
	if !time.Now().Before(Validity(sentAt, s.TTL, s.Drift)) {
		s.cleanup(ctx, s.Groups, token)
		return Grant{}, fmt.Errorf("%w (TTL %v)", ErrSlowReply, s.TTL)
	}
	return Grant{Spec: s, Token: token, Gen: gen, Fences: fences, SentAt: sentAt, PTTL: s.TTL}, nil
}

// cleanup releases what the attempt with token may have taken in groups. It
// runs even when ctx is done, bounded by its own timeout; if Redis stays
// unreachable the keys expire with their TTL. With a custom token it deletes
// nothing: the hold may be a re-obtain of one the owner already had.
func (s *Spec) cleanup(ctx context.Context, groups []Group, token string) {
	if len(groups) == 0 || s.Token != "" {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_, _ = releasePlain(cctx, s.Client, groups, token)
}

// ReleaseGroups releases a lease's groups. It returns the first key that no
// longer held token, if any; other keys are released anyway. Local waiters
// of released keys are woken without waiting for pub/sub, and a single-key
// lock whose next local waiter made an offer is handed to it in the same
// script call when no other process waits (see handoff).
func ReleaseGroups(ctx context.Context, c redis.UniversalClient, groups []Group, token string) (missing *keys.Key, err error) {
	if len(groups) == 1 && len(groups[0].Keys) == 1 {
		if w, offer := wake.Head(c, groups[0].Keys[0].Wake); w != nil {
			if next, ok := offer.(*Spec); ok {
				return handoff(ctx, c, groups[0], token, w, next)
			}
		}
	}
	return releasePlain(ctx, c, groups, token)
}

// releasePlain runs the release script on each group.
func releasePlain(ctx context.Context, c redis.UniversalClient, groups []Group, token string) (missing *keys.Key, err error) {
	var tokenArg any = token
	for _, g := range groups {
		for _, k := range g.Keys {
			wake.Expect(c, k.Wake, token)
		}
		reply, rerr := scripts.Release.Run(ctx, c, g.LockKeys(), g.releaseArgs(tokenArg)...).Result()
		if rerr != nil {
			if err == nil {
				err = rerr
			}
			// It may have run: let the local head look for itself.
			for _, k := range g.Keys {
				wake.Released(c, k.Wake)
			}
			continue
		}
		released, first, perr := ParsePair(reply)
		if perr != nil {
			if err == nil {
				err = perr
			}
			continue
		}
		if released > 0 {
			for i, k := range g.Keys {
				if first == 0 || int64(i+1) != first {
					wake.Released(c, k.Wake)
				}
			}
		}
		if first > 0 && first <= int64(len(g.Keys)) && missing == nil {
			k := g.Keys[first-1]
			missing = &k
		}
	}
	return missing, err
}

// handoff releases the single key of g held with token and, if no other
// process subscribes to its wake-up channel, gives it to w — the head of this
// process's queue — in one script call, under a token made for this handoff
// alone: the next holder gets the lock one round trip after the release
// started instead of two. Otherwise the key is released and the wake-up
// published as usual. A retried handoff returns the first run's result; if
// the outcome stays unknown, the handoff token is released (it can only
// delete what this very call created) and the local head is woken.
func handoff(ctx context.Context, c redis.UniversalClient, g Group, token string, w *wake.Waiter, next *Spec) (*keys.Key, error) {
	k := g.Keys[0]
	wake.Expect(c, k.Wake, token)
	hand := NewToken()
	sentAt := time.Now()
	reply, err := scripts.Handoff.Run(ctx, c, g.acquireKeys(), token, hand, next.TTLArg, k.Wake).Result()
	var status, fence int64
	if err == nil {
		status, fence, err = ParseHandoff(reply)
	}
	if err != nil {
		// Whatever ran: a hold under hand was created by this call and
		// delivered to nobody; a hold under token is ours, the lease ended.
		next.cleanup(ctx, []Group{g}, hand)
		next.cleanup(ctx, []Group{g}, token)
		wake.Released(c, k.Wake)
		return nil, err
	}
	switch status {
	case 0:
		wake.Unexpect(c, k.Wake, token)
		return &k, nil
	case 1:
		wake.Released(c, k.Wake)
		return nil, nil
	}
	wake.Unexpect(c, k.Wake, token)
	grant := Grant{Spec: next, Token: hand, Fences: []int64{fence}, SentAt: sentAt, PTTL: next.TTL}
	if !time.Now().Before(Validity(sentAt, next.TTL, next.Drift)) || !w.Deliver(grant) {
		// Too late to be valid, or the waiter left meanwhile: release it
		// (publishing the wake-up for whoever waits now).
		next.cleanup(ctx, []Group{g}, hand)
	}
	return nil, nil
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
// the generation and the fences on success, or the 1-based index of the held
// key and its PTTL.
func ParseAcquire(reply any, n int) (fences []int64, gen int64, busy int, pttl time.Duration, err error) {
	arr, ok := reply.([]any)
	if !ok || len(arr) == 0 {
		return nil, 0, 0, 0, fmt.Errorf("%w: acquire returned %T %v", ErrReply, reply, reply)
	}
	status, ok := arr[0].(int64)
	if !ok {
		return nil, 0, 0, 0, fmt.Errorf("%w: acquire status %T %v", ErrReply, arr[0], arr[0])
	}
	switch status {
	case 1:
		if len(arr) != n+2 {
			return nil, 0, 0, 0, fmt.Errorf("%w: acquire returned %d fences for %d keys", ErrReply, len(arr)-2, n)
		}
		gen, ok = arr[1].(int64)
		if !ok || gen < 0 {
			return nil, 0, 0, 0, fmt.Errorf("%w: generation %v", ErrReply, arr[1])
		}
		fences = make([]int64, n)
		for i := range fences {
			f, ok := arr[i+2].(int64)
			if !ok || f <= 0 {
				return nil, 0, 0, 0, fmt.Errorf("%w: fence %v", ErrReply, arr[i+2])
			}
			fences[i] = f
		}
		return fences, gen, 0, 0, nil
	case 0:
		if len(arr) != 3 {
			return nil, 0, 0, 0, fmt.Errorf("%w: acquire busy reply %v", ErrReply, arr)
		}
		ms, ok1 := arr[1].(int64)
		idx, ok2 := arr[2].(int64)
		if !ok1 || !ok2 || idx < 1 || idx > int64(n) {
			return nil, 0, 0, 0, fmt.Errorf("%w: acquire busy reply %v", ErrReply, arr)
		}
		pttl = time.Duration(ms) * time.Millisecond
		if ms < 0 {
			pttl = time.Duration(ms) // -1: no TTL, -2: gone since; kept negative
		}
		return nil, 0, int(idx), pttl, nil
	}
	return nil, 0, 0, 0, fmt.Errorf("%w: acquire status %d", ErrReply, status)
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
