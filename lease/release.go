package lease

import (
	"context"
	"fmt"
	"time"

	"github.com/redlease/redlease/internal/core"
)

// ReleaseTimeout bounds a Release's requests to Redis.
const ReleaseTimeout = 2 * time.Second

// Release ends the lease: Lost is closed with ErrReleased and the renewer
// has stopped before Release returns, whatever Redis answers. Then
// the key(s) still holding the token are deleted and waiters are woken — or,
// for a single-key lock whose only waiters are in this process, the key is
// handed to the next of them in the same script call.
// Release of a lease that already ended (a second Release, an expired or
// taken lease) returns an error wrapping the lease's error; it deletes
// nothing, except for a multi-key lease that ended otherwise than by Release
// (one name revoked or lost): the names that still hold its holds are
// released, so they do not stay locked by no one until their TTL. If a key no longer held the token the error wraps ErrNotHeld (also
// when a first run whose reply was lost had already deleted it); a Redis
// failure is returned as is (the key then expires with its TTL).
//
// Release does not depend on ctx's cancellation: a deferred Release with a
// ctx that has ended (a request's ctx, an errgroup's) still deletes the key.
// Such a ctx is replaced by one bounded by ReleaseTimeout that keeps its
// values; a ctx that cannot be canceled (context.Background()) is used as
// is, bounded by the client's own timeouts. A nil ctx is taken as
// context.Background().
func (l *Lease) Release(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if ctx.Done() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), ReleaseTimeout)
		defer cancel()
	}
	l.mu.Lock()
	prev := l.err
	l.loseLocked(ErrReleased)
	l.mu.Unlock()
	// The renewal timer is stopped (Lost is closed); a round in flight is
	// waited for after the release is sent, so the two overlap. It is
	// harmless meanwhile: the scripts only touch keys holding the token.
	defer l.renewing.Wait()
	if prev != nil {
		if prev != ErrReleased && len(l.fences) > 1 {
			// Each hold has its own fence: only this lease's are deleted.
			_ = l.release(ctx, nil) // l.rel is only for the release of a lease held until Release
		}
		return fmt.Errorf("lease %s: release: %w", l.label(), prev)
	}
	err := l.release(ctx, l.rel) // once: only the Release that ended a held lease gets here
	l.reportReleased(err)
	return err
}

// release deletes the hold(s) of a lease that was held until Release; call
// is the storage of its arguments, or nil.
func (l *Lease) release(ctx context.Context, call *core.Call) error {
	if h := l.spec.Hold; h != nil {
		held, err := h.Release(ctx, l.token, l.fences[0])
		if err != nil {
			return fmt.Errorf("lease %s: release: %w", l.label(), err)
		}
		if !held {
			return fmt.Errorf("lease %s: release: %w", l.label(), ErrNotHeld)
		}
		return nil
	}
	missing, err := core.ReleaseGroups(ctx, l.spec.Client, l.spec.Groups, l.token, l.fences, call)
	if err != nil {
		return fmt.Errorf("lease %s: release: %w", l.label(), err)
	}
	if missing != nil {
		return fmt.Errorf("lease %s: release: %w: %q", l.label(), ErrNotHeld, missing.Name)
	}
	return nil
}
