package core

import (
	"context"
	"errors"
	"fmt"
	"net"
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

// Try makes one acquisition attempt: each group in order, all or nothing.
// When a group is held by someone else, the groups already taken are
// released and the error is a *LockedError. When a call fails (network,
// ctx), the groups taken so far and the failed one, which may have been
// applied, are released before returning the error. On success the keys hold
// s.Token.
func (s *Spec) Try(ctx context.Context) (Grant, error) {
	sentAt := time.Now()
	var fences []int64
	for gi, g := range s.Groups {
		var reply any
		var err error
		acks := int64(-1)
		if s.Replicas > 0 {
			reply, acks, err = s.acquireReplicated(ctx, g)
		} else {
			reply, err = scripts.Acquire.Run(ctx, s.Client, g.acquireKeys(), s.TokenArg, s.TTLArg).Result()
		}
		if err != nil {
			if notSent(err) {
				s.cleanup(ctx, s.Groups[:gi])
			} else {
				s.cleanup(ctx, s.Groups[:gi+1]) // it may have been applied
			}
			return Grant{}, err
		}
		got, busy, pttl, err := ParseAcquire(reply, len(g.Keys))
		if err != nil {
			s.cleanup(ctx, s.Groups[:gi+1])
			return Grant{}, err
		}
		if busy > 0 {
			s.cleanup(ctx, s.Groups[:gi])
			k := g.Keys[busy-1]
			return Grant{}, &LockedError{Name: k.Name, PTTL: pttl, key: k}
		}
		if acks >= 0 && acks < int64(s.Replicas) {
			s.cleanup(ctx, s.Groups[:gi+1])
			return Grant{}, notReplicated(acks, s.Replicas)
		}
		fences = append(fences, got...)
	}
	if !time.Now().Before(Validity(sentAt, s.TTL, s.Drift)) {
		s.cleanup(ctx, s.Groups)
		return Grant{}, fmt.Errorf("%w (TTL %v)", ErrSlowReply, s.TTL)
	}
	return Grant{Spec: s, Fences: fences, SentAt: sentAt, PTTL: s.TTL}, nil
}

// notSent reports an error that proves the request never reached Redis: the
// connection could not be made.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// cleanup releases groups after a failed attempt. It runs even when ctx is
// done, bounded by its own timeout; if Redis stays unreachable the keys
// expire with their TTL.
func (s *Spec) cleanup(ctx context.Context, groups []Group) {
	if len(groups) == 0 {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_, _ = ReleaseGroups(cctx, s.Client, groups, s.Token, s.TokenArg)
}

// ReleaseGroups runs the release script on each group. It returns the first
// key that no longer held token, if any; other keys are released anyway.
// Local waiters of released keys are woken without waiting for pub/sub.
// tokenArg is token boxed (see Spec.TokenArg).
func ReleaseGroups(ctx context.Context, c redis.UniversalClient, groups []Group, token string, tokenArg any) (missing *keys.Key, err error) {
	for _, g := range groups {
		for _, k := range g.Keys {
			wake.Expect(c, k.Wake, token)
		}
		reply, rerr := scripts.Release.Run(ctx, c, g.LockKeys(), g.releaseArgs(tokenArg)...).Result()
		if rerr != nil {
			if err == nil {
				err = rerr
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

// ParseAcquire decodes the acquire script's reply for a group of n keys:
// fences on success, or the 1-based index of the held key and its PTTL.
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
