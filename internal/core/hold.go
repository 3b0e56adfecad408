package core

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// Hold keeps, checks and ends a hold that is not a plain lock key: a
// semaphore's acquisition is one field of a shared hash, not a key of its
// own. A Spec with a Hold has one group of one key (for names and labels);
// its leases use the Hold instead of the lock-key scripts, and Guard refuses
// them (a shared hold excludes nobody) unless they are an ExclusiveHold. Every method must be safe to run
// twice, like the scripts (see protocol.go).
type Hold interface {
	// Prolong renews, extends or refreshes the hold token:fence as the
	// prolong script does a lock key (mode "renew", "extend" or "refresh";
	// ms and gen as its ARGV). held is false when the hold is gone; pttl is
	// its remaining time afterwards.
	Prolong(ctx context.Context, token string, fence, gen int64, mode string, ms int64) (held bool, pttl time.Duration, err error)
	// Inspect reports whether the hold is still there, and for how long.
	Inspect(ctx context.Context, token string, fence int64) (held bool, pttl time.Duration, err error)
	// Release ends the hold and wakes waiters; held is false when it was
	// already gone.
	Release(ctx context.Context, token string, fence int64) (held bool, err error)
}

// ExclusiveHold is a Hold that excludes every other hold of its name (a
// read-write lock's writer), so Guard accepts it: Guard WATCHes WatchKey and
// calls HeldIn on the transaction before queuing the caller's commands.
type ExclusiveHold interface {
	Hold
	// WatchKey is the key whose change may end the hold.
	WatchKey() string
	// HeldIn reports, reading through tx inside the WATCH, whether the hold
	// token:fence is there and unexpired.
	HeldIn(ctx context.Context, tx *redis.Tx, token string, fence int64) (bool, error)
}
