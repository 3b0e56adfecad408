package core

import (
	"errors"
	"time"

	"github.com/redlease/redlease/internal/keys"
)

// Errors builds the public errors of the package that owns a Spec (mutex
// for both mutex and multilock), so that core returns errors users can match
// with that package's sentinels and types without core importing it.
type Errors interface {
	// Locked reports name held by another owner for pttl (<0: unknown).
	Locked(name string, pttl time.Duration) error
	// NotReplicated reports an acquisition acks of want replicas acknowledged.
	NotReplicated(acks int64, want int) error
}

// ErrReply reports a script reply of an unexpected shape.
var ErrReply = errors.New("redlease: unexpected script reply")

// ErrSlowReply reports an acquisition whose reply arrived after the validity
// it would have granted: the keys are released and the attempt counts as
// failed (Lock retries it).
var ErrSlowReply = errors.New("redlease: acquire reply arrived after the lease's validity")

// busyError is an attempt that found a key held by another owner: the public
// error (see Errors.Locked), plus what the waiting loop needs to know.
type busyError struct {
	err  error
	key  keys.Key
	pttl time.Duration
}

func (e *busyError) Error() string { return e.err.Error() }
func (e *busyError) Unwrap() error { return e.err }
