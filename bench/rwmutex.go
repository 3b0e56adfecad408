package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/rwmutex"
)

// ---- scenario 7: redlease's rwmutex, readers and writers on one name

const rwReaders, rwWriters = 6, 2

type rwResult struct {
	Rate       float64 // acquisitions (read and write) per second
	ReadP99    time.Duration
	WriteP99   time.Duration
	Violations int64 // a writer held with anyone else
}

// rwContended runs rwReaders goroutines that RLock and rwWriters that Lock
// one name for dur, each holding hold per acquisition (rwmutex defaults).
func rwContended(c *redis.Client, key string, hold, dur time.Duration) (rwResult, error) {
	rw, err := rwmutex.New(c, key)
	if err != nil {
		return rwResult{}, err
	}
	bg := context.Background()
	ctx, cancel := context.WithTimeout(bg, dur)
	defer cancel()
	var (
		readers, writers atomic.Int32
		violations, n    atomic.Int64
		mu               sync.Mutex
		rWaits, wWaits   []time.Duration
		relErr           error
		wg               sync.WaitGroup
	)
	for w := range rwReaders + rwWriters {
		write := w >= rwReaders
		wg.Add(1)
		go func() {
			defer wg.Done()
			var waits []time.Duration
			defer func() {
				mu.Lock()
				if write {
					wWaits = append(wWaits, waits...)
				} else {
					rWaits = append(rWaits, waits...)
				}
				mu.Unlock()
			}()
			for ctx.Err() == nil {
				start := time.Now()
				lock := rw.RLock
				if write {
					lock = rw.Lock
				}
				l, err := lock(ctx)
				if err != nil {
					return // ctx done
				}
				waits = append(waits, time.Since(start))
				n.Add(1)
				if write {
					if writers.Add(1) > 1 || readers.Load() > 0 {
						violations.Add(1)
					}
				} else if readers.Add(1); writers.Load() > 0 {
					violations.Add(1)
				}
				if hold > 0 {
					time.Sleep(hold)
				}
				if write {
					writers.Add(-1)
				} else {
					readers.Add(-1)
				}
				if err := l.Release(bg); err != nil {
					mu.Lock()
					relErr = err
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if relErr != nil {
		return rwResult{}, fmt.Errorf("release: %w", relErr)
	}
	return rwResult{
		Rate:       float64(n.Load()) / dur.Seconds(),
		ReadP99:    percentile(slices.Clip(rWaits), 0.99),
		WriteP99:   percentile(slices.Clip(wWaits), 0.99),
		Violations: violations.Load(),
	}, nil
}
