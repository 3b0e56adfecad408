package core

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/batch"
	"github.com/redlease/redlease/internal/scripts"
)

// cleanupTimeout bounds the release of a partial or uncertain acquisition:
// plenty for a reachable Redis, and it keeps a Lock against an unreachable
// one from overrunning its ctx by much. Keys a failed cleanup leaves expire
// with their TTL.
const cleanupTimeout = 500 * time.Millisecond

// Try makes one acquisition attempt: each group in order, all or nothing,
// with one fresh token (or the custom token) for all groups. When a group is
// held by someone else, the groups already taken are released and the error
// is the owner's Errors.Locked error. When a call fails (network, ctx, a slow reply), it may
// still have run, once or more: the groups taken so far are released by
// their fences, and the failed one, whose fences are unknown, by the
// attempt's token, which no other request ever used (with a custom token it
// is left to expire: it cannot be told from the owner's other holds). So
// nothing another request created is touched (see protocol.go). On success
// the keys hold the grant's token and fences. A ctx already done sends
// nothing and returns ctx.Err(). Without Replicas the acquire script goes
// through internal/batch: concurrent attempts on one client share pipelines.
func (s *Spec) Try(ctx context.Context) (Grant, error) {
	return s.TryWith(ctx, new(Attempt))
}

// TryWith is Try using a's storage (a zero Attempt, used by this call only):
// a Lease carries the Attempt that creates it, so that one allocation serves
// both. The grant's token and fences may point into a.
func (s *Spec) TryWith(ctx context.Context, a *Attempt) (Grant, error) {
	if err := ctx.Err(); err != nil {
		return Grant{}, err // nothing sent, nothing to clean up
	}
	a.call.token = s.Token
	custom, customArg := "1", any("1") // a constant boxes without allocating
	if a.call.token == "" {
		a.call.token, custom, customArg = newTokenIn(&a.hex), "0", "0"
	}
	token := a.call.token
	sentAt := time.Now()
	fences := a.fence[:0]
	if len(s.Groups) > 1 || len(s.Groups[0].Keys) > 1 {
		fences = make([]int64, 0, len(s.Groups[0].Keys))
	}
	for gi, g := range s.Groups {
		var reply any
		var err error
		acks := int64(-1)
		script, raw := scripts.Acquire, scripts.AcquireRaw
		if len(g.Keys) == 1 {
			script, raw = scripts.Acquire1, scripts.Acquire1Raw
		}
		if s.Replicas > 0 {
			reply, acks, err = RunReplicated(ctx, s.Client, s.Replicas, s.ReplicaTimeout, script, g.acquireKeys(), &a.call.token, s.TTLArg, custom)
		} else {
			args := a.call.args[:0]
			if n := 6 + len(g.keyArgs); n > len(a.call.args) {
				args = make([]any, 0, n)
			}
			args = raw.Head(args, len(g.keyArgs))
			args = append(args, g.keyArgs...)
			args = append(args, &a.call.token, s.TTLArg, customArg)
			reply, err = batch.Run(ctx, s.Client, raw, args)
		}
		busy, pttl := 0, time.Duration(0)
		n := len(fences)
		if err == nil {
			fences, busy, pttl, err = appendAcquire(fences, reply, len(g.Keys))
		}
		if err != nil {
			s.cleanup(ctx, s.Groups[:gi], token, fences[:n])
			if custom == "0" { // it may have run
				awaitFlight(err)
				s.cleanup(ctx, s.Groups[gi:gi+1], token, nil)
			}
			return Grant{}, err
		}
		if busy > 0 {
			s.cleanup(ctx, s.Groups[:gi], token, fences[:n])
			k := g.Keys[busy-1]
			return Grant{}, &busyError{err: s.Errors.Locked(k.Name, pttl), key: k, pttl: pttl}
		}
		if acks >= 0 && acks < int64(s.Replicas) {
			s.cleanup(ctx, s.Groups[:gi+1], token, fences)
			return Grant{}, s.Errors.NotReplicated(acks, s.Replicas)
		}
	}
	if !time.Now().Before(Validity(sentAt, s.TTL, s.Drift)) {
		s.cleanup(ctx, s.Groups, token, fences)
		return Grant{}, fmt.Errorf("%w (TTL %v)", ErrSlowReply, s.TTL)
	}
	return Grant{Spec: s, Token: token, Fences: fences, SentAt: sentAt, PTTL: s.TTL, Attempt: a}, nil
}

// Attempt is one Try's storage, allocated at once: its script call's
// arguments, the bytes of a token made for the attempt and a single key's
// fence. A call left in flight (its ctx ended) may still read it: an Attempt
// serves one attempt only, and then, if it succeeded, the release of its
// hold (Reuse).
type Attempt struct {
	call  Call
	hex   [tokenLen]byte
	fence [1]int64
}

// Reuse returns the storage of a's script call for the release of the hold
// a created: a's call was answered (a succeeded), so nothing reads it any
// more. Only for the Attempt of a Grant, and only once.
func (a *Attempt) Reuse() *Call { return &a.call }

// Call is the storage of one script call's arguments, allocated with what
// it serves: the token the arguments point to, and room for the argument
// list of a call on one key (an acquire: 3 of EVALSHA, the lock key and the
// fence counter, 3 ARGV; a release: 3, the lock key, 3 ARGV). A call left in
// flight (its ctx ended) may still read it.
type Call struct {
	token string
	args  [8]any
}

// cleanup releases holds that an attempt with token may have created in
// groups: with fences, exactly those holds; with nil fences, any hold of
// token (only for a token made for one request). It runs even when ctx is
// done, bounded by its own timeout; if Redis stays unreachable the keys
// expire with their TTL.
func (s *Spec) cleanup(ctx context.Context, groups []Group, token string, fences []int64) {
	cleanup(ctx, s.Client, groups, token, fences)
}

// awaitFlight waits, at most cleanupTimeout, until a call that failed with
// err can no longer run through its batch (batch.InFlight): the release
// that undoes it must not reach Redis before it.
func awaitFlight(err error) {
	var f *batch.InFlight
	if !errors.As(err, &f) {
		return
	}
	t := time.NewTimer(cleanupTimeout)
	defer t.Stop()
	select {
	case <-f.Done():
	case <-t.C:
	}
}

func cleanup(ctx context.Context, c redis.UniversalClient, groups []Group, token string, fences []int64) {
	if len(groups) == 0 {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_, _ = releasePlain(cctx, c, groups, token, fences, nil)
}

// Valid reports whether g's validity has not yet passed.
func (g Grant) Valid() bool {
	return time.Now().Before(Validity(g.SentAt, g.PTTL, g.Spec.Drift))
}
