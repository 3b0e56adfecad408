package rwmutex

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

// Status is a snapshot of a read-write lock in Redis, as Inspect reads it.
type Status struct {
	Name    string
	Writer  *Holder  // the write hold; nil when none
	Readers []Holder // the read holds, by fence (oldest first)
	// WriterWaiting: a writer waiting in Lock keeps a live claim that
	// refuses new readers.
	WriterWaiting bool
	// Waiters counts the subscribers of the name's wake-up channel: one per
	// redis client (usually one per process) with at least one Lock or
	// RLock waiting, however many goroutines wait through it, plus clients
	// whose last waiter left less than 200ms ago. -1 if unknown. See
	// mutex.Status.
	Waiters int64
}

// Holder is one hold of a read-write lock.
type Holder struct {
	Token string        // the hold's token (Lease.Token), what Revoke takes
	Fence int64         // its fencing token
	TTL   time.Duration // remaining time on the server's clock
}

// Inspect reads the holds of the lock, whether a writer waits, and how many
// processes wait, in one read-only script call. The answer may be stale by
// the time it arrives.
func (m *RWMutex) Inspect(ctx context.Context) (Status, error) {
	if ctx == nil {
		return Status{}, fmt.Errorf("rwmutex: inspect %q: %w: context is nil", m.name, ErrInvalid)
	}
	h := m.write.hold
	reply, err := scripts.RWStatus.Run(ctx, h.client, h.keys, h.wake).Result()
	if err != nil {
		return Status{}, fmt.Errorf("rwmutex: inspect %q: %w", m.name, err)
	}
	bad := func() (Status, error) {
		return Status{}, fmt.Errorf("rwmutex: inspect %q: %w: rw_status returned %T %v", m.name, core.ErrReply, reply, reply)
	}
	arr, ok := reply.([]any)
	if !ok || len(arr) < 2 || (len(arr)-2)%4 != 0 {
		return bad()
	}
	st := Status{Name: m.name}
	want, ok1 := arr[1].(int64)
	st.Waiters, ok = arr[0].(int64)
	if !ok || !ok1 {
		return bad()
	}
	st.WriterWaiting = want >= 0
	for i := 2; i < len(arr); i += 4 {
		kind, ok0 := arr[i].(string)
		tok, ok1 := arr[i+1].(string)
		fence, ok2 := arr[i+2].(int64)
		ms, ok3 := arr[i+3].(int64)
		if !ok0 || !ok1 || !ok2 || !ok3 {
			return bad()
		}
		hd := Holder{Token: tok, Fence: fence, TTL: time.Duration(ms) * time.Millisecond}
		if kind == "w" {
			st.Writer = &hd
		} else {
			st.Readers = append(st.Readers, hd)
		}
	}
	sort.Slice(st.Readers, func(i, j int) bool { return st.Readers[i].Fence < st.Readers[j].Fence })
	return st, nil
}

// Revoke force-releases the hold with token — the writer's or one reader's
// (from Inspect or Lease.Token) — leaving every other hold and a waiting
// writer's claim alone: in one script call the hold is deleted, waiters are
// woken as by a release, and a revocation notice is published. The holder's
// lease then ends at once, with an error matching lease.ErrRevoked (and
// lease.ErrNotHeld), as long as the holder's process is reachable; one that
// cannot be reached loses it only at its own validity deadline (see
// mutex.Mutex.Revoke).
//
// It returns nil when it removed the hold, and also when that hold was
// already revoked and its revocation is still recorded (a retry after a lost
// reply, a second Revoke); an error wrapping lease.ErrNotHeld when no
// unexpired hold has token (nothing is changed or published); one wrapping
// ErrInvalid for an empty token or a nil ctx. On a Redis error the
// revocation may or may not have happened; calling Revoke again is safe.
func (m *RWMutex) Revoke(ctx context.Context, token string) error {
	if ctx == nil {
		return fmt.Errorf("rwmutex: revoke %q: %w: context is nil", m.name, ErrInvalid)
	}
	if token == "" {
		return fmt.Errorf("rwmutex: revoke %q: %w: token %q: must not be empty", m.name, ErrInvalid, token)
	}
	h := m.write.hold
	ks := []string{h.key, revoke.Tombstone(h.key, token)}
	n, err := scripts.RWRevoke.Run(ctx, h.client, ks, token, m.write.spec.RevokeChannel, h.wake).Int64()
	if err != nil {
		return fmt.Errorf("rwmutex: revoke %q: %w", m.name, err)
	}
	if n == 0 {
		return fmt.Errorf("rwmutex: revoke %q: %w: no hold with that token", m.name, lease.ErrNotHeld)
	}
	return nil
}
