package mutex_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/redistest"
)

// TestReviewRevokeBeforeSubscriptionConfirmed: a hold is revoked while its
// acquisition's reply travels and before this process's revocation
// subscription is confirmed (the notice is published to nobody); the
// subscription is then confirmed (another lease of the client opens it)
// before the lease is watched. The lease could have missed the notice, so it
// must read its tombstone: it must end with ErrRevoked within moments, not
// believe it holds the key until its next renewal (10s; before the fix it
// did: the watch counted as covered because the subscription was live when
// it started).
func TestReviewRevokeBeforeSubscriptionConfirmed(t *testing.T) {
	s := redistest.Start(t)
	loadScripts(t, s)
	ctx := context.Background()
	c, hook := hookedClient(t, s.Addr, false)
	op := s.Client(t)
	name := uniqueName(t)
	probeName := name + "-probe"
	m := newMutex(t, c, name, longHold()...)

	acquired, resume := make(chan struct{}), make(chan struct{})
	hook.once("acquire", func(ctx context.Context, cmd redis.Cmder, next redis.ProcessHook) error {
		err := next(ctx, cmd)
		close(acquired)
		select {
		case <-resume:
		case <-time.After(faultWait):
		}
		return err
	})
	res := make(chan lockResult, 1)
	go func() {
		l, err := m.TryLock(ctx)
		res <- lockResult{l, err}
	}()
	t.Cleanup(func() {
		if r := <-res; r.l != nil {
			_ = r.l.Release(context.Background())
		}
	})
	<-acquired
	v, err := op.Get(ctx, lockKeyOf(name)).Result()
	mt := lockValue.FindStringSubmatch(v)
	if err != nil || mt == nil {
		t.Fatalf("harness: the key holds %q (%v)", v, err)
	}
	if err := newMutex(t, op, name).Revoke(ctx, mt[1]); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	// Another lease of the same client opens the subscription; seeing its
	// own revocation proves the subscription confirmed.
	pl := tryLock(ctx, t, c, probeName, longHold()...)
	if err := newMutex(t, op, probeName).Revoke(ctx, pl.Token()); err != nil {
		t.Fatalf("Revoke probe: %v", err)
	}
	waitLost(t, pl, notifyWithin)
	close(resume)
	r := recv(t, res, "TryLock")
	if r.err != nil {
		t.Fatalf("TryLock: %v", r.err)
	}
	res <- r // for the cleanup
	waitLost(t, r.l, notifyWithin)
}
