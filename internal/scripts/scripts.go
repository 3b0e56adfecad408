// Package scripts holds redlease's Lua scripts, one operation per file, each
// wrapped once in a redis.Script so it runs with EVALSHA and falls back to
// EVAL after a NOSCRIPT (Redis restart, failover, SCRIPT FLUSH).
//
// Every script touches only the keys it is given in KEYS, which must share a
// hash slot; wake-up channels travel in ARGV (they are not keys) and are named
// with the same hash tag, so SPUBLISH reaches the keys' own shard.
package scripts

import (
	"context"
	_ "embed"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed acquire.lua
	acquireSrc string
	//go:embed acquire1.lua
	acquire1Src string
	//go:embed release.lua
	releaseSrc string
	//go:embed prolong.lua
	prolongSrc string
	//go:embed inspect.lua
	inspectSrc string
	//go:embed handoff.lua
	handoffSrc string
	//go:embed sem_acquire.lua
	semAcquireSrc string
	//go:embed sem_release.lua
	semReleaseSrc string
	//go:embed sem_prolong.lua
	semProlongSrc string
	//go:embed sem_inspect.lua
	semInspectSrc string
	//go:embed sem_available.lua
	semAvailableSrc string
	//go:embed rw_acquire.lua
	rwAcquireSrc string
	//go:embed rw_release.lua
	rwReleaseSrc string
	//go:embed rw_prolong.lua
	rwProlongSrc string
	//go:embed rw_inspect.lua
	rwInspectSrc string
	//go:embed status.lua
	statusSrc string
	//go:embed revoke.lua
	revokeSrc string
	//go:embed sem_status.lua
	semStatusSrc string
	//go:embed sem_revoke.lua
	semRevokeSrc string
	//go:embed rw_status.lua
	rwStatusSrc string
	//go:embed rw_revoke.lua
	rwRevokeSrc string
)

// The scripts; see each .lua file's header for KEYS, ARGV and the reply.
var (
	Acquire  = redis.NewScript(acquireSrc)
	Acquire1 = redis.NewScript(acquire1Src) // acquire for a group of one key
	Release  = redis.NewScript(releaseSrc)
	Prolong  = redis.NewScript(prolongSrc)
	Inspect  = redis.NewScript(inspectSrc)
	Handoff  = redis.NewScript(handoffSrc)

	// An operator's view of a lock and its revocation (see internal/revoke).
	Status = redis.NewScript(statusSrc)
	Revoke = redis.NewScript(revokeSrc)

	// A semaphore's scripts: one hash per name, one field per hold.
	SemAcquire   = redis.NewScript(semAcquireSrc)
	SemRelease   = redis.NewScript(semReleaseSrc)
	SemProlong   = redis.NewScript(semProlongSrc)
	SemInspect   = redis.NewScript(semInspectSrc)
	SemAvailable = redis.NewScript(semAvailableSrc)
	SemStatus    = redis.NewScript(semStatusSrc)
	SemRevoke    = redis.NewScript(semRevokeSrc)

	// A read-write lock's scripts: one hash per name, one field per hold.
	RWAcquire = redis.NewScript(rwAcquireSrc)
	RWRelease = redis.NewScript(rwReleaseSrc)
	RWProlong = redis.NewScript(rwProlongSrc)
	RWInspect = redis.NewScript(rwInspectSrc)
	RWStatus  = redis.NewScript(rwStatusSrc)
	RWRevoke  = redis.NewScript(rwRevokeSrc)
)

// Raw runs a script with an argument list its caller built, through Do: the
// caller boxes what it reuses (keys, a token) once, where Script.Run would
// box every key and copy the list again on each call. Like Script.Run it
// sends EVALSHA and falls back to EVAL after NOSCRIPT.
type Raw struct {
	src    string
	digest any // the SHA1, boxed once
}

// Doer is what Raw needs of a client (every go-redis client has it).
type Doer interface {
	Do(ctx context.Context, args ...any) *redis.Cmd
}

// Raw forms of the scripts a lock acquisition and release run.
var (
	AcquireRaw  = newRaw(Acquire, acquireSrc)
	Acquire1Raw = newRaw(Acquire1, acquire1Src)
	ReleaseRaw  = newRaw(Release, releaseSrc)
)

func newRaw(s *redis.Script, src string) *Raw { return &Raw{src: src, digest: s.Hash()} }

// NewRaw returns the Raw form of the script with source src.
func NewRaw(src string) *Raw { return newRaw(redis.NewScript(src), src) }

// Head appends what precedes KEYS: "evalsha", the digest, numkeys.
func (r *Raw) Head(args []any, numkeys int) []any {
	return append(args, "evalsha", r.digest, numkeys)
}

// Run sends args, which start with Head, and returns the reply. On NOSCRIPT
// it sends EVAL with a copy of args (args itself is not changed). Every key
// in args must be a string (Redis Cluster routes by it); ARGV may hold
// pointers (*string, *int64), which go-redis writes as their values.
func (r *Raw) Run(ctx context.Context, c Doer, args []any) (any, error) {
	v, err := c.Do(ctx, args...).Result()
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		ev := append([]any{"eval", r.src}, args[2:]...)
		v, err = c.Do(ctx, ev...).Result()
	}
	return v, err
}
