// Package transferex is the account-transfer example: every transfer holds
// the locks of both accounts, taken together by a multilock, while workers
// move money both ways between the same accounts at once.
//
// There is no redis-py original: redis-py has no multi-lock, and the usual
// Python spelling nests two locks,
//
//	with r.lock(f"acct:{src}"):
//	    with r.lock(f"acct:{dst}"):
//	        move(src, dst, amount)
//
// which deadlocks when one worker moves A→B while another moves B→A: each
// holds its first lock and waits for the other's (until a timeout, if any,
// breaks it). multilock takes all names in one global order, atomically on
// a single Redis (one script call), so opposite transfers cannot deadlock,
// and it never holds some of the keys while it waits for the others.
//
// Each transfer reads both balances, refuses an overdraft, and writes both
// new balances in one Lease.Guard transaction: both writes or neither, and
// only while the lease still holds both keys. (On Redis Cluster, Guard needs
// the lock keys in one hash slot: give the account names a common hash tag.)
package transferex

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/examples/internal/exredis"
	"github.com/redlease/redlease/multilock"
	"github.com/redlease/redlease/mutex"
)

// Config sets the size and timing of the run.
type Config struct {
	Accounts  int   // named A, B, C...
	Initial   int64 // balance of each account at the start
	Workers   int   // each with its own client
	Transfers int   // per worker
	TTL       time.Duration
	Deadline  time.Duration // for the whole run: exceeding it means a deadlock
	Seed      uint64        // of the transfers' random choices
}

// Default is the configuration of `go run ./examples/transfer`.
func Default() Config {
	return Config{Accounts: 3, Initial: 100, Workers: 6, Transfers: 25, TTL: 2 * time.Second, Deadline: 5 * time.Second, Seed: 1}
}

// Result is what happened.
type Result struct {
	Planned       int
	Done          int              // transfers made
	Refused       int              // refused for insufficient funds
	Opposite      int              // pairs of accounts that saw transfers both ways
	TotalBefore   int64            // sum of the balances before
	TotalAfter    int64            // and after
	Balances      map[string]int64 // final balances in Redis
	Expected      map[string]int64 // final balances from the workers' own ledger
	Took          time.Duration
	Deadline      time.Duration
	NegativeFound bool
}

// Check says whether the run went as it should.
func (r Result) Check() error {
	var c exredis.Check
	c.Expect(r.TotalAfter == r.TotalBefore, "money not conserved: %d before, %d after", r.TotalBefore, r.TotalAfter)
	c.Expect(r.Done+r.Refused == r.Planned, "%d done + %d refused != %d planned", r.Done, r.Refused, r.Planned)
	c.Expect(!r.NegativeFound, "a balance went negative: %v", r.Balances)
	for a, want := range r.Expected {
		c.Expect(r.Balances[a] == want, "account %s: balance %d, the ledger says %d", a, r.Balances[a], want)
	}
	c.Expect(r.Opposite > 0, "no pair of accounts saw transfers both ways")
	c.Expect(r.Took < r.Deadline, "took %v (deadline %v)", r.Took, r.Deadline)
	return c.Err()
}

// Verdict is a one-line summary, ending in OK or FAILED.
func (r Result) Verdict() string {
	s := fmt.Sprintf("transfers: total before %d, after %d; %d done, %d refused, no deadlock (%v)", r.TotalBefore, r.TotalAfter, r.Done, r.Refused, r.Took.Round(time.Millisecond))
	if err := r.Check(); err != nil {
		return s + " — FAILED: " + err.Error()
	}
	return s + " — OK"
}

func account(i int) string       { return "acct:" + string(rune('A'+i)) }
func balanceKey(a string) string { return a + ":balance" }

// Run opens the accounts, runs the workers and checks the books.
func Run(ctx context.Context, client *redis.Client, out io.Writer, cfg Config) (Result, error) {
	p := exredis.NewPrinter(out)
	res := Result{Planned: cfg.Workers * cfg.Transfers, Deadline: cfg.Deadline, Expected: map[string]int64{}, Balances: map[string]int64{}}
	if cfg.Accounts < 2 || cfg.Accounts > 26 {
		return res, fmt.Errorf("accounts: %d, want 2 to 26", cfg.Accounts)
	}
	accounts := make([]string, cfg.Accounts)
	for i := range accounts {
		accounts[i] = account(i)
		defer client.Del(context.WithoutCancel(ctx), balanceKey(accounts[i])) // leave no data behind
		if err := client.Set(ctx, balanceKey(accounts[i]), cfg.Initial, 0).Err(); err != nil {
			return res, err
		}
		res.Expected[accounts[i]] = cfg.Initial
		res.TotalBefore += cfg.Initial
	}
	fmt.Fprintf(out, "transfers: %d accounts of %d, %d workers × %d random transfers\n", cfg.Accounts, cfg.Initial, cfg.Workers, cfg.Transfers)

	ctx, cancel := context.WithTimeout(ctx, cfg.Deadline)
	defer cancel()
	clients, closeAll := exredis.Clients(client, cfg.Workers)
	defer closeAll()
	var (
		mu   sync.Mutex
		errs []error
		dirs = map[[2]string]bool{} // directions seen
		wg   sync.WaitGroup
	)
	start := time.Now()
	for w, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(cfg.Seed, uint64(w)))
			for k := 0; k < cfg.Transfers; k++ {
				i := rng.IntN(cfg.Accounts)
				j := (i + 1 + rng.IntN(cfg.Accounts-1)) % cfg.Accounts
				src, dst, amount := accounts[i], accounts[j], 1+rng.Int64N(cfg.Initial/2)
				ok, err := transfer(ctx, c, src, dst, amount, cfg.TTL)
				mu.Lock()
				switch {
				case err != nil:
					errs = append(errs, fmt.Errorf("worker %d, %s -> %s: %w", w+1, src, dst, err))
				case ok:
					res.Done++
					res.Expected[src] -= amount
					res.Expected[dst] += amount
					dirs[[2]string{src, dst}] = true
				default:
					res.Refused++
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
			p.Printf("worker %d: %d transfers attempted", w+1, cfg.Transfers)
		}()
	}
	wg.Wait()
	res.Took = time.Since(start)
	if err := errors.Join(errs...); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return res, fmt.Errorf("deadline of %v exceeded — a deadlock? %w", cfg.Deadline, err)
		}
		return res, err
	}
	for d := range dirs {
		if d[0] < d[1] && dirs[[2]string{d[1], d[0]}] {
			res.Opposite++
		}
	}
	for _, a := range accounts {
		v, err := client.Get(ctx, balanceKey(a)).Int64()
		if err != nil {
			return res, err
		}
		res.Balances[a] = v
		res.TotalAfter += v
		res.NegativeFound = res.NegativeFound || v < 0
	}
	for _, a := range slices.Sorted(maps.Keys(res.Balances)) {
		p.Printf("%s: %d", a, res.Balances[a])
	}
	p.Printf("total %d before, %d after; %d transfers made, %d refused (insufficient funds), in %v", res.TotalBefore, res.TotalAfter, res.Done, res.Refused, res.Took.Round(time.Millisecond))
	return res, nil
}

// transfer moves amount from src to dst under both accounts' locks. It
// reports false if src has too little money.
func transfer(ctx context.Context, c *redis.Client, src, dst string, amount int64, ttl time.Duration) (bool, error) {
	// The order of the names does not matter: multilock sorts them.
	ml, err := multilock.New(c, []string{src, dst}, mutex.WithTTL(ttl))
	if err != nil {
		return false, err
	}
	l, err := ml.Lock(ctx)
	if err != nil {
		return false, err
	}
	defer func() { _ = l.Release(context.WithoutCancel(ctx)) }()
	vals, err := c.MGet(ctx, balanceKey(src), balanceKey(dst)).Result()
	if err != nil {
		return false, err
	}
	var from, to int64
	if _, err := fmt.Sscan(vals[0].(string), &from); err != nil {
		return false, err
	}
	if _, err := fmt.Sscan(vals[1].(string), &to); err != nil {
		return false, err
	}
	if from < amount {
		return false, l.Release(context.WithoutCancel(ctx))
	}
	err = l.Guard(ctx, func(pipe redis.Pipeliner) error {
		pipe.Set(ctx, balanceKey(src), from-amount, 0)
		pipe.Set(ctx, balanceKey(dst), to+amount, 0)
		return nil
	})
	if err != nil {
		return false, err
	}
	return true, l.Release(context.WithoutCancel(ctx))
}
