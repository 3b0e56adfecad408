package multilock

import (
	"context"
	"fmt"

	"github.com/redlease/redlease/mutex"
)

// Inspect reads the status of every name, in Names() order: who holds it,
// with which fence, for how long, and how many processes wait (see
// mutex.Status). It makes one read-only script call per hash slot group (one
// on a single Redis). Names may be held by different owners (a Mutex of one
// name, another MultiLock); a name held by a lease of this set shows that
// lease's token. On a Redis error it returns the error and no statuses.
func (ml *MultiLock) Inspect(ctx context.Context) ([]mutex.Status, error) {
	if ctx == nil {
		return nil, fmt.Errorf("multilock: inspect %s: %w: context is nil", ml.spec.Label(), mutex.ErrInvalid)
	}
	sts, err := ml.spec.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("multilock: inspect %s: %w", ml.spec.Label(), err)
	}
	out := make([]mutex.Status, len(sts))
	for i, k := range sts {
		out[i] = mutex.Status{Name: k.Name, Held: k.Held, Token: k.Token, Fence: k.Fence, TTL: k.TTL, Waiters: k.Waiters}
	}
	return out, nil
}

// Revoke force-releases every name of the set that is held with token, as
// mutex.Mutex.Revoke does for one name: one script call per hash slot group,
// each deleting only keys that hold token, waking their waiters and
// notifying the holder, whose lease then ends with an error matching
// lease.ErrRevoked (naming the first revoked name it learns of). Names held
// with another token are left alone.
//
// It returns nil when it removed at least one name, or found one already
// revoked with token (see mutex.Mutex.Revoke); an error wrapping
// mutex.ErrNotHeld when no name holds token; one wrapping mutex.ErrInvalid
// for an empty token or a nil ctx. On a Redis error in one group the other
// groups are still revoked and the error is returned; calling Revoke again
// is safe.
func (ml *MultiLock) Revoke(ctx context.Context, token string) error {
	if ctx == nil {
		return fmt.Errorf("multilock: revoke %s: %w: context is nil", ml.spec.Label(), mutex.ErrInvalid)
	}
	if token == "" {
		return fmt.Errorf("multilock: revoke %s: %w: token %q: must not be empty", ml.spec.Label(), mutex.ErrInvalid, token)
	}
	revoked, already, err := ml.spec.Revoke(ctx, token)
	if err != nil {
		return fmt.Errorf("multilock: revoke %s: %w", ml.spec.Label(), err)
	}
	if revoked+already == 0 {
		return fmt.Errorf("multilock: revoke %s: %w: no name is held with that token", ml.spec.Label(), mutex.ErrNotHeld)
	}
	return nil
}
