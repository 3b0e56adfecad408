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
//     fence of the request that created the hold (fences come from the
//     slot's counter, so no two holds ever share one), the lease's
//     generation (rule 4) and a token; "<fence>:<gen>w:<token>" once a
//     waiter marked it (see Wake-ups below: the mark sits in the numeric
//     part, so no token, however chosen, can be mistaken for it). Tokens are 128 random bits made per
//     acquisition ATTEMPT (one Try call: one token for all its groups) and
//     per HANDOFF (made by the releaser for that one script call), never
//     shared by two requests that could create a hold. Every script that
//     changes or deletes a hold is given the token AND the fence of the hold
//     it means, so it acts on that hold only — never on one that another
//     request (a waiter's own attempt, a handoff, another process, a
//     re-obtain) created since.
//
//  2. Every script is safe to run twice. acquire finds its own token and
//     returns the first run's fences (it checks every key before writing
//     any); acquire1 (a group of one key) draws a fence before its SET NX,
//     finds its own token in the value SET NX GET returns, and returns the
//     first run's fence (the one it drew stays unused: fences only need to
//     increase strictly per name); handoff finds its handoff token and returns the first run's
//     fence; release and inspect are idempotent; prolong's renew never
//     shortens, and its extend and refresh apply once per generation; an
//     operator's revoke deletes only holds with its token, and a second
//     run finds none (the first run's tombstone tells it they were
//     revoked) and publishes nothing; status is read-only. Each .lua
//     file's header says what a second run does.
//
//  3. Local state moves only on replies and assumes the worst meanwhile.
//     Validity counts from when a request was first SENT (a retry only runs
//     later, so the key lives at least as long). Before a Refresh, which may
//     shorten the key's life, the lease lowers its deadline to what the new
//     TTL would give; only a reply raises a deadline, and a reply after the
//     deadline never revives a lease. A cleanup whose request's reply was
//     lost releases by the attempt's own token (any fence: only that attempt
//     used the token); with known fences it releases exactly those holds.
//
//  4. A request in doubt cannot apply after the lease moved on. Extend and
//     Refresh carry a generation one above the lease's last; a key applies
//     them only while its generation is lower, and renew raises the key's
//     generation to the lease's. So a Refresh whose reply was lost either ran
//     before the lease's next renewal (which then sets the TTL again) or
//     never runs: it cannot shorten the key after a renewal the lease counts
//     on.
//
//  5. Custom tokens (mutex.WithToken) name an owner, not a request. An
//     acquire that finds the key holding its own custom token re-obtains it:
//     it takes the hold over with a fresh fence (so every request of the
//     earlier hold still in flight — a late release, refresh or renewal — no
//     longer matches, and the earlier lease ends with ErrNotHeld at its next
//     renewal), and never shortens its TTL. A custom-token attempt whose
//     reply was lost cannot tell its hold from the owner's others, so it
//     leaves it to expire with its TTL (or to the owner's next re-obtain).
//     Handoffs are never offered to custom-token waiters.
//
// Wake-ups. An acquire attempt that finds a key held by another token marks
// the hold ("w" after the generation) in the same script call; renew, extend,
// refresh and a custom token's re-obtain keep the mark. Release and handoff
// publish the wake-up only for a marked hold (revoke always does): an
// unmarked one was tried by no waiter since it was made, because a waiter
// subscribes (wake.Join) before the attempt that marks, and this process's
// own waiters are woken without pub/sub. An unmarked single-key hold is
// handed to the local head without asking who subscribes. The mark only
// decides whether a message is sent, never who holds what: a wake-up missed
// (a waiter whose attempt failed with an error, one queued behind a local
// waiter that acquired and then lost its lease, or — as before the mark — a
// multi-key waiter moving to the channel of the key that blocked it, whose
// attempt preceded that subscription) costs that waiter its fallback backoff,
// never safety. A mark left by a waiter that gave up costs one needless
// message. Scripts of versions without the mark read a marked value as
// another's hold: do not mix them on the same names.
//
// What remains, by design: a request that runs after its caller's cleanup
// (queued behind a stall) can leave a key that no lease holds; it expires
// with its TTL, and ErrLocked for it lasts at most that long. A release
// whose first reply was lost reports ErrNotHeld when its retry finds the key
// already gone.
