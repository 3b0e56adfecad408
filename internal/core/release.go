package core

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/batch"
	"github.com/redlease/redlease/internal/keys"
	"github.com/redlease/redlease/internal/scripts"
	"github.com/redlease/redlease/internal/wake"
)

// ReleaseGroups releases a lease's groups: the holds of token with fences
// (one per key, across groups). It returns the first key that no longer held
// its hold, if any; other keys are released anyway. Local waiters of
// released keys are woken without waiting for pub/sub, and a single-key lock
// whose next local waiter made an offer is handed to it in the same script
// call when no other process waits (see handoff). call is the storage of the
// release's arguments (used once; see Attempt.Reuse), or nil.
func ReleaseGroups(ctx context.Context, c redis.UniversalClient, groups []Group, token string, fences []int64, call *Call) (missing *keys.Key, err error) {
	if len(groups) == 1 && len(groups[0].Keys) == 1 {
		if w, offer := wake.Head(c, groups[0].Keys[0].Wake); w != nil {
			return handoff(ctx, c, groups[0], token, fences[0], w, offer)
		}
	}
	return releasePlain(ctx, c, groups, token, fences, call)
}

// releasePlain runs the release script on each group; fences as for cleanup.
// Whatever the reply, the local head of each key's queue is woken: the
// release may have run (a first run whose reply was lost), and a needless
// wake-up only costs the head one attempt.
func releasePlain(ctx context.Context, c redis.UniversalClient, groups []Group, token string, fences []int64, call *Call) (missing *keys.Key, err error) {
	if call == nil {
		call = new(Call)
	}
	call.token = token // the arguments point into it
	offset := 0
	for _, g := range groups {
		var gf []int64
		if fences != nil {
			gf = fences[offset : offset+len(g.Keys)]
			for i, k := range g.Keys {
				wake.Expect(c, k.Wake, gf[i], token)
			}
		}
		offset += len(g.Keys)
		args := call.args[:0]
		if n := 4 + 3*len(g.Keys); n > len(call.args) {
			args = make([]any, 0, n)
		}
		args = scripts.ReleaseRaw.Head(args, len(g.Keys))
		args = append(args, g.keyArgs[:len(g.Keys)]...)
		args = g.appendReleaseArgs(args, &call.token, gf)
		reply, rerr := batch.Run(ctx, c, scripts.ReleaseRaw, args)
		for _, k := range g.Keys {
			wake.Released(c, k.Wake)
		}
		var first int64
		if rerr == nil {
			var ok bool
			if first, ok = reply.(int64); !ok || first < 0 || first > int64(len(g.Keys)) {
				rerr = fmt.Errorf("%w: release returned %T %v", ErrReply, reply, reply)
			}
		}
		if rerr != nil {
			if err == nil {
				err = rerr
			}
			// A call left in flight (its ctx ended) may still read its
			// arguments: the next group gets its own.
			call = &Call{token: token}
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
// other process subscribes to its wake-up channel (or no waiter marked the
// hold, see protocol.go), gives it to w — the head
// of this process's queue — in one script call, under a token made for this
// handoff alone: the next holder gets the lock one round trip after the
// release started instead of two. Otherwise the key is released and the
// wake-up published as usual. A retried handoff returns the first run's
// result; if the outcome stays unknown, both holds it may have left — the
// handoff token's and the releaser's — are released, and the local head is
// woken.
func handoff(ctx context.Context, c redis.UniversalClient, g Group, token string, fence int64, w *wake.Waiter, next *wake.Offer) (*keys.Key, error) {
	k := g.Keys[0]
	wake.Expect(c, k.Wake, fence, token)
	hand := NewToken()
	sentAt := time.Now()
	reply, err := scripts.Handoff.Run(ctx, c, g.acquireKeys(), token, fence, hand, next.TTL.Milliseconds(), k.Wake).Result()
	var status, got int64
	if err == nil {
		status, got, err = ParseHandoff(reply)
	}
	if err != nil {
		cleanup(ctx, c, []Group{g}, hand, nil)
		cleanup(ctx, c, []Group{g}, token, []int64{fence})
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
	valid := time.Now().Before(Validity(sentAt, next.TTL, next.Drift))
	if !valid || !w.Deliver(wake.Handed{Token: hand, Fence: got, SentAt: sentAt}) {
		// Too late to be valid, or the waiter left meanwhile: release it
		// (publishing the wake-up for whoever waits now).
		cleanup(ctx, c, []Group{g}, hand, []int64{got})
	}
	return nil, nil
}
