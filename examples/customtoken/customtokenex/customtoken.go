// Package customtokenex is the custom-token example: the value stored in the
// lock key is chosen by the caller (mutex.WithToken), so that other
// processes can see who holds the lock.
//
// It ports redis-py's "custom token":
//
//	lock = r.lock("resource", timeout=10)
//	lock.acquire(token="my-custom-token")
//	print(r.get("resource"))    # b"my-custom-token"
//	lock.release()
//
// Where the original is sloppy: "my-custom-token" is the same in every
// process, and the token is what tells owners apart: two processes with the
// same token are the same owner to Redis, and either can release or extend
// the other's lock. Here the token names the owner uniquely (host, process
// id, random suffix) and stays readable, which is what a custom token is
// for.
package customtokenex

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/examples/internal/exredis"
	"github.com/redlease/redlease/mutex"
)

// Config sets the run.
type Config struct {
	TTL time.Duration
}

// Default is the configuration of `go run ./examples/customtoken`.
func Default() Config { return Config{TTL: 2 * time.Second} }

// Result is what happened.
type Result struct {
	Token      string // the token chosen
	LeaseToken string // Lease.Token()
	Fence      int64  // Lease.Fence()
	Stored     string // the value of the lock key in Redis, read by another client
	OtherErr   error  // another owner's TryLock while the lock was held
	EmptyErr   error  // mutex.New with WithToken("")
}

// Check says whether the run went as it should.
func (r Result) Check() error {
	var c exredis.Check
	c.Expect(r.LeaseToken == r.Token, "Lease.Token() = %q, want %q", r.LeaseToken, r.Token)
	want := fmt.Sprintf("%d:0:%s", r.Fence, r.Token)
	c.Expect(r.Stored == want, "lock key holds %q, want %q", r.Stored, want)
	c.Expect(errors.Is(r.OtherErr, mutex.ErrLocked), "another owner's TryLock: %v, want ErrLocked", r.OtherErr)
	c.Expect(errors.Is(r.EmptyErr, mutex.ErrInvalid), "WithToken(\"\"): %v, want ErrInvalid", r.EmptyErr)
	return c.Err()
}

const (
	name = "customtoken:resource"
	// lockKey is the key mutex.New uses for name: prefix + "{" + name + "}"
	// (the layout documented by package mutex; "redlease:" is the default
	// prefix). It holds "<fence>:<gen>:<token>".
	lockKey = "redlease:{" + name + "}"
)

// OwnerToken returns a readable token unique to this owner.
func OwnerToken(role string) string {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown-host"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s@%s:pid%d:%s", role, host, os.Getpid(), hex.EncodeToString(b[:]))
}

// Run locks with a custom token, shows what another client sees, releases.
func Run(ctx context.Context, client *redis.Client, out io.Writer, cfg Config) (Result, error) {
	p := exredis.NewPrinter(out)
	var res Result
	_, res.EmptyErr = mutex.New(client, name, mutex.WithToken(""))
	p.Printf("an empty token is refused: %v", res.EmptyErr)

	res.Token = OwnerToken("report-builder")
	m, err := mutex.New(client, name, mutex.WithTTL(cfg.TTL), mutex.WithToken(res.Token))
	if err != nil {
		return res, err
	}
	l, err := m.Lock(ctx)
	if err != nil {
		return res, err
	}
	defer func() { _ = l.Release(context.WithoutCancel(ctx)) }()
	res.LeaseToken, res.Fence = l.Token(), l.Fence()
	p.Printf("locked with token %q", res.LeaseToken)

	// Another process: who holds the lock? And it cannot take it.
	other := exredis.Another(client)
	defer other.Close()
	if res.Stored, err = other.Get(ctx, lockKey).Result(); err != nil {
		return res, err
	}
	p.Printf("another client reads the lock key: held by %q", res.Stored)
	om, err := mutex.New(other, name, mutex.WithToken(OwnerToken("nightly-job")))
	if err != nil {
		return res, err
	}
	if ol, err := om.TryLock(ctx); err == nil {
		_ = ol.Release(ctx)
		res.OtherErr = nil
	} else {
		res.OtherErr = err
	}
	p.Printf("another owner's TryLock: %v", res.OtherErr)

	if err := l.Release(context.WithoutCancel(ctx)); err != nil {
		return res, err
	}
	p.Printf("released")
	return res, nil
}
