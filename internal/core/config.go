package core

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"time"
	"unsafe"

	"github.com/cenkalti/backoff/v4"
	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/keys"
	"github.com/redlease/redlease/observe"
)

// Defaults of a lock's configuration (documented on the mutex options).
const (
	DefaultTTL    = 10 * time.Second
	DefaultDrift  = 0.01
	DefaultPrefix = "redlease:"
)

// Config is the configuration the options of mutex and multilock set; see
// the mutex options for meanings and defaults.
type Config struct {
	TTL           time.Duration // whole milliseconds after Resolve: what Redis receives
	AutoRenew     bool
	RenewInterval time.Duration
	RenewSet      bool   // RenewInterval was given; else it is TTL/3
	Token         string // the custom token; "" for a fresh token per attempt
	TokenSet      bool
	NewBackoff    func() backoff.BackOff
	Drift         float64
	Prefix        string

	Replicas       int           // WAIT for this many replicas after each write; 0: don't
	ReplicaTimeout time.Duration // WAIT's timeout

	Observer observe.Observer // nil: nothing is observed
	Logger   *slog.Logger     // nil: nothing is logged

	TTLArg any // TTL in ms, boxed once for script calls (set by NewSpec: points into the Spec)
}

// Option is what the public option types implement (mutex.Option).
type Option interface{ Apply(*Config) }

// Resolve applies opts over the defaults and validates the result. Its
// errors name the value and the rule; the caller wraps them into its
// package's ErrInvalid.
func Resolve[O Option](opts []O) (Config, error) {
	var c Config
	err := ResolveTo(&c, opts)
	return c, err
}

// ResolveTo is Resolve into *c, which the options see (so c escapes): for a
// Config that is already part of a heap object.
func ResolveTo[O Option](c *Config, opts []O) error {
	*c = Config{TTL: DefaultTTL, AutoRenew: true, NewBackoff: DefaultBackoff, Drift: DefaultDrift, Prefix: DefaultPrefix}
	for i, o := range opts {
		if any(o) == nil {
			return fmt.Errorf("nil option (option %d)", i)
		}
		o.Apply(c)
	}
	return c.validate()
}

func (c *Config) validate() error {
	if c.TTL < MinTTL {
		return fmt.Errorf("TTL %v: must be at least %v", c.TTL, MinTTL)
	}
	// Redis receives whole milliseconds; validity is counted from that.
	c.TTL = c.TTL.Truncate(time.Millisecond)
	if !(c.Drift >= 0 && c.Drift < 0.5) {
		return fmt.Errorf("drift factor %v: must be in [0, 0.5)", c.Drift)
	}
	window := Validity(time.Time{}, c.TTL, c.Drift).Sub(time.Time{})
	if window <= 0 {
		return fmt.Errorf("TTL %v with drift factor %v leaves no validity", c.TTL, c.Drift)
	}
	if !c.RenewSet {
		c.RenewInterval = c.TTL / 3
	}
	if c.RenewInterval <= 0 || c.RenewInterval >= window {
		return fmt.Errorf("renew interval %v: must be positive and shorter than the lease's validity window %v (TTL %v × (1 − drift %v) − %v), or the lease expires before its first renewal",
			c.RenewInterval, window, c.TTL, c.Drift, Margin)
	}
	if c.TokenSet && c.Token == "" {
		return fmt.Errorf("token %q: must not be empty", c.Token)
	}
	if c.NewBackoff == nil {
		return fmt.Errorf("backoff: the factory must not be nil")
	}
	if c.Replicas < 0 {
		return fmt.Errorf("replicas %d: must not be negative", c.Replicas)
	}
	if c.Replicas > 0 && (c.ReplicaTimeout <= 0 || c.ReplicaTimeout >= c.TTL) {
		return fmt.Errorf("replica timeout %v: must be positive and shorter than the TTL %v", c.ReplicaTimeout, c.TTL)
	}
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
	var h [tokenLen]byte
	fillToken(&h)
	return string(h[:])
}

// tokenLen is the length of a token made by NewToken: 128 bits in hex.
const tokenLen = 32

// newTokenIn writes a new token into h and returns it as a string that
// shares h's bytes: h must not change afterwards (an Attempt's storage, or a
// copy made at once).
func newTokenIn(h *[tokenLen]byte) string {
	fillToken(h)
	return unsafe.String(&h[0], tokenLen)
}

func fillToken(h *[tokenLen]byte) {
	var b [tokenLen / 2]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms (Go 1.24+)
	hex.Encode(h[:], b[:])
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
		return fmt.Errorf("client is a *redis.Ring: a ring's shards are independent servers, so keys of one lock operation can land on different shards with no atomicity between them; use a *redis.Client, a failover client or a *redis.ClusterClient")
	}
	if nilPtr {
		return fmt.Errorf("client is nil")
	}
	return nil
}

// Key derives the keys of name.
func (c *Config) Key(name string) (keys.Key, error) {
	k, err := keys.For(c.Prefix, name)
	if err != nil {
		return k, fmt.Errorf("lock name %v", err)
	}
	return k, nil
}

// Group builds the group of ks, which share one hash slot, with its fence
// counter.
func (c *Config) Group(client redis.UniversalClient, ks []keys.Key) (Group, error) {
	_, cluster := client.(*redis.ClusterClient)
	f, ok := keys.FenceKey(c.Prefix, ks[0].Slot, cluster)
	if !ok {
		return Group{}, fmt.Errorf("key prefix %q: no fence counter key reaches hash slot %d", c.Prefix, ks[0].Slot)
	}
	return NewGroup(ks, f), nil
}
