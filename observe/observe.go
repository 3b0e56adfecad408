package observe

import (
	"context"
	"time"
)

// Kind is the kind of lock a Probe observes.
type Kind string

// The kinds of lock. An rwmutex.RWMutex has one Probe per side.
const (
	KindMutex        Kind = "mutex"
	KindMultilock    Kind = "multilock"
	KindSemaphore    Kind = "semaphore"
	KindRWMutexRead  Kind = "rwmutex.read"
	KindRWMutexWrite Kind = "rwmutex.write"
)

// Outcome is how an acquisition call ended.
type Outcome uint8

// The outcomes of an acquisition call.
const (
	// Acquired: the call returned a lease.
	Acquired Outcome = iota
	// Busy: the lock was held by others — a TryLock that found it held, or
	// a Lock whose backoff gave up.
	Busy
	// Canceled: the caller's ctx ended first (canceled or past its
	// deadline), also when it was done on entry.
	Canceled
	// Failed: any other error (Redis unreachable, a reply too late, ...).
	Failed
)

// String returns the outcome's name: "acquired", "busy", "canceled" or
// "error".
func (o Outcome) String() string {
	switch o {
	case Acquired:
		return "acquired"
	case Busy:
		return "busy"
	case Canceled:
		return "canceled"
	case Failed:
		return "error"
	}
	return "unknown"
}

// Reason is why a lease ended without Release.
type Reason uint8

// The reasons a lease is lost.
const (
	// ReasonExpired: the validity deadline passed without a successful
	// renewal (lease.ErrExpired).
	ReasonExpired Reason = iota
	// ReasonNotHeld: Redis reported the hold gone or another owner's
	// (lease.ErrNotHeld).
	ReasonNotHeld
	// ReasonRevoked: the lease was revoked by an operator. Reserved for
	// lease revocation; not reported until the lease package has it.
	ReasonRevoked
	// ReasonOther: an error the lease package does not classify.
	ReasonOther
)

// String returns the reason's name: "expired", "not_held", "revoked" or
// "other".
func (r Reason) String() string {
	switch r {
	case ReasonExpired:
		return "expired"
	case ReasonNotHeld:
		return "not_held"
	case ReasonRevoked:
		return "revoked"
	}
	return "other"
}

// Observer makes the Probe of each lock. It is called once per lock value,
// from the lock's constructor (mutex.New, multilock.New, semaphore.New,
// rwmutex.New — twice, one per side), so it may do work that the probe's
// methods then reuse. name is the lock name (for a multilock, its names in
// acquisition order joined by ","). A nil Probe turns observation off for
// that lock.
type Observer interface {
	Probe(kind Kind, name string) Probe
}

// Probe receives the events of one lock. Its methods are called
// synchronously from the goroutines that use the lock and from each lease's
// timers, concurrently, sometimes with a lease's internal mutex held: they
// must be safe for concurrent use, must not block and must not call back
// into redlease. Calls refused before any work (a nil ctx, an invalid
// argument) are not reported.
//
// Every acquisition reported with Acquired is followed, once that lease
// ends, by exactly one call of Released or Lost.
type Probe interface {
	// LockStart is called when a blocking acquisition (Lock, RLock,
	// Acquire) begins. The context it returns is used for the wait, so its
	// values reach the Redis calls made meanwhile (a span, typically), and
	// is handed to LockEnd; return ctx itself to add nothing.
	LockStart(ctx context.Context) context.Context
	// LockEnd is called when that acquisition returns, after waiting for
	// wait, with the context LockStart returned, its outcome and its error
	// (nil when Acquired).
	LockEnd(ctx context.Context, wait time.Duration, outcome Outcome, err error)
	// Tried is called when a single attempt (TryLock, TryRLock,
	// TryAcquire) returns after d, with its outcome and error.
	Tried(d time.Duration, outcome Outcome, err error)

	// WaiterJoined and WaiterLeft are called when a blocking acquisition
	// joins and leaves this process's queue of waiters for the lock: it
	// queues only after an attempt found the lock held (or others of this
	// process queue already).
	WaiterJoined()
	WaiterLeft()
	// HandedOff is called when a waiting acquisition takes a lock that a
	// release in this process handed to it directly, in the release's own
	// script call. It is also reported as Acquired by LockEnd.
	HandedOff()

	// Released is called, before Release returns, when Release ends a
	// lease that was held, with the error Release returns: nil, one
	// wrapping lease.ErrNotHeld (the hold was already gone in Redis), or a
	// Redis error (the hold then expires with its TTL). A Release of a
	// lease already lost reports nothing.
	Released(err error)
	// Lost is called when a lease ends without Release, before its Lost
	// channel closes.
	Lost(reason Reason)
	// RenewFailed is called for each failed renewal attempt of a lease
	// with auto-renewal; the renewer retries until the lease's deadline. A
	// renewal that finds the hold gone reports this (with an error wrapping
	// lease.ErrNotHeld) as well as Lost.
	RenewFailed(err error)
}
