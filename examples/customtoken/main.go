// Command customtoken ports redis-py's custom token:
//
//	lock = r.lock("resource", timeout=10)
//	lock.acquire(token="my-custom-token")
//	print(r.get("resource"))    # b"my-custom-token"
//	lock.release()
//
// The token is what tells owners apart: two processes with the same token
// are one owner to Redis, and either could release the other's lock. So
// "my-custom-token", the same everywhere, is the wrong choice; here the
// token names exactly one owner (a role on a host), stays readable by
// anyone who looks at the key, and lets that owner, restarted after a crash,
// take its lock over at once instead of waiting out the TTL.
//
// Run it with `go run ./examples/customtoken` (an in-process miniredis), or
// with REDIS_ADDR=host:port set to use a real server.
package main

import (
	"context"
	"errors"
	"io"
	"log"
	"os"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/mutex"
)

const (
	name    = "customtoken:resource"
	lockKey = "redlease:{" + name + "}" // the key mutex uses: prefix + "{" + name + "}"
)

// ownerToken names this owner: one report-builder per host.
func ownerToken() string {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown-host"
	}
	return "report-builder@" + host
}

func run(ctx context.Context, client *redis.Client, out io.Writer) error {
	logf := log.New(out, "", 0).Printf
	m, err := mutex.New(client, name, mutex.WithToken(ownerToken()))
	if err != nil {
		return err // an empty token is refused with mutex.ErrInvalid
	}
	l, err := m.Lock(ctx)
	if err != nil {
		return err
	}
	logf("locked with token %q (fence %d)", l.Token(), l.Fence())

	held, err := client.Get(ctx, lockKey).Result() // "<fence>:<gen>:<token>" ("<fence>:<gen>w:<token>" once a waiter tried it)
	if err != nil {
		return err
	}
	logf("anyone can read who holds it: %s = %q", lockKey, held)

	other, err := mutex.New(client, name) // another owner, with a random token
	if err != nil {
		return err
	}
	_, err = other.TryLock(ctx)
	logf("another owner's TryLock: %v", err) // errors.Is(err, mutex.ErrLocked)

	// The same owner, restarted after a crash that left l held: a Mutex with
	// the same token takes the hold over at once, with a new fence.
	restarted, err := mutex.New(client, name, mutex.WithToken(ownerToken()))
	if err != nil {
		return err
	}
	l2, err := restarted.Lock(ctx)
	if err != nil {
		return err
	}
	owned, err := l.Owned(ctx)
	logf("restarted owner: locked again at once (fence %d); the old lease owns it: %v", l2.Fence(), owned)
	return errors.Join(err, l2.Release(ctx))
}

func main() {
	client, closeRedis, err := connect(os.Getenv("REDIS_ADDR"))
	if err == nil {
		err = run(context.Background(), client, os.Stdout)
		closeRedis()
	}
	if err != nil {
		log.Fatal(err)
	}
}

// connect returns a client of the Redis at addr or, if addr is empty, of an
// in-process miniredis, and a function that closes them.
func connect(addr string) (*redis.Client, func(), error) {
	if addr != "" {
		c := redis.NewClient(&redis.Options{Addr: addr})
		if err := c.Ping(context.Background()).Err(); err != nil {
			c.Close()
			return nil, nil, err // fail now: Lock would retry until its ctx ends
		}
		return c, func() { c.Close() }, nil
	}
	mr, err := miniredis.Run() // on a free loopback port
	if err != nil {
		return nil, nil, err
	}
	mr.ClockTTL(true) // TTLs run in real time, as on a real server (by default only FastForward moves them)
	c := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	return c, func() { c.Close(); mr.Close() }, nil
}
