package mutex

import (
	"errors"
	"fmt"
	"time"

	"github.com/redlease/redlease/internal/core"
	"github.com/redlease/redlease/lease"
)

// Errors of the package (also returned by multilock).
var (
	// ErrInvalid: a constructor argument or option is out of range; the error
	// names the value and the rule. It is the same value as lease.ErrInvalid
	// (one for the whole module), so a caller matches either.
	ErrInvalid = lease.ErrInvalid
	// ErrLocked: the lock is held by another owner. The error is a
	// *LockedError that says which name and for how long.
	ErrLocked = errors.New("mutex: locked")
	// ErrNotReplicated: fewer replicas than WithReplicas asks for
	// acknowledged the acquisition in time; it was undone.
	ErrNotReplicated = errors.New("mutex: not acknowledged by enough replicas")
	// ErrNotHeld: Revoke found no hold with the token. It is lease.ErrNotHeld.
	ErrNotHeld = lease.ErrNotHeld
)

// LockedError reports a lock held by another owner: errors.As finds it in
// the errors of TryLock and Lock (and of multilock), and
// errors.Is(err, ErrLocked) matches it.
type LockedError struct {
	Name string        // the lock name that is held
	PTTL time.Duration // its remaining TTL when last seen; negative if unknown
}

func (e *LockedError) Error() string {
	if e.PTTL >= 0 {
		return fmt.Sprintf("mutex: %q is locked by another owner (expires in %v)", e.Name, e.PTTL)
	}
	return fmt.Sprintf("mutex: %q is locked by another owner", e.Name)
}

// Is makes errors.Is(err, ErrLocked) hold.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// publicErrors builds this package's errors for core (see core.Errors).
type publicErrors struct{}

var _ core.Errors = publicErrors{}

func (publicErrors) Locked(name string, pttl time.Duration) error {
	return &LockedError{Name: name, PTTL: pttl}
}

func (publicErrors) NotReplicated(acks int64, want int) error {
	return fmt.Errorf("%w: %d of %d replicas acknowledged", ErrNotReplicated, acks, want)
}
