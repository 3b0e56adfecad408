package core

import (
	"context"
	"errors"
	"time"

	"github.com/redlease/redlease/observe"
)

// The hooks below report a lock's events to its probe. Each is one nil
// check when no observer was given: no clock read, no allocation.

// LockStart begins observing a blocking acquisition: use the returned ctx
// for the wait and hand it, with start, to LockEnd. A nil ctx is not
// observed (the call is refused before any work).
func (s *Spec) LockStart(ctx context.Context) (_ context.Context, start time.Time) {
	if s.Probe == nil || ctx == nil {
		return ctx, time.Time{}
	}
	start = time.Now()
	return s.Probe.LockStart(ctx), start
}

// LockEnd reports the end of a blocking acquisition begun by LockStart.
// busy is the owning package's sentinel for "held by others".
func (s *Spec) LockEnd(ctx context.Context, start time.Time, err, busy error) {
	if s.Probe == nil || start.IsZero() {
		return
	}
	s.Probe.LockEnd(ctx, time.Since(start), outcome(ctx, err, busy), err)
}

// TryStart begins observing a single attempt; hand start to TryEnd.
func (s *Spec) TryStart() (start time.Time) {
	if s.Probe == nil {
		return time.Time{}
	}
	return time.Now()
}

// TryEnd reports the end of a single attempt begun by TryStart.
func (s *Spec) TryEnd(ctx context.Context, start time.Time, err, busy error) {
	if s.Probe == nil || start.IsZero() || ctx == nil {
		return
	}
	s.Probe.Tried(time.Since(start), outcome(ctx, err, busy), err)
}

// WaiterJoined reports a blocking acquisition joining this process's queue
// for the lock.
func (s *Spec) WaiterJoined() {
	if s.Probe != nil {
		s.Probe.WaiterJoined()
	}
}

// WaiterLeft reports it leaving the queue.
func (s *Spec) WaiterLeft() {
	if s.Probe != nil {
		s.Probe.WaiterLeft()
	}
}

func (s *Spec) handedOff() {
	if s.Probe != nil {
		s.Probe.HandedOff()
	}
}

func outcome(ctx context.Context, err, busy error) observe.Outcome {
	switch {
	case err == nil:
		return observe.Acquired
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return observe.Canceled
	case errors.Is(err, busy):
		return observe.Busy
	}
	return observe.Failed
}
