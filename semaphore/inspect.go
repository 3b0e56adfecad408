package semaphore

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/redlease/redlease/internal/core"
	"github.com/redlease/redlease/internal/revoke"
	"github.com/redlease/redlease/internal/scripts"
	"github.com/redlease/redlease/lease"
)

// Status is a snapshot of a semaphore in Redis, as Inspect reads it.
type Status struct {
	Name  string
	Limit int64 // this Semaphore's limit (each caller admits under its own)
	Used  int64 // units held by unexpired holds
	// Holders lists the unexpired holds, by fence (oldest first).
	Holders []Holder
	// Waiters counts the subscribers of the name's wake-up channel: one per
	// redis client (usually one per process) with at least one Acquire
	// waiting, however many goroutines wait through it, plus clients whose
	// last waiter left less than 200ms ago. -1 if unknown. See mutex.Status.
	Waiters int64
}

// Holder is one hold of a semaphore.
type Holder struct {
	Token string        // the hold's token (Lease.Token), what Revoke takes
	Fence int64         // its fencing token
	Units int64         // units it holds
	TTL   time.Duration // remaining time on the server's clock
}

// Inspect lists the holds of the semaphore and how many processes wait, in
// one read-only script call. The answer may be stale by the time it arrives.
func (s *Semaphore) Inspect(ctx context.Context) (Status, error) {
	if ctx == nil {
		return Status{}, fmt.Errorf("semaphore: inspect %q: %w: context is nil", s.name, ErrInvalid)
	}
	reply, err := scripts.SemStatus.Run(ctx, s.spec.Client, s.hold.keys, s.hold.wake).Result()
	if err != nil {
		return Status{}, fmt.Errorf("semaphore: inspect %q: %w", s.name, err)
	}
	arr, ok := reply.([]any)
	if !ok || len(arr) < 1 || (len(arr)-1)%4 != 0 {
		return Status{}, fmt.Errorf("semaphore: inspect %q: %w: sem_status returned %T %v", s.name, core.ErrReply, reply, reply)
	}
	st := Status{Name: s.name, Limit: s.limit}
	st.Waiters, ok = arr[0].(int64)
	for i := 1; ok && i < len(arr); i += 4 {
		var h Holder
		var ms int64
		var ok1, ok2, ok3 bool
		h.Token, ok = arr[i].(string)
		h.Fence, ok1 = arr[i+1].(int64)
		h.Units, ok2 = arr[i+2].(int64)
		ms, ok3 = arr[i+3].(int64)
		ok = ok && ok1 && ok2 && ok3
		h.TTL = time.Duration(ms) * time.Millisecond
		st.Used += h.Units
		st.Holders = append(st.Holders, h)
	}
	if !ok {
		return Status{}, fmt.Errorf("semaphore: inspect %q: %w: sem_status returned %v", s.name, core.ErrReply, arr)
	}
	sort.Slice(st.Holders, func(i, j int) bool { return st.Holders[i].Fence < st.Holders[j].Fence })
	return st, nil
}

// Revoke force-releases the hold with token (from Inspect or Lease.Token),
// leaving every other hold alone: in one script call its units are freed,
// waiters are woken as by a release, and a revocation notice is published.
// The holder's lease then ends at once, with an error matching
// lease.ErrRevoked (and lease.ErrNotHeld), as long as the holder's process
// is reachable; one that cannot be reached loses it only at its own validity
// deadline (see mutex.Mutex.Revoke).
//
// It returns nil when it removed the hold, and also when that hold was
// already revoked and its revocation is still recorded (a retry after a lost
// reply, a second Revoke); an error wrapping lease.ErrNotHeld when no
// unexpired hold has token (nothing is changed or published); one wrapping
// ErrInvalid for an empty token or a nil ctx. On a Redis error the
// revocation may or may not have happened; calling Revoke again is safe.
func (s *Semaphore) Revoke(ctx context.Context, token string) error {
	if ctx == nil {
		return fmt.Errorf("semaphore: revoke %q: %w: context is nil", s.name, ErrInvalid)
	}
	if token == "" {
		return fmt.Errorf("semaphore: revoke %q: %w: token %q: must not be empty", s.name, ErrInvalid, token)
	}
	ks := []string{s.hold.key, revoke.Tombstone(s.hold.key, token)}
	n, err := scripts.SemRevoke.Run(ctx, s.spec.Client, ks, token, s.spec.RevokeChannel, s.hold.wake).Int64()
	if err != nil {
		return fmt.Errorf("semaphore: revoke %q: %w", s.name, err)
	}
	if n == 0 {
		return fmt.Errorf("semaphore: revoke %q: %w: no hold with that token", s.name, lease.ErrNotHeld)
	}
	return nil
}
