// Package counterex is the distributed counter: N workers on separate
// clients increment one Redis value under the lock (GET, then SET), and a
// holder paused past its TTL tries to write a stale value.
//
// It ports redis-py's "distributed counter":
//
//	def increment_counter():
//	    with r.lock("counter_lock", timeout=5):
//	        current = int(r.get("counter") or 0)
//	        r.set("counter", current + 1)
//
// Where the original is sloppy: the lock only makes the GET/SET pair atomic
// while the holder is fast. A holder that pauses past the TTL (GC, a stalled
// VM, a slow network) after its GET still runs its SET, long after another
// worker took the lock; its stale value overwrites every increment made
// meanwhile. The run shows it happen, then shows the two defences:
//
//   - Guard: the SET runs in a MULTI/EXEC that Redis applies only if the
//     lease still holds the lock key at that moment (checked locally first,
//     then by WATCH and a token check in Redis, which also covers a process
//     paused between the two);
//   - a fence at the resource: every acquisition has a larger fence; the
//     store (standing in for a database that is not Redis) remembers the
//     largest fence it has seen, on reads as on writes, and refuses an
//     operation with a smaller one. (Fencing writes alone is not enough for a
//     read-modify-write: a newer holder may read before the stale write lands
//     and overwrite it; remembering the fences of reads closes that gap.)
//
// In both, the paused worker learns that its write was refused and makes its
// increment again under a new lock, so the count is exact.
package counterex

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/examples/internal/exredis"
	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
)

// Mode is how the workers write the counter.
type Mode int

const (
	// Plain: GET/SET under the lock, nobody pauses (the happy path).
	Plain Mode = iota
	// Unguarded: GET/SET under the lock; worker 1 pauses past its TTL
	// between its GET and its SET.
	Unguarded
	// Guarded: as Unguarded, with every SET through Lease.Guard.
	Guarded
	// Fenced: as Unguarded, with the counter in a store that checks fences.
	Fenced
)

var modeNames = []string{"counter", "counter without Guard or fencing", "counter with Guard", "counter with fencing"}

func (m Mode) String() string { return modeNames[m] }

// Config sets the size and timing of the run.
type Config struct {
	Workers    int           // at least 2
	Increments int           // per worker
	TTL        time.Duration // of the normal, auto-renewed leases
	StaleTTL   time.Duration // of the paused worker's first lease (no renewal)
}

// Default is the configuration of `go run ./examples/counter`: 4 workers
// × 10 increments, a paused holder with a 300ms TTL.
func Default() Config {
	return Config{Workers: 4, Increments: 10, TTL: 2 * time.Second, StaleTTL: 300 * time.Millisecond}
}

// Outcome is the result of one mode.
type Outcome struct {
	Mode         Mode
	Expected     int64 // Workers × Increments
	Got          int64 // the final counter
	StaleApplied bool  // the paused worker's stale write changed the counter
	StaleErr     error // why the stale write was refused (nil if it was not)
}

// Check says whether the outcome is the one its mode should produce: the
// exact count, except Unguarded, which must show the stale write applied.
func (o Outcome) Check() error {
	var c exredis.Check
	switch o.Mode {
	case Unguarded:
		c.Expect(o.StaleApplied, "%s: the stale write was not applied", o.Mode)
		c.Expect(o.Got < o.Expected, "%s: got %d, expected fewer than %d", o.Mode, o.Got, o.Expected)
	default:
		c.Expect(!o.StaleApplied, "%s: a stale write was applied", o.Mode)
		c.Expect(o.Got == o.Expected, "%s: expected %d, got %d", o.Mode, o.Expected, o.Got)
	}
	return c.Err()
}

// Verdict is a one-line summary of o, ending in OK or FAILED.
func (o Outcome) Verdict() string {
	s := fmt.Sprintf("%s: expected %d, got %d", o.Mode, o.Expected, o.Got)
	if o.Mode == Unguarded {
		s += ", the stale write applied as predicted"
	}
	if err := o.Check(); err != nil {
		return s + " — FAILED: " + err.Error()
	}
	return s + " — OK"
}

// Result is the outcome of every mode.
type Result struct{ Outcomes []Outcome }

// Check checks every outcome.
func (r Result) Check() error {
	var errs []error
	for _, o := range r.Outcomes {
		errs = append(errs, o.Check())
	}
	return errors.Join(errs...)
}

const (
	name       = "counter"
	counterKey = "{counter}:value" // same hash slot as the lock: Guard works on Cluster too
)

// Run runs every mode in turn.
func Run(ctx context.Context, client *redis.Client, out io.Writer, cfg Config) (Result, error) {
	var res Result
	for _, m := range []Mode{Plain, Unguarded, Guarded, Fenced} {
		o, err := RunMode(ctx, client, out, cfg, m)
		if err != nil {
			return res, fmt.Errorf("%s: %w", m, err)
		}
		res.Outcomes = append(res.Outcomes, o)
	}
	return res, nil
}

// RunMode runs the counter once in mode.
func RunMode(ctx context.Context, client *redis.Client, out io.Writer, cfg Config, mode Mode) (Outcome, error) {
	if cfg.Workers < 2 {
		return Outcome{}, fmt.Errorf("counter needs at least 2 workers, got %d", cfg.Workers)
	}
	p := exredis.NewPrinter(out)
	if mode == Plain {
		fmt.Fprintf(out, "%s: %d workers × %d increments, nobody pauses\n", mode, cfg.Workers, cfg.Increments)
	} else {
		fmt.Fprintf(out, "%s: %d workers × %d increments, worker 1 pauses past its TTL\n", mode, cfg.Workers, cfg.Increments)
	}
	o := Outcome{Mode: mode, Expected: int64(cfg.Workers * cfg.Increments)}
	if err := client.Del(ctx, counterKey).Err(); err != nil {
		return o, err
	}
	defer client.Del(context.WithoutCancel(ctx), counterKey) // leave no data behind
	clients, closeAll := exredis.Clients(client, cfg.Workers)
	defer closeAll()
	r := &run{mode: mode, cfg: cfg, p: p, store: &fencedStore{}}

	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	others := func() {
		for i := 2; i <= cfg.Workers; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := r.worker(ctx, clients[i-1], i, cfg.Increments); err != nil {
					fail(err)
				}
			}()
		}
	}
	if mode == Plain {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.worker(ctx, clients[0], 1, cfg.Increments); err != nil {
				fail(err)
			}
		}()
		others()
		wg.Wait()
	} else {
		// Worker 1 makes its first increment with a short lease and no
		// renewal, and "pauses" between its read and its write until every
		// other worker is done: well past its TTL.
		stale, err := r.staleIncrement(ctx, clients[0], func() { others(); wg.Wait() })
		if err != nil {
			wg.Wait()
			return o, err
		}
		o.StaleApplied, o.StaleErr = stale.applied, stale.err
		if !stale.applied && stale.err != nil {
			p.Printf("worker 1: my write was refused, so I increment again under a new lock")
			if err := r.worker(ctx, clients[0], 1, 1); err != nil {
				return o, err
			}
		}
		if err := r.worker(ctx, clients[0], 1, cfg.Increments-1); err != nil {
			return o, err
		}
	}
	if err := errors.Join(errs...); err != nil {
		return o, err
	}
	got, err := r.read(ctx, client)
	if err != nil {
		return o, err
	}
	o.Got = got
	p.Printf("final counter %d (expected %d)", o.Got, o.Expected)
	return o, nil
}

type run struct {
	mode  Mode
	cfg   Config
	p     *exredis.Printer
	store *fencedStore
}

// worker makes n increments, each under its own acquisition of the lock.
func (r *run) worker(ctx context.Context, c *redis.Client, id, n int) error {
	m, err := mutex.New(c, name, mutex.WithTTL(r.cfg.TTL))
	if err != nil {
		return err
	}
	for k := 0; k < n; k++ {
		l, err := m.Lock(ctx)
		if err != nil {
			return fmt.Errorf("worker %d: %w", id, err)
		}
		v, err := r.get(ctx, c, l)
		if err == nil {
			err = r.set(ctx, c, l, v+1)
		}
		if rerr := l.Release(context.WithoutCancel(ctx)); err == nil {
			err = rerr
		}
		if err != nil {
			return fmt.Errorf("worker %d: %w", id, err)
		}
	}
	if n > 1 {
		r.p.Printf("worker %d: %d increments done", id, n)
	}
	return nil
}

// get reads the counter as the holder of l.
func (r *run) get(ctx context.Context, c *redis.Client, l *lease.Lease) (int64, error) {
	if r.mode == Fenced {
		return r.store.Read(l.Fence())
	}
	v, err := c.Get(ctx, counterKey).Int64()
	if err == redis.Nil {
		return 0, nil
	}
	return v, err
}

// set writes the counter as the holder of l, the way the mode says.
func (r *run) set(ctx context.Context, c *redis.Client, l *lease.Lease, v int64) error {
	switch r.mode {
	case Guarded:
		return l.Guard(ctx, func(pipe redis.Pipeliner) error {
			pipe.Set(ctx, counterKey, v, 0)
			return nil
		})
	case Fenced:
		return r.store.Write(l.Fence(), v)
	default:
		return c.Set(ctx, counterKey, v, 0).Err()
	}
}

func (r *run) read(ctx context.Context, c *redis.Client) (int64, error) {
	if r.mode == Fenced {
		return r.store.Value(), nil
	}
	v, err := c.Get(ctx, counterKey).Int64()
	if err == redis.Nil {
		return 0, nil
	}
	return v, err
}

type staleResult struct {
	applied bool
	err     error // the refusal of the stale write
}

// staleIncrement is worker 1's first increment: it reads, then pause()s
// (past its TTL), then writes what it read plus one.
func (r *run) staleIncrement(ctx context.Context, c *redis.Client, pause func()) (staleResult, error) {
	m, err := mutex.New(c, name, mutex.WithTTL(r.cfg.StaleTTL), mutex.WithAutoRenew(false))
	if err != nil {
		return staleResult{}, err
	}
	l, err := m.Lock(ctx)
	if err != nil {
		return staleResult{}, err
	}
	defer func() { _ = l.Release(context.WithoutCancel(ctx)) }() // fails: long expired
	v, err := r.get(ctx, c, l)
	if err != nil {
		return staleResult{}, err
	}
	r.p.Printf("worker 1: locked (fence %d, TTL %v, no renewal), read %d ... and pauses", l.Fence(), r.cfg.StaleTTL, v)
	pause()
	<-l.Lost() // it has been: the others could only start after it expired
	before, err := r.read(ctx, c)
	if err != nil {
		return staleResult{}, err
	}
	r.p.Printf("worker 1: wakes up (%v), counter is now %d, writes %d", l.Err(), before, v+1)
	werr := r.set(ctx, c, l, v+1)
	after, err := r.read(ctx, c)
	if err != nil {
		return staleResult{}, err
	}
	res := staleResult{applied: after != before, err: werr}
	switch {
	case res.applied:
		r.p.Printf("worker 1: stale write APPLIED: counter %d -> %d; %d increments lost", before, after, before-after+1)
	case werr != nil:
		r.p.Printf("worker 1: stale write refused: %v", werr)
	default:
		return res, fmt.Errorf("stale write neither applied nor refused")
	}
	return res, nil
}

// ErrStaleFence is returned by fencedStore for an operation whose fence is
// older than one it has already seen.
var ErrStaleFence = errors.New("stale fence")

// fencedStore is a counter in a store that is not Redis (a database, a
// file service...), which checks the fence of every operation.
type fencedStore struct {
	mu       sync.Mutex
	value    int64
	maxFence int64
}

// Read returns the value if fence is not older than every fence seen.
func (s *fencedStore) Read(fence int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.admit(fence); err != nil {
		return 0, err
	}
	return s.value, nil
}

// Write stores v if fence is not older than every fence seen.
func (s *fencedStore) Write(fence, v int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.admit(fence); err != nil {
		return err
	}
	s.value = v
	return nil
}

func (s *fencedStore) admit(fence int64) error {
	if fence < s.maxFence {
		return fmt.Errorf("store: %w: %d < %d", ErrStaleFence, fence, s.maxFence)
	}
	s.maxFence = fence
	return nil
}

// Value returns the stored value (for the final count).
func (s *fencedStore) Value() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.value
}
