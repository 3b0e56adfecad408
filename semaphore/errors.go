package semaphore

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
	// ErrNoPermits: fewer units are free than asked for. The error is a
	// *NoPermitsError that says how many are free.
	ErrNoPermits = errors.New("semaphore: not enough free units")
)

// NoPermitsError reports an acquisition that did not fit: errors.As finds it
// in the errors of TryAcquire and Acquire, and errors.Is(err, ErrNoPermits)
// matches it.
type NoPermitsError struct {
	Name string // the semaphore's name
	Free int64  // units free when last seen (under the caller's limit)

	retryIn time.Duration // until the earliest hold expires; negative if none
}

func (e *NoPermitsError) Error() string {
	return fmt.Sprintf("semaphore: %q has %d free units, not enough", e.Name, e.Free)
}

// Is makes errors.Is(err, ErrNoPermits) hold.
func (e *NoPermitsError) Is(target error) bool { return target == ErrNoPermits }

// publicErrors builds this package's errors for core (see core.Errors). A
// semaphore never asks core for them (no lock keys, no replicas); they exist
// so that a Spec is complete.
type publicErrors struct{}

var _ core.Errors = publicErrors{}

func (publicErrors) Locked(name string, _ time.Duration) error {
	return &NoPermitsError{Name: name, retryIn: -1}
}

func (publicErrors) NotReplicated(acks int64, want int) error {
	return fmt.Errorf("semaphore: %d of %d replicas acknowledged", acks, want)
}
