package core

// The exactly-once protocol
//
// Every request redlease sends may have run although its reply never came —
// once, twice (go-redis resends a script whose read timed out or whose
// connection broke: MaxRetries defaults to 3), or later (a request queued
// behind a stalled server or a slow network, whose caller already gave up).
// The protocol is built so that each of those outcomes is safe, by five
// rules:
//
//  1. A hold names itself. A lock key holds "<fence>:<gen>:<token>": the
//     fence of the acquisition that created it, the lease's generation (see
//     rule 4) and the token of the request that created it. Tokens are 128
//     random bits made per acquisition ATTEMPT (one Try call: one token for
//     all its groups) and per HANDOFF (made by the releaser for that one
//     script call), never shared between two requests that could create a
//     hold. So "the key holds token T" means "request T created this hold",
//     and a cleanup that deletes only keys holding T deletes only what that
//     very request created — never a hold some other request (a waiter's own
//     attempt, a handoff, another process) created since.
//
//  2. Every script is safe to run twice. acquire finds its own token and
//     returns the first run's fences (checking every key before writing
//     any); handoff finds its handoff token and returns the first run's
//     fence; release, inspect are idempotent by nature; renew never shortens
//     and raises the generation; extend and refresh apply once per
//     generation. Each .lua file's header says what a second run does.
//
//  3. Local state moves only on replies, and assumes the worst meanwhile.
//     Validity counts from when a request was first SENT (a retry only runs
//     later, so the key lives at least as long). Before a request that may
//     shorten a key's life (Refresh, Extend of a multi-group lease), the
//     lease lowers its deadline to what it would be if that request
//     succeeded; only a reply may raise it again. A reply that arrives after
//     the deadline never revives a lease.
//
//  4. A request in doubt cannot apply after the lease moved on. Refresh and
//     Extend carry a generation one above the lease's last; a key applies
//     them only while its generation is lower, and renew raises the key's
//     generation to the lease's. So a Refresh whose reply was lost either
//     ran before the next renewal (which then sets the TTL again) or never
//     runs at all: it cannot shorten the key after a renewal that the lease
//     counts on.
//
//  5. Custom tokens (mutex.WithToken) name an owner, not a request. An
//     acquire that finds the key holding its own token re-obtains it: the
//     hold keeps its fence, its TTL is raised to at least the TTL, never
//     shortened. A failed attempt with a custom token never deletes a key: it
//     cannot know which request created the hold. Keys such an attempt may
//     have taken expire with their TTL, or are re-obtained by the owner.
//     Handoffs are never offered to custom-token waiters.
//
// What remains, by design: a request that runs after its caller's cleanup
// (queued behind a stall) can leave a key that no lease holds; it expires
// with its TTL, and ErrLocked for it lasts at most that long. A release whose
// first reply was lost reports ErrNotHeld when its retry finds the key gone.
