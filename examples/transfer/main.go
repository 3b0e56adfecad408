// Command transfer moves money between accounts, each transfer holding the
// locks of both accounts. redis-py has no multi-key lock; the usual Python
// nests two:
//
//	with r.lock(f"acct:{src}"):
//	    with r.lock(f"acct:{dst}"):
//	        move(src, dst, amount)
//
// which deadlocks when one worker moves A→B while another moves B→A: each
// holds its first lock and waits for the other's. A multilock takes all its
// names at once (one script call on a single Redis), in one global order,
// and holds none of them while it waits, so opposite transfers cannot
// deadlock. Both balances are written in one Lease.Guard transaction: both
// or neither, and only while the lease holds both locks.
//
// Run it with `go run ./examples/transfer` (an in-process miniredis), or
// with REDIS_ADDR=host:port set to use a real server.
package main

import (
	"context"
	"errors"
	"io"
	"log"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/multilock"
)

var accounts = []string{"acct:A", "acct:B", "acct:C"}

func balance(account string) string { return account + ":balance" }

func run(ctx context.Context, client *redis.Client, out io.Writer) error {
	logf := log.New(out, "", 0).Printf
	for _, a := range accounts {
		if err := client.Set(ctx, balance(a), 100, 0).Err(); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second) // a deadlock would end here
	defer cancel()
	var made, refused atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, 6)
	start := time.Now()
	for w := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				i := rand.IntN(len(accounts))
				j := (i + 1 + rand.IntN(len(accounts)-1)) % len(accounts)
				moved, err := transfer(ctx, client, accounts[i], accounts[j], 1+rand.Int64N(50))
				if err != nil {
					errs[w] = err
					return
				}
				if moved {
					made.Add(1)
				} else {
					refused.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	logf("6 workers, 120 transfers in %v: %d made, %d refused (insufficient funds)", time.Since(start).Round(time.Millisecond), made.Load(), refused.Load())
	total := int64(0)
	for _, a := range accounts {
		v, err := client.Get(ctx, balance(a)).Int64()
		if err != nil {
			return err
		}
		logf("%s: %d", a, v)
		total += v
	}
	logf("total: %d (300 before)", total)
	return nil
}

// transfer moves amount from src to dst while holding both accounts' locks.
// It moves nothing, and reports false, if src has less than amount.
func transfer(ctx context.Context, client *redis.Client, src, dst string, amount int64) (moved bool, err error) {
	ml, err := multilock.New(client, []string{src, dst}) // in any order: multilock sorts them
	if err != nil {
		return false, err
	}
	l, err := ml.Lock(ctx)
	if err != nil {
		return false, err
	}
	defer func() { err = errors.Join(err, l.Release(ctx)) }()
	from, err := client.Get(ctx, balance(src)).Int64()
	if err != nil {
		return false, err
	}
	to, err := client.Get(ctx, balance(dst)).Int64()
	if err != nil || from < amount {
		return false, err
	}
	return true, l.Guard(ctx, func(pipe redis.Pipeliner) error {
		pipe.Set(ctx, balance(src), from-amount, 0)
		pipe.Set(ctx, balance(dst), to+amount, 0)
		return nil
	})
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
