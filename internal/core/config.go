package core

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/keys"
)

// Defaults of a lock's configuration (documented on the mutex options).
const (
	DefaultTTL    = 10 * time.Second
	DefaultDrift  = 0.01
	DefaultPrefix = "redlease:"
)

// Config is the resolved configuration shared by mutex and multilock.
type Config struct {
	TTL           time.Duration
	AutoRenew     bool
	RenewInterval time.Duration
	RenewSet      bool // RenewInterval was given; else it is TTL/3
	Token         string
	TokenSet      bool
	NewBackoff    func() backoff.BackOff
	Drift         float64
	Prefix        string

	Replicas       int
	ReplicaTimeout time.Duration

	ttlArg any // TTL in ms, boxed once
}

// ApplyOption is set by package mutex: it applies a mutex.Option (passed as
// any so that core does not import mutex) to c.
var ApplyOption func(opt any, c *Config)

// NewConfig applies opts (mutex.Option values) over the defaults and
// validates the result.
func NewConfig[O any](opts []O) (Config, error) {
	c := Config{TTL: DefaultTTL, AutoRenew: true, NewBackoff: DefaultBackoff, Drift: DefaultDrift, Prefix: DefaultPrefix}
	for _, o := range opts {
		if any(o) == nil {
			return c, fmt.Errorf("%w: nil option", ErrInvalid)
		}
		ApplyOption(o, &c)
	}
	return c, c.validate()
}

func (c *Config) validate() error {
	if c.TTL < MinTTL {
		return fmt.Errorf("%w: TTL %v: must be at least %v", ErrInvalid, c.TTL, MinTTL)
	}
	// Redis receives whole milliseconds; validity is counted from that.
	c.TTL = c.TTL.Truncate(time.Millisecond)
	if !(c.Drift >= 0 && c.Drift < 0.5) {
		return fmt.Errorf("%w: drift factor %v: must be in [0, 0.5)", ErrInvalid, c.Drift)
	}
	window := Validity(time.Time{}, c.TTL, c.Drift).Sub(time.Time{})
	if window <= 0 {
		return fmt.Errorf("%w: TTL %v with drift factor %v leaves no validity", ErrInvalid, c.TTL, c.Drift)
	}
	if !c.RenewSet {
		c.RenewInterval = c.TTL / 3
	}
	if c.RenewInterval <= 0 || c.RenewInterval >= window {
		return fmt.Errorf("%w: renew interval %v: must be positive and shorter than the lease's validity window %v (TTL %v × (1 − drift %v) − %v), or the lease expires before its first renewal",
			ErrInvalid, c.RenewInterval, window, c.TTL, c.Drift, Margin)
	}
	if c.TokenSet && c.Token == "" {
		return fmt.Errorf("%w: token %q: must not be empty", ErrInvalid, c.Token)
	}
	if c.NewBackoff == nil {
		return fmt.Errorf("%w: backoff: the factory must not be nil", ErrInvalid)
	}
	if c.Replicas < 0 {
		return fmt.Errorf("%w: replicas %d: must not be negative", ErrInvalid, c.Replicas)
	}
	if c.Replicas > 0 && (c.ReplicaTimeout <= 0 || c.ReplicaTimeout >= c.TTL) {
		return fmt.Errorf("%w: replica timeout %v: must be positive and shorter than the TTL %v", ErrInvalid, c.ReplicaTimeout, c.TTL)
	}
	c.ttlArg = c.TTL.Milliseconds()
	return nil
}

// DefaultBackoff is the fallback wait between attempts while waiting for a
// lock (and between renewal retries): exponential from 20ms, doubling, with
// ±50% jitter, capped at 1s, without an elapsed-time limit (the caller's
// context bounds the wait).
func DefaultBackoff() backoff.BackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 20 * time.Millisecond
	b.RandomizationFactor = 0.5
	b.Multiplier = 2
	b.MaxInterval = time.Second
	b.MaxElapsedTime = 0
	return b
}

// NewToken returns 128 random bits from crypto/rand, hex-encoded.
func NewToken() string {
	var b [16]byte
	var h [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms (Go 1.24+)
	hex.Encode(h[:], b[:])
	return string(h[:])
}

// CheckClient refuses a nil client, including a typed nil pointer, and a
// *redis.Ring: a ring routes a script by its first key, so the other keys of
// a multi-key call land on the wrong shard, and a ring's shards are
// independent servers with no multi-key atomicity between them.
func CheckClient(c redis.UniversalClient) error {
	nilPtr := false
	switch v := c.(type) {
	case nil:
		nilPtr = true
	case *redis.Client:
		nilPtr = v == nil
	case *redis.ClusterClient:
		nilPtr = v == nil
	case *redis.Ring:
		return fmt.Errorf("%w: client is a *redis.Ring: a ring's shards are independent servers, so keys of one lock operation can land on different shards with no atomicity between them; use a *redis.Client, a failover client or a *redis.ClusterClient", ErrInvalid)
	}
	if nilPtr {
		return fmt.Errorf("%w: client is nil", ErrInvalid)
	}
	return nil
}

// Key derives the keys of name, wrapping a refusal into ErrInvalid.
func (c *Config) Key(name string) (keys.Key, error) {
	k, err := keys.For(c.Prefix, name)
	if err != nil {
		return k, fmt.Errorf("%w: lock name %v", ErrInvalid, err)
	}
	return k, nil
}

// Spec builds an acquisition of groups with this configuration. Each attempt
// makes its own token unless a custom token is set (see protocol.go).
func (c *Config) Spec(client redis.UniversalClient, groups []Group) *Spec {
	return &Spec{Client: client, Groups: groups, Token: c.Token, TTL: c.TTL, RenewInterval: c.RenewInterval,
		AutoRenew: c.AutoRenew, Drift: c.Drift, NewBackoff: c.NewBackoff, TTLArg: c.ttlArg,
		Replicas: c.Replicas, ReplicaTimeout: c.ReplicaTimeout}
}

// Group builds the group of ks, which share hash slot slot, with its fence
// counter.
func (c *Config) Group(client redis.UniversalClient, ks []keys.Key) (Group, error) {
	_, cluster := client.(*redis.ClusterClient)
	f, ok := keys.FenceKey(c.Prefix, ks[0].Slot, cluster)
	if !ok {
		return Group{}, fmt.Errorf("%w: key prefix %q: no fence counter key reaches hash slot %d", ErrInvalid, c.Prefix, ks[0].Slot)
	}
	return NewGroup(ks, f), nil
}

// CheckCtx refuses a nil context (the go-redis calls below would panic).
func CheckCtx(ctx context.Context) error {
	if ctx == nil {
		return fmt.Errorf("%w: context is nil", ErrInvalid)
	}
	return nil
}
