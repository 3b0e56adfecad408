package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/multilock"
	"github.com/redlease/redlease/mutex"
)

// env is what every scenario shares: the server, an admin client for INFO
// and CLIENT LIST, and one client (with its round-trip counter) per contender.
type env struct {
	addr    string
	admin   *redis.Client
	clients map[string]*redis.Client
	hooks   map[string]*counter
}

func (e *env) locker(c contender) Locker { return c.New(e.clients[c.ID]) }

// ---- statistics

func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1 // nearest rank
	return s[min(max(i, 0), len(s)-1)]
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// ---- scenario 1 and 2: uncontended TryLock+Release pairs on fresh keys

type pairsResult struct {
	Rate     float64 // pairs per second
	P50, P99 time.Duration
}

// pairs runs TryLock+Release pairs on fresh keys from g goroutines for dur.
func pairs(l Locker, prefix string, g int, dur time.Duration) (pairsResult, error) {
	ctx := context.Background()
	var (
		wg    sync.WaitGroup
		total atomic.Int64
		errMu sync.Mutex
		first error
		lats  = make([][]time.Duration, g)
	)
	start := time.Now()
	deadline := start.Add(dur)
	for w := range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 1<<14)
			p := prefix + strconv.Itoa(w) + ":"
			i := 0
			for now := time.Now(); now.Before(deadline); i++ {
				u, err := l.TryLock(ctx, p+strconv.Itoa(i))
				if err == nil {
					err = u(ctx)
				}
				if err != nil {
					errMu.Lock()
					if first == nil {
						first = err
					}
					errMu.Unlock()
					return
				}
				t := time.Now()
				lat = append(lat, t.Sub(now))
				now = t
			}
			total.Add(int64(i))
			lats[w] = lat
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if first != nil {
		return pairsResult{}, first
	}
	all := slices.Concat(lats...)
	return pairsResult{
		Rate: float64(total.Load()) / elapsed.Seconds(),
		P50:  percentile(all, 0.50),
		P99:  percentile(all, 0.99),
	}, nil
}

// ---- scenario 3: contention on one key

type contendedResult struct {
	Acquisitions     int64
	Rate             float64 // acquisitions per second
	WaitP50, WaitP99 time.Duration
	WaitMax          time.Duration // includes waits still running at the end
	HandoffP50       time.Duration // release start → acquisition by another worker
	HandoffP99       time.Duration
	Fairness         float64         // min/max acquisitions per worker
	CmdsPerAcq       float64         // INFO commandstats delta / acquisitions
	Violations       int64           // more than limit holders at once, in-process check
	GiveUps          int64           // Lock errors before the end (library gave up)
	Waits            []time.Duration // every completed wait, unsorted
}

// contended runs workers goroutines of one process (one shared client) that
// loop Lock, hold, Release on one key for dur; more than limit holders at
// once is a violation (limit 1 for a lock).
func contended(e *env, c contender, key string, workers int, limit int32, hold, dur time.Duration) (contendedResult, error) {
	l := e.locker(c)
	bg := context.Background()
	before, err := commandCalls(bg, e.admin)
	if err != nil {
		return contendedResult{}, err
	}
	ctx, cancel := context.WithTimeout(bg, dur)
	defer cancel()

	var (
		holders    atomic.Int32
		violations atomic.Int64
		mu         sync.Mutex // guards the fields below
		lastHolder = -1
		lastRel    time.Time
		handoffs   []time.Duration
		counts     = make([]int64, workers)
		waits      = make([][]time.Duration, workers)
		giveups    = make([]int64, workers)
		censored   = make([]time.Duration, workers)
		relErr     error
		wg         sync.WaitGroup
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				start := time.Now()
				u, err := lockUntil(ctx, l, key, &giveups[w])
				if err != nil {
					censored[w] = time.Since(start)
					return
				}
				acq := time.Now()
				if holders.Add(1) > limit {
					violations.Add(1)
				}
				mu.Lock()
				if lastHolder >= 0 && lastHolder != w {
					handoffs = append(handoffs, acq.Sub(lastRel))
				}
				lastHolder = w
				mu.Unlock()
				waits[w] = append(waits[w], acq.Sub(start))
				counts[w]++
				if hold > 0 {
					time.Sleep(hold)
				}
				mu.Lock()
				lastRel = time.Now()
				mu.Unlock()
				holders.Add(-1)
				if err := u(bg); err != nil {
					mu.Lock()
					relErr = err
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	elapsed := max(dur, time.Duration(0))
	after, err := commandCalls(bg, e.admin)
	if err != nil {
		return contendedResult{}, err
	}
	if relErr != nil {
		return contendedResult{}, fmt.Errorf("release: %w", relErr)
	}
	var r contendedResult
	minC, maxC := counts[0], counts[0]
	for w := range workers {
		r.Acquisitions += counts[w]
		minC, maxC = min(minC, counts[w]), max(maxC, counts[w])
		r.GiveUps += giveups[w]
		r.WaitMax = max(r.WaitMax, censored[w])
	}
	all := slices.Concat(waits...)
	r.Waits = all
	r.Rate = float64(r.Acquisitions) / elapsed.Seconds()
	r.WaitP50, r.WaitP99 = percentile(all, 0.5), percentile(all, 0.99)
	r.WaitMax = max(r.WaitMax, percentile(all, 1))
	r.HandoffP50, r.HandoffP99 = percentile(handoffs, 0.5), percentile(handoffs, 0.99)
	if maxC > 0 {
		r.Fairness = float64(minC) / float64(maxC)
	}
	if r.Acquisitions > 0 {
		r.CmdsPerAcq = float64(after-before) / float64(r.Acquisitions)
	}
	r.Violations = violations.Load()
	return r, nil
}

// ---- scenario 4: allocations and round trips per pair

type costResult struct {
	NsPerOp, AllocsPerOp, BytesPerOp float64
	RoundTrips                       float64
}

func cost(e *env, c contender, prefix string) (costResult, error) {
	l := e.locker(c)
	h := e.hooks[c.ID]
	ctx := context.Background()
	var (
		rt    float64
		first error
	)
	res := testing.Benchmark(func(b *testing.B) {
		keys := make([]string, b.N)
		for i := range keys {
			keys[i] = prefix + strconv.Itoa(b.N) + ":" + strconv.Itoa(i)
		}
		b.ReportAllocs()
		n0 := h.n.Load()
		b.ResetTimer()
		for i := range b.N {
			u, err := l.TryLock(ctx, keys[i])
			if err == nil {
				err = u(ctx)
			}
			if err != nil {
				first = err
				b.FailNow()
			}
		}
		b.StopTimer()
		rt = float64(h.n.Load()-n0) / float64(b.N)
	})
	if first != nil {
		return costResult{}, first
	}
	return costResult{
		NsPerOp:     float64(res.NsPerOp()),
		AllocsPerOp: float64(res.MemAllocs) / float64(res.N),
		BytesPerOp:  float64(res.MemBytes) / float64(res.N),
		RoundTrips:  rt,
	}, nil
}

// ---- scenario 5: many waiters on one key in one process

type waitersResult struct {
	Acquired   int
	Finished   bool
	Time       time.Duration // holder's release → last waiter acquired
	PeakConns  int           // server connections beyond the baseline
	PeakPool   int           // peak of the client pool's own connections
	Dials      int64         // connections the client dialed in all
	PerWaiter  float64       // (HeapInuse+StackInuse) delta per waiter, bytes
	GiveUps    int64
	Violations int64
}

// manyWaiters: a holder takes key, n goroutines block in Lock on it, then the
// holder releases and each waiter takes the lock once (hold 0) and releases.
// limit caps the whole waiting phase.
func manyWaiters(e *env, c contender, key string, n int, settle, limit time.Duration) (waitersResult, error) {
	bg := context.Background()
	var r waitersResult
	base, err := connectedClients(bg, e.admin)
	if err != nil {
		return r, err
	}
	client, hook := newClient(e.addr)
	defer client.Close()
	l := c.New(client)

	unlockHolder, err := l.TryLock(bg, key)
	if err != nil {
		return r, fmt.Errorf("holder: %w", err)
	}

	// Sample connections while waiters exist.
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(25 * time.Millisecond)
		defer t.Stop()
		for {
			if cur, err := connectedClients(bg, e.admin); err == nil {
				r.PeakConns = max(r.PeakConns, cur-base)
			}
			r.PeakPool = max(r.PeakPool, int(client.PoolStats().TotalConns))
			select {
			case <-stopSampling:
				return
			case <-t.C:
			}
		}
	}()

	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)

	ctx, cancel := context.WithTimeout(bg, settle+limit)
	defer cancel()
	var (
		wg         sync.WaitGroup
		acquired   atomic.Int64
		holders    atomic.Int32
		violations atomic.Int64
		lastMu     sync.Mutex
		last       time.Time
		giveups    = make([]int64, n)
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u, err := lockUntil(ctx, l, key, &giveups[i])
			if err != nil {
				return
			}
			if holders.Add(1) != 1 {
				violations.Add(1)
			}
			now := time.Now()
			lastMu.Lock()
			last = now
			lastMu.Unlock()
			acquired.Add(1)
			holders.Add(-1)
			_ = u(bg)
		}()
	}
	time.Sleep(settle)
	runtime.GC()
	runtime.ReadMemStats(&m1)
	r.PerWaiter = (float64(m1.HeapInuse+m1.StackInuse) - float64(m0.HeapInuse+m0.StackInuse)) / float64(n)

	released := time.Now()
	relErr := unlockHolder(bg)
	if relErr != nil {
		cancel()
	}
	wg.Wait()
	close(stopSampling)
	<-sampled
	if relErr != nil {
		return r, fmt.Errorf("holder release: %w", relErr)
	}
	r.Dials = hook.dials.Load()
	r.Acquired = int(acquired.Load())
	r.Finished = r.Acquired == n
	if r.Finished {
		r.Time = last.Sub(released)
	} else {
		r.Time = time.Since(released)
	}
	for _, g := range giveups {
		r.GiveUps += g
	}
	r.Violations = violations.Load()
	return r, nil
}

// ---- scenario 6: multilock against a per-key loop

type multiResult struct {
	PerOp      time.Duration // one acquisition + release of all keys
	RoundTrips float64
}

// multiKeys runs acquisitions of k names (all in one slot group: a single
// Redis) for dur, either as one MultiLock or as a loop of k mutexes.
func multiKeys(e *env, names []string, loop bool, dur time.Duration) (multiResult, error) {
	c := e.clients["redlease"]
	h := e.hooks["redlease"]
	ctx := context.Background()
	var op func() error
	if loop {
		ms := make([]*mutex.Mutex, len(names))
		for i, n := range names {
			m, err := mutex.New(c, n)
			if err != nil {
				return multiResult{}, err
			}
			ms[i] = m
		}
		op = func() error {
			rel := make([]func(context.Context) error, 0, len(ms))
			var err error
			for _, m := range ms {
				ls, lerr := m.TryLock(ctx)
				if lerr != nil {
					err = lerr
					break
				}
				rel = append(rel, ls.Release)
			}
			for _, r := range rel {
				err = errors.Join(err, r(ctx))
			}
			return err
		}
	} else {
		ml, err := multilock.New(c, names)
		if err != nil {
			return multiResult{}, err
		}
		op = func() error {
			ls, err := ml.TryLock(ctx)
			if err != nil {
				return err
			}
			return ls.Release(ctx)
		}
	}
	for range 20 { // warm-up
		if err := op(); err != nil {
			return multiResult{}, err
		}
	}
	n0 := h.n.Load()
	start := time.Now()
	deadline := start.Add(dur)
	i := 0
	for ; time.Now().Before(deadline); i++ {
		if err := op(); err != nil {
			return multiResult{}, err
		}
	}
	elapsed := time.Since(start)
	return multiResult{
		PerOp:      elapsed / time.Duration(i),
		RoundTrips: float64(h.n.Load()-n0) / float64(i),
	}, nil
}

// ---- round-trip time of the loopback Redis

func measureRTT(c *redis.Client, n int) (time.Duration, error) {
	ctx := context.Background()
	ds := make([]time.Duration, 0, n)
	for range n {
		t := time.Now()
		if err := c.Ping(ctx).Err(); err != nil {
			return 0, err
		}
		ds = append(ds, time.Since(t))
	}
	return percentile(ds, 0.5), nil
}
