// Package observe is the hook through which redlease reports what its locks
// do — acquisitions and how long they waited, releases, leases lost,
// renewals that failed, handoffs, waiters — to metrics and tracing.
//
// It defines interfaces only and has no dependencies: the OpenTelemetry
// implementation is the separate module
// github.com/redlease/redlease/redleaseotel, so that the core module does
// not depend on OpenTelemetry. Give an Observer to a lock with
// mutex.WithObserver (it works for mutex, multilock, semaphore and rwmutex).
//
// Without an observer nothing is measured or called: each hook is one nil
// check. With one, the observer is asked once per lock, in its constructor,
// for a Probe for that lock (Observer.Probe), so that it can prepare
// everything that does not change — attribute sets, option slices — and the
// calls on the hot path need not allocate.
package observe
