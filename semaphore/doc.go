// Package semaphore is a distributed counting semaphore on Redis: at most
// limit units of a name are held at once, across all processes.
//
// Acquire waits until n units are free or ctx is done; TryAcquire tries once.
// Each acquisition is a *lease.Lease, as from mutex: it renews itself until
// Release, its Lost channel closes when the units may no longer be yours, and
// its Fence is strictly larger than that of every earlier acquisition of the
// name (fences come from the same per-slot counter as mutex's). A holder that
// dies gives its units back when its TTL passes. Guard refuses a semaphore
// lease (error wrapping ErrInvalid): the units are shared, so there is no
// exclusive hold for it to check.
//
// In Redis a name is one hash, prefix+"{"+name+"}:sem", with one field per
// hold: the hold's token (128 random bits per attempt) holding
// "<fence>:<gen>:<units>:<expiresAtMs>", the expiry on the server's clock.
// Expired fields stop counting at once and are deleted by the next
// acquisition; the hash itself expires with its latest field, and a release
// of its last field deletes it, so no key of a name remains after its last
// release (only the fence counter). Every operation is one Lua script call,
// safe to run twice.
//
// The limit is not stored in Redis: each caller's own limit decides its own
// admission (a caller with limit 5 is admitted while the units held by
// everyone, itself included, stay within 5). Callers that share a name
// should share the limit.
//
// Waiting does not poll: a release publishes on prefix+"{"+name+"}:wake"
// (the channel a mutex of the same name uses, so either may see a spurious
// wake-up), waiters of one process are served in arrival order — a large
// request is not overtaken by later small ones of the same process — and, as
// in golang.org/x/sync/semaphore, a release wakes exactly the local waiters
// that the units it leaves free admit, in arrival order, up to the first
// that does not fit (the release and acquire scripts report the units held;
// Redis still decides each admission). A backoff (mutex.WithBackoff) covers
// missed wake-ups and expiries; it never sleeps past the earliest expiry.
//
// Options are mutex's: WithTTL, WithAutoRenew, WithRenewInterval,
// WithBackoff, WithDriftFactor and WithKeyPrefix mean the same and have the
// same defaults. WithToken and WithReplicas are refused with ErrInvalid.
package semaphore
