package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"
	"time"

	"github.com/bsm/redislock"
	"github.com/go-redsync/redsync/v4"
	"github.com/go-redsync/redsync/v4/redis/goredis/v9"
	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
	"github.com/redis/rueidis/rueidislock"

	"github.com/redlease/redlease/mutex"
)

// ttl is the lock TTL every contender uses (redlease's default).
const ttl = 10 * time.Second

// Unlock releases what a TryLock or Lock acquired.
type Unlock func(context.Context) error

// Locker is one contender behind the interface the scenarios drive.
//
// TryLock makes one attempt and fails with an error when the key is held.
// Lock waits with the contender's own mechanism until it acquires the key or
// ctx is done; some libraries give up earlier (redsync after its tries), and
// the scenarios then call Lock again and count the give-up (see lockUntil).
type Locker interface {
	TryLock(ctx context.Context, key string) (Unlock, error)
	Lock(ctx context.Context, key string) (Unlock, error)
}

// contender names an adapter and builds it on a client.
type contender struct {
	ID    string // short column name
	Label string // how it is configured
	New   func(c *redis.Client) Locker
}

var contenders = []contender{
	{"redlease", "mutex.New per key, TryLock/Lock + Lease.Release (defaults)", func(c *redis.Client) Locker { return redleaseLocker{c} }},
	{"redsync", "redsync v4 goredis/v9 pool, default retry (32 tries, 50–250 ms)", func(c *redis.Client) Locker {
		return &redsyncLocker{rs: redsync.New(goredis.NewPool(c)), opts: []redsync.Option{redsync.WithExpiry(ttl)}}
	}},
	{"redsync-1ms", "redsync, WithRetryDelay(1ms), WithTries(1<<30)", func(c *redis.Client) Locker {
		return &redsyncLocker{rs: redsync.New(goredis.NewPool(c)), opts: []redsync.Option{
			redsync.WithExpiry(ttl), redsync.WithRetryDelay(time.Millisecond), redsync.WithTries(1 << 30)}}
	}},
	{"redislock-lin", "bsm/redislock, LinearBackoff(1ms)", func(c *redis.Client) Locker {
		return &redislockLocker{c: redislock.New(c), retry: func() redislock.RetryStrategy { return redislock.LinearBackoff(time.Millisecond) }}
	}},
	{"redislock-exp", "bsm/redislock, ExponentialBackoff(1ms, 64ms)", func(c *redis.Client) Locker {
		return &redislockLocker{c: redislock.New(c), retry: func() redislock.RetryStrategy {
			return redislock.ExponentialBackoff(time.Millisecond, 64*time.Millisecond)
		}}
	}},
	{"rueidislock", "rueidislock v1.0.79, KeyMajority 1 (one key), KeyValidity 10 s; its own rueidis client (auto-pipelining); Release returns before the key is deleted", newRueidisLocker},
	{"floor", "raw go-redis: SET NX + EVALSHA compare-and-delete; Lock spins with 1 ms sleeps", func(c *redis.Client) Locker { return floorLocker{c} }},
}

// ---- redlease

type redleaseLocker struct{ c *redis.Client }

func (l redleaseLocker) TryLock(ctx context.Context, key string) (Unlock, error) {
	m, err := mutex.New(l.c, key)
	if err != nil {
		return nil, err
	}
	ls, err := m.TryLock(ctx)
	if err != nil {
		return nil, err
	}
	return ls.Release, nil
}

func (l redleaseLocker) Lock(ctx context.Context, key string) (Unlock, error) {
	m, err := mutex.New(l.c, key)
	if err != nil {
		return nil, err
	}
	ls, err := m.Lock(ctx)
	if err != nil {
		return nil, err
	}
	return ls.Release, nil
}

// ---- go-redsync (one Redis pool: a plain single-instance lock)

type redsyncLocker struct {
	rs   *redsync.Redsync
	opts []redsync.Option
}

func redsyncUnlock(m *redsync.Mutex) Unlock {
	return func(ctx context.Context) error {
		ok, err := m.UnlockContext(ctx)
		if err == nil && !ok {
			err = errors.New("redsync: unlock failed")
		}
		return err
	}
}

func (l *redsyncLocker) TryLock(ctx context.Context, key string) (Unlock, error) {
	m := l.rs.NewMutex(key, l.opts...) // a Mutex holds its token: one per acquisition
	if err := m.TryLockContext(ctx); err != nil {
		return nil, err
	}
	return redsyncUnlock(m), nil
}

func (l *redsyncLocker) Lock(ctx context.Context, key string) (Unlock, error) {
	m := l.rs.NewMutex(key, l.opts...)
	if err := m.LockContext(ctx); err != nil {
		return nil, err
	}
	return redsyncUnlock(m), nil
}

// ---- bsm/redislock

type redislockLocker struct {
	c     *redislock.Client
	retry func() redislock.RetryStrategy // fresh per Obtain: exponential keeps state
}

func (l *redislockLocker) TryLock(ctx context.Context, key string) (Unlock, error) {
	lk, err := l.c.Obtain(ctx, key, ttl, nil)
	if err != nil {
		return nil, err
	}
	return lk.Release, nil
}

func (l *redislockLocker) Lock(ctx context.Context, key string) (Unlock, error) {
	// Obtain bounds a wait without ctx deadline to the TTL; lockUntil calls
	// again after such a give-up.
	lk, err := l.c.Obtain(ctx, key, ttl, &redislock.Options{RetryStrategy: l.retry()})
	if err != nil {
		return nil, err
	}
	return lk.Release, nil
}

// ---- the raw Redis floor

// floorRelease deletes the key only if it still holds the caller's token.
var floorRelease = redis.NewScript(`if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`)

type floorLocker struct{ c *redis.Client }

func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (l floorLocker) TryLock(ctx context.Context, key string) (Unlock, error) {
	tok := newToken()
	ok, err := l.c.SetNX(ctx, key, tok, ttl).Result() // SET key tok EX 10 NX
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errLocked
	}
	return func(ctx context.Context) error {
		return floorRelease.Run(ctx, l.c, []string{key}, tok).Err()
	}, nil
}

// Lock spins: one SET NX, then a 1 ms sleep, until acquired or ctx is done.
func (l floorLocker) Lock(ctx context.Context, key string) (Unlock, error) {
	var t *time.Timer
	for {
		u, err := l.TryLock(ctx, key)
		if err == nil {
			return u, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		if t == nil {
			t = time.NewTimer(time.Millisecond)
			defer t.Stop()
		} else {
			t.Reset(time.Millisecond)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// lockUntil calls l.Lock until it succeeds or ctx is done. Each error before
// ctx is done (a library giving up after its tries, a pool timeout) is
// counted in giveups and Lock is called again.
func lockUntil(ctx context.Context, l Locker, key string, giveups *int64) (Unlock, error) {
	for {
		u, err := l.Lock(ctx, key)
		if err == nil {
			return u, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		*giveups++
	}
}

// ---- rueidislock (rueidis' own client: auto-pipelining, client-side caching)

// rueidislockers keeps one Locker (and its rueidis client) per server address:
// the scenarios build a contender's Locker per cell.
var (
	rueidisMu      sync.Mutex
	rueidislockers = map[string]rueidislock.Locker{}
)

type rueidisLocker struct{ l rueidislock.Locker }

func newRueidisLocker(c *redis.Client) Locker {
	addr := c.Options().Addr
	rueidisMu.Lock()
	defer rueidisMu.Unlock()
	l := rueidislockers[addr]
	if l == nil {
		var err error
		l, err = rueidislock.NewLocker(rueidislock.LockerOption{
			ClientOption: rueidis.ClientOption{InitAddress: []string{addr}},
			KeyMajority:  1, // one key on one Redis, like the others
			KeyValidity:  ttl,
		})
		if err != nil {
			return errLocker{err}
		}
		rueidislockers[addr] = l
	}
	return rueidisLocker{l}
}

func (r rueidisLocker) TryLock(ctx context.Context, key string) (Unlock, error) {
	_, cancel, err := r.l.TryWithContext(ctx, key)
	if err != nil {
		return nil, err
	}
	// cancel returns at once; the key is deleted in the background.
	return func(context.Context) error { cancel(); return nil }, nil
}

func (r rueidisLocker) Lock(ctx context.Context, key string) (Unlock, error) {
	_, cancel, err := r.l.WithContext(ctx, key)
	if err != nil {
		return nil, err
	}
	return func(context.Context) error { cancel(); return nil }, nil
}

// errLocker fails every call with err.
type errLocker struct{ err error }

func (e errLocker) TryLock(context.Context, string) (Unlock, error) { return nil, e.err }
func (e errLocker) Lock(context.Context, string) (Unlock, error)    { return nil, e.err }
