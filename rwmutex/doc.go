// Package rwmutex is a distributed read-write lock on Redis: many readers or
// one writer of a name at a time, across all processes.
//
// RLock and TryRLock take a read hold, Lock and TryLock the write hold. Each
// acquisition is a *lease.Lease, as from mutex: it renews itself until
// Release, its Lost channel closes when the hold may be gone, and a holder
// that dies loses its hold when its TTL passes (each reader's hold renews and
// expires on its own). The lock is not reentrant: a holder that asks again
// waits like anyone else.
//
// A waiting writer is not starved. A writer that Lock finds blocked sets a
// claim in Redis; while the claim lives, new readers are refused (TryRLock
// fails with ErrLocked even though only readers hold) and the writer is
// admitted once the current readers are gone. The claim expires one TTL after
// the writer's last attempt, so a waiting writer that dies keeps readers out
// for at most one TTL; a writer that gives up (ctx done) deletes it. TryLock
// sets no claim.
//
// Fences come from the per-slot counter that mutex and semaphore use, so
// every acquisition of a name, read or write, has a fence larger than every
// earlier one's. A write fence is therefore larger than the fence of every
// read or write hold that came before it; a read fence orders that reader
// among all acquisitions of the name (it is larger than the last writer's
// fence, but readers that hold at once have different fences and none of
// them excludes the others).
//
// Guard works for a write lease: it WATCHes the hash and applies the
// caller's commands only while the write hold is there (see lease.Guard).
// Guard refuses a read lease with an error wrapping ErrInvalid: a read hold
// is shared, so there is no exclusive hold for it to check.
//
// In Redis a name is one hash, prefix+"{"+name+"}:rw", with a field per hold
// ("r:<token>" for a reader, "w:<token>" for the writer, each
// "<fence>:<gen>:<expiresAtMs>", the expiry on the server's clock) and the
// claim "want" ("<claim>:<expiresAtMs>"). Expired fields stop counting at
// once and are deleted by the next script that writes; the hash expires with
// its latest field, and the release of its last field deletes it, so no key
// of a name remains after its last release (only the fence counter). Every
// operation is one Lua script call, safe to run twice.
//
// Waiting does not poll: a release publishes on prefix+"{"+name+"}:wake",
// waiters of one process are served in arrival order, and a release wakes
// exactly the local waiters it admits (the scripts report the lock's state):
// a writer's release admits every queued local reader up to the first
// queued writer. A backoff (mutex.WithBackoff) covers
// missed wake-ups and expiries; it never sleeps past the earliest expiry, and
// a waiting writer retries at least every TTL/3 to keep its claim alive.
//
// Options are mutex's: WithTTL, WithAutoRenew, WithRenewInterval,
// WithBackoff, WithDriftFactor and WithKeyPrefix mean the same and have the
// same defaults. WithToken and WithReplicas are refused with ErrInvalid.
package rwmutex
