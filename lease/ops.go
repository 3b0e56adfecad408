package lease

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/core"
	"github.com/redlease/redlease/internal/scripts"
)

// prolongOp is one run of the prolong script (renew, extend or refresh).
type prolongOp struct {
	name    string // the script's mode: "renew", "extend" or "refresh"
	ms      int64  // TTL (renew, refresh) or time to add (extend), in ms
	bumpGen bool   // extend, refresh: applies once per generation
	shorten bool   // refresh: may shorten the key's life
}

// prolongAll runs a TTL-changing script (renew, extend, refresh) on every
// group and records the smallest resulting TTL. A key that no longer holds
// the token ends the lease with ErrNotHeld. A request that may shorten the
// key lowers the deadline before it is sent (its reply may never come); only
// a reply raises it. With WithReplicas, a reply that too few replicas
// acknowledged does not raise it either.
func (l *Lease) prolongAll(ctx context.Context, op prolongOp) error {
	l.opMu.Lock()
	defer l.opMu.Unlock()
	if err := l.lostErr(op.name); err != nil {
		return err
	}
	if op.bumpGen {
		l.gen++ // never reused, even if this request fails (see core/protocol.go)
	}
	sentAt := time.Now()
	if op.shorten {
		l.lower(sentAt, time.Duration(op.ms)*time.Millisecond)
	}
	min := time.Duration(-1)
	offset := 0
	for _, g := range l.spec.Groups {
		args := []any{l.tokenArg, op.ms, l.gen, op.name}
		for _, f := range l.fences[offset : offset+len(g.Keys)] {
			args = append(args, f)
		}
		reply, err := l.run(ctx, scripts.Prolong, g.LockKeys(), args...)
		if err != nil {
			return fmt.Errorf("lease %s: %s: %w", l.label(), op.name, err)
		}
		ok, v, err := core.ParsePair(reply)
		if err != nil {
			return err
		}
		if ok != 1 {
			lerr := l.notHeld(offset + int(v) - 1)
			l.lose(lerr)
			return fmt.Errorf("lease %s: %w", l.label(), lerr)
		}
		if d := time.Duration(v) * time.Millisecond; min < 0 || d < min {
			min = d
		}
		offset += len(g.Keys)
	}
	l.prolong(sentAt, min)
	if err := l.Err(); err != nil {
		return fmt.Errorf("lease %s: reply after the deadline: %w", l.label(), err)
	}
	return nil
}

// run runs a TTL-changing script on one group, waiting for replicas to
// acknowledge it when the lease was acquired WithReplicas.
func (l *Lease) run(ctx context.Context, script *redis.Script, keys []string, args ...any) (any, error) {
	if l.spec.Replicas == 0 {
		return script.Run(ctx, l.spec.Client, keys, args...).Result()
	}
	reply, acks, err := core.RunReplicated(ctx, l.spec.Client, l.spec.Replicas, l.spec.ReplicaTimeout, script, keys, args...)
	if err == nil && acks < int64(l.spec.Replicas) {
		err = core.NotReplicated(acks, l.spec.Replicas)
	}
	return reply, err
}

// Extend adds d to the remaining TTL of the lock (redis-py extend). It fails
// with an error wrapping ErrInvalid for d < 1ms, wrapping the lease's error if
// the lease already ended, and wrapping ErrNotHeld (ending the lease) if Redis
// no longer holds the token. On a Redis error the time may or may not have
// been added; it is added at most once, and the lease's deadline only moves
// on a reply. Auto-renewal never shortens an extended TTL.
func (l *Lease) Extend(ctx context.Context, d time.Duration) error {
	if err := core.CheckCtx(ctx); err != nil {
		return err
	}
	if d < time.Millisecond {
		return fmt.Errorf("%w: extend by %v: must be at least 1ms", ErrInvalid, d)
	}
	return l.prolongAll(ctx, prolongOp{name: "extend", ms: d.Milliseconds(), bumpGen: true})
}

// Refresh sets the remaining TTL of the lock to ttl (redis-py
// extend(replace_ttl=True) and reacquire). Errors as for Extend. Because it
// may shorten the key's life, the lease's deadline is lowered to what ttl
// gives before the request is sent: if Refresh fails with a Redis error, the
// lease stays valid only until that deadline unless a later renewal, Extend
// or Refresh succeeds (which also makes sure the failed Refresh can no longer
// apply late). With auto-renewal on, the next renewal raises a TTL below the
// lease's TTL back to it.
func (l *Lease) Refresh(ctx context.Context, ttl time.Duration) error {
	if err := core.CheckCtx(ctx); err != nil {
		return err
	}
	if ttl < core.MinTTL {
		return fmt.Errorf("%w: refresh to %v: TTL must be at least %v", ErrInvalid, ttl, core.MinTTL)
	}
	return l.prolongAll(ctx, prolongOp{name: "refresh", ms: ttl.Milliseconds(), bumpGen: true, shorten: true})
}

// inspect returns the smallest PTTL of the keys if all hold the token.
func (l *Lease) inspect(ctx context.Context) (time.Duration, error) {
	min := time.Duration(-1)
	offset := 0
	for _, g := range l.spec.Groups {
		args := []any{l.tokenArg}
		for _, f := range l.fences[offset : offset+len(g.Keys)] {
			args = append(args, f)
		}
		reply, err := scripts.Inspect.Run(ctx, l.spec.Client, g.LockKeys(), args...).Result()
		if err != nil {
			return 0, err
		}
		ok, v, err := core.ParsePair(reply)
		if err != nil {
			return 0, err
		}
		if ok != 1 {
			lerr := l.notHeld(offset + int(v) - 1)
			l.lose(lerr)
			return 0, fmt.Errorf("lease %s: %w", l.label(), lerr)
		}
		if d := time.Duration(v) * time.Millisecond; min < 0 || d < min {
			min = d
		}
		offset += len(g.Keys)
	}
	return min, nil
}

// Owned reports whether Redis still holds the lease's token in its key(s)
// (redis-py owned). It returns false without asking Redis once the lease has
// ended; a false answer from Redis ends the lease with ErrNotHeld.
func (l *Lease) Owned(ctx context.Context) (bool, error) {
	if err := core.CheckCtx(ctx); err != nil {
		return false, err
	}
	if l.Err() != nil {
		return false, nil
	}
	_, err := l.inspect(ctx)
	if errors.Is(err, ErrNotHeld) {
		return false, nil
	}
	return err == nil, err
}

// TTL returns the remaining TTL of the lock in Redis (the smallest one for a
// multi-key lease). It fails with the lease's error once it ended, and with
// ErrNotHeld (ending the lease) if Redis no longer holds the token.
func (l *Lease) TTL(ctx context.Context) (time.Duration, error) {
	if err := core.CheckCtx(ctx); err != nil {
		return 0, err
	}
	if err := l.lostErr("ttl"); err != nil {
		return 0, err
	}
	return l.inspect(ctx)
}

// Release ends the lease: Lost is closed with ErrReleased and the renewer
// has stopped before Release returns, whatever Redis answers. Then
// the key(s) still holding the token are deleted and waiters are woken — or,
// for a single-key lock whose only waiters are in this process, the key is
// handed to the next of them in the same script call.
// Release of a lease that already ended (a second Release, an expired or
// taken lease) deletes nothing and returns an error wrapping the lease's
// error. If a key no longer held the token the error wraps ErrNotHeld; a
// Redis failure is returned as is (the key then expires with its TTL). A nil
// ctx is taken as context.Background().
func (l *Lease) Release(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background() // Release always ends the lease; a nil ctx only means no deadline
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
		return fmt.Errorf("lease %s: release: %w", l.label(), prev)
	}
	missing, err := core.ReleaseGroups(ctx, l.spec.Client, l.spec.Groups, l.token, l.fences)
	if err != nil {
		return fmt.Errorf("lease %s: release: %w", l.label(), err)
	}
	if missing != nil {
		return fmt.Errorf("lease %s: release: %w: %q", l.label(), ErrNotHeld, missing.Name)
	}
	return nil
}

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
// "{name}:data". Guard needs all lock keys in one slot.
func (l *Lease) Guard(ctx context.Context, fn func(pipe redis.Pipeliner) error) error {
	if err := core.CheckCtx(ctx); err != nil {
		return err
	}
	if fn == nil {
		return fmt.Errorf("%w: guard: fn is nil", ErrInvalid)
	}
	if len(l.spec.Groups) != 1 {
		return fmt.Errorf("%w: guard on %s: the lock keys span %d hash slots; Guard needs one", ErrInvalid, l.label(), len(l.spec.Groups))
	}
	lockKeys := l.spec.Groups[0].LockKeys()
	for i := 0; ; i++ {
		if err := l.guardLost(); err != nil {
			return err
		}
		err := l.spec.Client.Watch(ctx, func(tx *redis.Tx) error {
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
			if err := l.guardLost(); err != nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, fn)
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

// renewRound is one renewal, run by the lease's renewal timer in the
// timer's goroutine: it resets the TTL, retrying failures with backoff until
// the validity deadline, then re-arms the timer. Between rounds a lease owns
// no goroutine; Release stops the timer and waits for a round in flight.
func (l *Lease) renewRound() {
	l.mu.Lock()
	if l.err != nil {
		l.mu.Unlock()
		return
	}
	l.renewing.Add(1) // under l.mu, before any Release can Wait
	l.mu.Unlock()
	defer l.renewing.Done()

	// base is canceled when the lease ends, so a renewal in flight stops
	// waiting as far as the client honours cancellation.
	base, cancelBase := context.WithCancelCause(context.Background())
	defer cancelBase(nil)
	defer l.onLost(cancelBase)()
	b := l.spec.NewBackoff()
	b.Reset()
	for {
		ctx, cancel := context.WithDeadline(base, l.ValidUntil())
		err := l.prolongAll(ctx, prolongOp{name: "renew", ms: l.spec.TTL.Milliseconds()})
		cancel()
		if err == nil || l.Err() != nil {
			break
		}
		d := b.NextBackOff()
		if d < 0 || d > l.spec.RenewInterval {
			d = l.spec.RenewInterval / 4
		}
		if rem := time.Until(l.ValidUntil()); d > rem {
			d = rem
		}
		r := time.NewTimer(d)
		select {
		case <-l.done:
			r.Stop()
			return
		case <-r.C:
		}
	}
	l.mu.Lock()
	if l.err == nil {
		l.renewTimer.Reset(l.spec.RenewInterval)
	}
	l.mu.Unlock()
}
