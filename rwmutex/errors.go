package rwmutex

import (
	"errors"
	"fmt"
	"time"

	"github.com/redlease/redlease/internal/core"
	"github.com/redlease/redlease/lease"
)

// Errors of the package.
var (
	// ErrInvalid: an argument or option is out of range; the error names the
	// value and the rule. It is lease.ErrInvalid (one value for the module).
	ErrInvalid = lease.ErrInvalid
	// ErrLocked: the hold asked for conflicts with another (a writer, or
	// readers, or a waiting writer's claim). The error is a *LockedError.
	ErrLocked = errors.New("rwmutex: locked")
)

// LockedError reports a refused acquisition: errors.As finds it in the
// errors of TryLock, TryRLock, Lock and RLock, and errors.Is(err, ErrLocked)
// matches it.
type LockedError struct {
	Name string        // the lock's name
	PTTL time.Duration // until the earliest hold or claim of the name expires; negative if none
}

func (e *LockedError) Error() string {
	if e.PTTL >= 0 {
		return fmt.Sprintf("rwmutex: %q is locked (earliest expiry in %v)", e.Name, e.PTTL)
	}
	return fmt.Sprintf("rwmutex: %q is locked", e.Name)
}

// Is makes errors.Is(err, ErrLocked) hold.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// publicErrors builds this package's errors for core (see core.Errors). An
// RWMutex never asks core for them (no lock keys, no replicas); they exist so
// that a Spec is complete.
type publicErrors struct{}

var _ core.Errors = publicErrors{}

func (publicErrors) Locked(name string, pttl time.Duration) error {
	return &LockedError{Name: name, PTTL: pttl}
}

func (publicErrors) NotReplicated(acks int64, want int) error {
	return fmt.Errorf("rwmutex: %d of %d replicas acknowledged", acks, want)
}
