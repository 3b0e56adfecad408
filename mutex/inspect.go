package mutex

import (
	"context"
	"fmt"
	"time"

	"github.com/redlease/redlease/internal/core"
)

// Status is a snapshot of a lock in Redis, as Inspect reads it.
type Status struct {
	Name string // the lock name
	Held bool   // someone holds it; the fields below describe that hold
	// Token is the holder's token (Lease.Token), what Revoke takes.
	Token string
	// Fence is the holder's fencing token (Lease.Fence).
	Fence int64
	// TTL is the key's remaining time to live in Redis; negative when free.
	// The holder's renewer raises it again every renew interval.
	TTL time.Duration
	// Waiters counts the subscribers of the name's wake-up channel, as
	// Redis knows them (PUBSUB SHARDNUMSUB, or NUMSUB before Redis 7): one
	// per redis client — usually one per process — that has at least one
	// Lock call waiting for this name, however many goroutines wait
	// through it. A client keeps the subscription for 200ms after its last
	// waiter left, so it may still count then; a waiter whose subscription
	// failed (it then polls) is not counted; a multilock waiter counts under
	// the name that kept it out. -1 if the server answered neither command.
	Waiters int64
}

func statusOf(k core.KeyStatus) Status {
	return Status{Name: k.Name, Held: k.Held, Token: k.Token, Fence: k.Fence, TTL: k.TTL, Waiters: k.Waiters}
}

// Inspect reads who holds the lock, with which fence and for how long, and
// how many processes wait for it — in one read-only script call, without the
// caller knowing the key scheme. The answer may be stale by the time it
// arrives. On a Redis error it returns the error and a zero Status.
func (m *Mutex) Inspect(ctx context.Context) (Status, error) {
	if ctx == nil {
		return Status{}, fmt.Errorf("mutex: inspect %q: %w: context is nil", m.name, ErrInvalid)
	}
	st, err := m.spec.Status(ctx)
	if err != nil {
		return Status{}, fmt.Errorf("mutex: inspect %q: %w", m.name, err)
	}
	return statusOf(st[0]), nil
}

// Revoke force-releases the lock if it is still held with token (from
// Inspect or Lease.Token), so it never removes a newer holder: in one script
// call the key is deleted, waiters are woken as by a release, and a
// revocation notice is published. The holder's lease then ends at once — its
// Lost closes and Err matches lease.ErrRevoked (and lease.ErrNotHeld) about
// one round trip later — as long as the holder's process is reachable from
// Redis; its renewer stops, and its Release returns that error and deletes
// nothing. A holder that cannot be reached (partitioned, paused) learns
// nothing: it loses the lease at its own validity deadline, as it would
// without revocation, and may act as the holder until then — another client
// may take the lock meanwhile, so only fencing (Lease.Fence, Guard) protects
// what the lock guards. (A renewal of the holder that reaches Redis just
// after the revocation, before the notice, ends the lease with ErrNotHeld
// alone.)
//
// Revoke returns nil when it removed the hold, and also when the hold with
// token was already revoked and its revocation is still recorded (a
// tombstone that lives as long as the hold would have: a retry after a lost
// reply, or a second Revoke). It returns an error wrapping ErrNotHeld when
// the lock is free or held with another token (nothing is deleted or
// published), and one wrapping ErrInvalid for an empty token or a nil ctx.
// On a Redis error the revocation may or may not have happened; calling
// Revoke again is safe.
//
// A token made per acquisition (the default) names one hold. A custom token
// (WithToken) names an owner: Revoke removes whichever hold has that token
// now, a re-obtain included, and a delayed retry of Revoke may remove a hold
// the owner took after the revocation.
func (m *Mutex) Revoke(ctx context.Context, token string) error {
	if ctx == nil {
		return fmt.Errorf("mutex: revoke %q: %w: context is nil", m.name, ErrInvalid)
	}
	if token == "" {
		return fmt.Errorf("mutex: revoke %q: %w: token %q: must not be empty", m.name, ErrInvalid, token)
	}
	revoked, already, err := m.spec.Revoke(ctx, token)
	if err != nil {
		return fmt.Errorf("mutex: revoke %q: %w", m.name, err)
	}
	if revoked+already == 0 {
		return fmt.Errorf("mutex: revoke %q: %w: free or held with another token", m.name, ErrNotHeld)
	}
	return nil
}
