package lease

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/core"
)

// guardLost returns, once the lease has ended, Guard's refusal: it wraps
// ErrNotHeld (the lease does not hold its key for this write) and the lease's
// own error (ErrExpired, ErrReleased, ...).
func (l *Lease) guardLost() error {
	err := l.Err()
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrNotHeld) {
		return fmt.Errorf("lease %s: guard: %w", l.label(), err)
	}
	return fmt.Errorf("lease %s: guard: %w (%w)", l.label(), ErrNotHeld, err)
}

// guardRetries bounds how often Guard retries a transaction aborted by a
// change of the watched key that was not a loss (its own renewal's PEXPIRE).
const guardRetries = 8

// Guard runs fn's commands in one MULTI/EXEC that Redis applies only if the
// lease still holds its key(s) at that moment: the lock keys are WATCHed and
// their token checked first. Otherwise nothing is written and the error wraps
// ErrNotHeld — and, if the lease had already ended locally, its error too
// (ErrExpired, ErrReleased). fn only queues commands on the pipeliner; it may
// be called more than once (a renewal touching the watched key aborts an
// attempt, which is then retried). On Redis Cluster, the keys fn writes must
// share the lock's hash slot: name them with the lock name as hash tag, e.g.
// "{name}:data". Guard needs all lock keys in one slot. A semaphore's lease
// and an rwmutex read lease hold something shared with others, so Guard
// refuses them with an error wrapping ErrInvalid: it needs an exclusive lock.
// An rwmutex write lease is exclusive: Guard WATCHes its hash and checks its
// field instead of a lock key.
func (l *Lease) Guard(ctx context.Context, fn func(pipe redis.Pipeliner) error) error {
	if err := checkCtx(ctx, "guard"); err != nil {
		return err
	}
	if fn == nil {
		return fmt.Errorf("%w: guard: fn is nil", ErrInvalid)
	}
	var excl core.ExclusiveHold
	if h := l.spec.Hold; h != nil {
		x, ok := h.(core.ExclusiveHold)
		if !ok {
			return fmt.Errorf("%w: guard on %s: Guard needs an exclusive lock, and a %s hold is shared", ErrInvalid, l.label(), l.spec.Op)
		}
		excl = x
	}
	if len(l.spec.Groups) != 1 {
		return fmt.Errorf("%w: guard on %s: the lock keys span %d hash slots; Guard needs one", ErrInvalid, l.label(), len(l.spec.Groups))
	}
	lockKeys := l.spec.Groups[0].LockKeys()
	if excl != nil {
		lockKeys = []string{excl.WatchKey()}
	}
	for i := 0; ; i++ {
		if err := l.guardLost(); err != nil {
			return err
		}
		err := l.spec.Client.Watch(ctx, func(tx *redis.Tx) error {
			if err := l.checkHeld(ctx, tx, excl, lockKeys); err != nil {
				return err
			}
			if err := l.guardLost(); err != nil {
				return err
			}
			_, err := tx.TxPipelined(ctx, fn)
			return err
		}, lockKeys...)
		if errors.Is(err, redis.TxFailedErr) && i < guardRetries {
			continue
		}
		if errors.Is(err, redis.TxFailedErr) {
			return fmt.Errorf("lease %s: guard: %w (transaction aborted %d times)", l.label(), ErrNotHeld, i+1)
		}
		return err
	}
}

// checkHeld reads, inside Guard's WATCH, whether the lease still holds: its
// lock keys, or its exclusive hold. A hold found gone ends the lease.
func (l *Lease) checkHeld(ctx context.Context, tx *redis.Tx, excl core.ExclusiveHold, lockKeys []string) error {
	if excl != nil {
		ok, err := excl.HeldIn(ctx, tx, l.token, l.fences[0])
		if err != nil {
			return err
		}
		if !ok {
			l.lose(ErrNotHeld)
			return fmt.Errorf("lease %s: guard: %w", l.label(), ErrNotHeld)
		}
		return nil
	}
	vals, err := tx.MGet(ctx, lockKeys...).Result()
	if err != nil {
		return err
	}
	for j, v := range vals {
		if s, _ := v.(string); !core.HoldsFence(s, l.token, l.fences[j]) {
			lerr := l.notHeld(j)
			l.lose(lerr)
			return fmt.Errorf("lease %s: guard: %w", l.label(), lerr)
		}
	}
	return nil
}
