// Command demo is the short tour run by `make demo`: the distributed counter
// with a paused holder (unguarded, with Guard, with fencing), account
// transfers under a multilock, and a task that stops on the lease's Lost
// channel. It runs against an embedded miniredis (or the Redis at
// $REDIS_ADDR), prints what happens in plain words, and ends with one
// verdict line per case. The exit status is 1 if any verdict fails.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/examples/counter/counterex"
	"github.com/redlease/redlease/examples/expiry/expiryex"
	"github.com/redlease/redlease/examples/internal/exredis"
	"github.com/redlease/redlease/examples/transfer/transferex"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := tour(ctx, os.Stdout, Default())
	stop()
	os.Exit(code)
}

// tour connects (Connect: $REDIS_ADDR or the embedded miniredis), plays the
// cases and prints the verdicts. It returns the exit status.
func tour(ctx context.Context, out io.Writer, cfg Config) int {
	c, cleanup, err := exredis.Connect(ctx)
	if err != nil {
		fmt.Fprintf(out, "demo: %v\n", err)
		return 1
	}
	defer cleanup()
	fmt.Fprintf(out, "redlease demo — against %s\n", exredis.Backend())
	verdicts, err := run(ctx, c, out, cfg)
	fmt.Fprintln(out, "\nverdicts:")
	failed := err != nil
	for _, v := range verdicts {
		fmt.Fprintln(out, "  "+v.Line)
		failed = failed || !v.OK
	}
	if err != nil {
		fmt.Fprintf(out, "  demo stopped: %v — FAILED\n", err)
	}
	if failed {
		return 1
	}
	return 0
}

// Config holds the configurations of the cases.
type Config struct {
	Counter  counterex.Config
	Transfer transferex.Config
	Expiry   expiryex.Config
}

// Default is the tour's configuration: a few seconds in all.
func Default() Config {
	return Config{
		Counter:  counterex.Config{Workers: 4, Increments: 10, TTL: 2 * time.Second, StaleTTL: 300 * time.Millisecond},
		Transfer: transferex.Default(),
		Expiry:   expiryex.Config{TTL: 500 * time.Millisecond, Renew: 50 * time.Millisecond, Step: 50 * time.Millisecond, Steps: 20, DeleteAfter: 300 * time.Millisecond},
	}
}

// Verdict is the one-line conclusion of a case.
type Verdict struct {
	Case string
	Line string
	OK   bool
}

func verdict(name, line string, err error) Verdict {
	return Verdict{Case: name, Line: line, OK: err == nil}
}

// run plays every case and returns their verdicts. An error means a case
// could not be played at all (Redis unreachable, ...).
func run(ctx context.Context, c *redis.Client, out io.Writer, cfg Config) ([]Verdict, error) {
	var vs []Verdict

	fmt.Fprint(out, `
1. A distributed counter. Workers on separate connections increment one
   Redis value under the lock: GET, then SET. One of them reads the value,
   then stalls (think of a long GC pause) well past its lock's TTL while the
   others carry on, and finally writes what it had computed.

`)
	for _, m := range []counterex.Mode{counterex.Unguarded, counterex.Guarded, counterex.Fenced} {
		o, err := counterex.RunMode(ctx, c, out, cfg.Counter, m)
		if err != nil {
			return vs, fmt.Errorf("counter, %s: %w", m, err)
		}
		vs = append(vs, verdict(m.String(), o.Verdict(), o.Check()))
		fmt.Fprintln(out)
	}
	fmt.Fprint(out, `   Unguarded, the stale write wiped out the others' increments. With Guard
   the write only lands if Redis still holds the writer's lock; with fencing
   the store refuses a writer older than one it has seen. Either way the
   stalled worker is told, and simply increments again under a new lock.

2. Transfers between accounts. Each transfer locks both accounts at once
   with a multilock, so A→B and B→A transfers never deadlock, and writes
   both balances in one guarded transaction.

`)
	tr, err := transferex.Run(ctx, c, out, cfg.Transfer)
	if err != nil {
		return vs, fmt.Errorf("transfers: %w", err)
	}
	vs = append(vs, verdict("transfers", tr.Verdict(), tr.Check()))

	fmt.Fprint(out, `
3. A task watching its lease. It selects on the lease's Lost channel and
   stops the moment the lock is lost, instead of asking Redis before each
   step. First someone deletes the lock key (the renewal notices); then a
   lease without renewal simply runs out.

`)
	del, err := expiryex.RunDeleted(ctx, c, out, cfg.Expiry)
	if err != nil {
		return vs, fmt.Errorf("lost channel: %w", err)
	}
	vs = append(vs, verdict("lost, deleted", del.Verdict(), del.Check()))
	exp, err := expiryex.RunExpired(ctx, c, out, cfg.Expiry)
	if err != nil {
		return vs, fmt.Errorf("lost channel: %w", err)
	}
	vs = append(vs, verdict("lost, expired", exp.Verdict(), exp.Check()))
	return vs, nil
}
