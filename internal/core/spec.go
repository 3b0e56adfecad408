package core

import (
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/revoke"
	"github.com/redlease/redlease/observe"
)

// Spec is a lock's resolved configuration: the groups in acquisition order,
// the custom token if any, the TTL and the lease options that follow a
// success. It is built once per Mutex or MultiLock and read-only afterwards;
// every acquisition and every Lease of the lock shares it.
type Spec struct {
	Config
	Op     string // "mutex" or "multilock": the prefix of error messages
	Errors Errors // builds the owning package's public errors
	Client redis.UniversalClient
	Groups []Group
	Hold   Hold // nil for lock keys; set for a hold of another shape (see Hold)
	Kind   observe.Kind
	Probe  observe.Probe // nil: nothing is observed (see observe.go)

	RevokeChannel string // where revocations of s's holds are announced (see internal/revoke)

	ttlMs int64 // TTL in ms: TTLArg points here, so boxing it allocates nothing
}

// NewSpec resolves a lock of kind: c for groups through client, on behalf of
// op. It asks c's observer, if any, for the lock's probe.
func NewSpec(op string, kind observe.Kind, errs Errors, client redis.UniversalClient, c Config, groups []Group) *Spec {
	s := &Spec{Config: c, Op: op, Errors: errs, Client: client, Groups: groups}
	s.finish(kind)
	return s
}

// finish sets what NewSpec and InitSingle derive from the configuration and
// the groups.
func (s *Spec) finish(kind observe.Kind) {
	s.Kind = kind
	s.RevokeChannel = revoke.Channel(s.Prefix)
	if s.Observer != nil {
		s.Probe = s.Observer.Probe(kind, strings.Join(s.Names(), ","))
	}
	s.setTTLArg()
}

func (s *Spec) setTTLArg() {
	s.ttlMs = s.TTL.Milliseconds()
	s.TTLArg = &s.ttlMs
}

// Names returns the lock names of s in acquisition order.
func (s *Spec) Names() []string {
	var out []string
	for _, g := range s.Groups {
		for _, k := range g.Keys {
			out = append(out, k.Name)
		}
	}
	return out
}

// Label names the lock(s) of s in error messages.
func (s *Spec) Label() string {
	names := s.Names()
	if len(names) == 1 {
		return fmt.Sprintf("%q", names[0])
	}
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return "[" + strings.Join(q, " ") + "]"
}

// Grant is a successful acquisition, what lease.New turns into a Lease.
type Grant struct {
	Spec   *Spec
	Token  string    // the token the keys hold
	Fences []int64   // one per name, in acquisition order
	SentAt time.Time // when the first acquire request was sent
	PTTL   time.Duration

	Attempt *Attempt // the storage of the attempt that made the grant (nil for a handoff, a semaphore or a read-write lock)
}
