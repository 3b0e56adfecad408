package lease

import (
	"context"
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
	if h := l.spec.Hold; h != nil {
		held, pttl, err := h.Prolong(ctx, l.token, l.fences[0], l.gen, op.name, op.ms)
		if err != nil {
			return fmt.Errorf("lease %s: %s: %w", l.label(), op.name, err)
		}
		if !held {
			l.lose(ErrNotHeld)
			return fmt.Errorf("lease %s: %w", l.label(), ErrNotHeld)
		}
		return l.prolonged(sentAt, pttl)
	}
	min := time.Duration(-1)
	offset := 0
	for _, g := range l.spec.Groups {
		args := []any{&l.token, op.ms, l.gen, op.name}
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
	return l.prolonged(sentAt, min)
}

// prolonged records a successful prolong reply (see prolong).
func (l *Lease) prolonged(sentAt time.Time, min time.Duration) error {
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
		err = l.spec.Errors.NotReplicated(acks, l.spec.Replicas)
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
	if err := checkCtx(ctx, "extend"); err != nil {
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
	if err := checkCtx(ctx, "refresh"); err != nil {
		return err
	}
	if ttl < core.MinTTL {
		return fmt.Errorf("%w: refresh to %v: TTL must be at least %v", ErrInvalid, ttl, core.MinTTL)
	}
	return l.prolongAll(ctx, prolongOp{name: "refresh", ms: ttl.Milliseconds(), bumpGen: true, shorten: true})
}
