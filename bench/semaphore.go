package main

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/semaphore"
)

// ---- scenario 7: redlease's semaphore and rwmutex, next to its mutex in the same run

// semLocker drives a semaphore through the Locker interface: a name is a
// semaphore of the given limit, an acquisition takes 1 unit. With wait set,
// TryLock calls Acquire (uncontended, its first attempt goes out at once).
type semLocker struct {
	c     *redis.Client
	limit int64
	wait  bool
}

func (l semLocker) TryLock(ctx context.Context, key string) (Unlock, error) {
	if l.wait {
		return l.Lock(ctx, key)
	}
	s, err := semaphore.New(l.c, key, l.limit)
	if err != nil {
		return nil, err
	}
	ls, err := s.TryAcquire(ctx, 1)
	if err != nil {
		return nil, err
	}
	return ls.Release, nil
}

func (l semLocker) Lock(ctx context.Context, key string) (Unlock, error) {
	s, err := semaphore.New(l.c, key, l.limit)
	if err != nil {
		return nil, err
	}
	ls, err := s.Acquire(ctx, 1)
	if err != nil {
		return nil, err
	}
	return ls.Release, nil
}

// semContender is the semaphore as a contender of its own (its own client
// and round-trip counter); contenders[0] is redlease's mutex.
var semContender = contender{"redlease-sem", "semaphore.New per name, Acquire(1) + Lease.Release (defaults)",
	func(c *redis.Client) Locker { return semLocker{c: c, limit: semLimit, wait: true} }}

// semLimit is the limit of scenario 7's contended semaphore.
const semLimit = 2

// runSemaphore runs scenario 7, all of it in the "redlease" column: each
// semaphore row is followed by the mutex's figure measured in the same run.
func runSemaphore(e *env, res *results, cfg config, fail func(key, id string, err error)) {
	const id = "redlease"
	mu := contenders[0]
	for _, c := range []contender{semContender, mu} {
		if _, ok := e.clients[c.ID]; !ok {
			e.clients[c.ID], e.hooks[c.ID] = newClient(e.addr)
		}
	}
	type kind struct {
		c    contender
		name string
		op   string
	}
	kinds := []kind{{semContender, "semaphore", "Acquire(1)+Release"}, {mu, "mutex", "TryLock+Release"}}
	for _, k := range kinds {
		h := "7. " + k.name + ", uncontended, fresh names: "
		res.define(row{key: "7rate:" + k.name, title: h + k.op + " pairs/s (1 goroutine)", format: fmtRate})
		res.define(row{key: "7allocs:" + k.name, title: h + "allocs/pair", format: fmtF1})
		res.define(row{key: "7rt:" + k.name, title: h + "round trips/pair (go-redis hook)", format: fmtF2})
	}
	const workers = 8
	holds := []time.Duration{0, time.Millisecond}
	for _, hold := range holds {
		for _, k := range kinds {
			what := "one key"
			if k.c.ID == semContender.ID {
				what = fmt.Sprintf("limit %d", semLimit)
			}
			h := fmt.Sprintf("7. %s, 8 goroutines, %s, hold %v: ", k.name, what, hold)
			p := fmt.Sprintf("7:%v:%s:", hold, k.name)
			res.define(row{key: p + "rate", title: h + "acquisitions/s", format: fmtRate})
			res.define(row{key: p + "w99", title: h + "wait p99", format: fmtDur})
			res.define(row{key: p + "fair", title: h + "fairness (min/max acquisitions per worker)", format: fmtF2})
			res.define(row{key: p + "cmds", title: h + "Redis commands / acquisition", format: fmtF1})
			res.define(row{key: p + "viol", title: h + "holders over the limit (all reps)", format: fmtInt, agg: aggSum, target: absTarget("0", 0, false, fmtInt)})
		}
		h := fmt.Sprintf("7. rwmutex, 8 goroutines, %d readers + %d writers, one name, hold %v: ", rwReaders, rwWriters, hold)
		p := fmt.Sprintf("7:%v:rwmutex:", hold)
		res.define(row{key: p + "rate", title: h + "acquisitions/s (read and write)", format: fmtRate})
		res.define(row{key: p + "r99", title: h + "read wait p99", format: fmtDur})
		res.define(row{key: p + "w99", title: h + "write wait p99", format: fmtDur})
		res.define(row{key: p + "viol", title: h + "a writer holding with another holder (all reps)", format: fmtInt, agg: aggSum, target: absTarget("0", 0, false, fmtInt)})
	}
	for rep := range cfg.reps {
		for _, k := range kinds {
			progress("scenario 7 rep %d: %s uncontended", rep+1, k.name)
			runtime.GC()
			r, err := pairs(e.locker(k.c), fmt.Sprintf("s7:%s:%d:", k.name, rep), 1, cfg.dur)
			if err != nil {
				fail("7rate:"+k.name, id, err)
				continue
			}
			res.add("7rate:"+k.name, id, r.Rate)
			runtime.GC()
			cr, err := cost(e, k.c, fmt.Sprintf("s7c:%s:%d:", k.name, rep))
			if err != nil {
				fail("7allocs:"+k.name, id, err)
				continue
			}
			res.add("7allocs:"+k.name, id, cr.AllocsPerOp)
			res.add("7rt:"+k.name, id, cr.RoundTrips)
		}
		for _, hold := range holds {
			for _, k := range kinds {
				limit := int32(1)
				c := k.c
				if c.ID == semContender.ID {
					limit = semLimit
					c.New = func(c *redis.Client) Locker { return semLocker{c: c, limit: semLimit} }
				}
				p := fmt.Sprintf("7:%v:%s:", hold, k.name)
				progress("scenario 7 rep %d hold %v: %s contended", rep+1, hold, k.name)
				runtime.GC()
				r, err := contended(e, c, fmt.Sprintf("s7:%s:%v:%d", k.name, hold, rep), workers, limit, hold, cfg.contDur)
				if err != nil {
					fail(p+"rate", id, err)
					continue
				}
				res.add(p+"rate", id, r.Rate)
				res.add(p+"w99", id, float64(r.WaitP99))
				res.add(p+"fair", id, r.Fairness)
				res.add(p+"cmds", id, r.CmdsPerAcq)
				res.add(p+"viol", id, float64(r.Violations))
			}
			p := fmt.Sprintf("7:%v:rwmutex:", hold)
			progress("scenario 7 rep %d hold %v: rwmutex contended", rep+1, hold)
			runtime.GC()
			r, err := rwContended(e.clients[mu.ID], fmt.Sprintf("s7:rw:%v:%d", hold, rep), hold, cfg.contDur)
			if err != nil {
				fail(p+"rate", id, err)
				continue
			}
			res.add(p+"rate", id, r.Rate)
			res.add(p+"r99", id, float64(r.ReadP99))
			res.add(p+"w99", id, float64(r.WriteP99))
			res.add(p+"viol", id, float64(r.Violations))
		}
	}
}
