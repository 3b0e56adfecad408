package lease

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redlease/redlease/internal/core"
	"github.com/redlease/redlease/internal/scripts"
)

// inspect returns the smallest PTTL of the keys if all hold the token.
func (l *Lease) inspect(ctx context.Context) (time.Duration, error) {
	if h := l.spec.Hold; h != nil {
		held, pttl, err := h.Inspect(ctx, l.token, l.fences[0])
		if err != nil {
			return 0, err
		}
		if !held {
			l.lose(ErrNotHeld)
			return 0, fmt.Errorf("lease %s: %w", l.label(), ErrNotHeld)
		}
		return pttl, nil
	}
	min := time.Duration(-1)
	offset := 0
	for _, g := range l.spec.Groups {
		args := []any{&l.token}
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
	if err := checkCtx(ctx, "owned"); err != nil {
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
	if err := checkCtx(ctx, "ttl"); err != nil {
		return 0, err
	}
	if err := l.lostErr("ttl"); err != nil {
		return 0, err
	}
	return l.inspect(ctx)
}
