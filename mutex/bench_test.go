package mutex_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/mutex"
)

// reportCommands adds Redis commands per operation (INFO commandstats,
// Lua-internal calls included) to a benchmark's output.
func reportCommands(b *testing.B, c *redis.Client, before map[string]int64, ops int) {
	after, err := redistest.CommandCalls(context.Background(), c)
	if err != nil {
		b.Fatal(err)
	}
	var total, scripts int64
	for k, v := range after {
		if k == "info" {
			continue
		}
		total += v - before[k]
		if k == "evalsha" || k == "eval" {
			scripts += v - before[k]
		}
	}
	b.ReportMetric(float64(total)/float64(ops), "cmds/op")
	b.ReportMetric(float64(scripts)/float64(ops), "scripts/op")
}

// BenchmarkTryLockRelease: one goroutine, uncontended TryLock+Release pairs
// on a fresh name each time (two round trips a pair).
func BenchmarkTryLockRelease(b *testing.B) {
	s := redistest.Start(b)
	c := s.Client(b)
	ctx := context.Background()
	ms := make([]*mutex.Mutex, b.N)
	for i := range ms {
		ms[i], _ = mutex.New(c, fmt.Sprintf("bench-%d", i), mutex.WithAutoRenew(false))
	}
	if l, err := ms[0].TryLock(ctx); err == nil { // load the scripts
		l.Release(ctx)
	}
	before, _ := redistest.CommandCalls(ctx, c)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l, err := ms[i].TryLock(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportCommands(b, c, before, b.N)
}

// BenchmarkContended8: 8 goroutines sharing one client take turns on one
// name with Lock+Release (zero hold time); ns/op is per acquisition.
func BenchmarkContended8(b *testing.B) {
	s := redistest.Start(b)
	c := s.Client(b)
	ctx := context.Background()
	m, _ := mutex.New(c, "contended")
	if l, err := m.TryLock(ctx); err == nil {
		l.Release(ctx)
	}
	before, _ := redistest.CommandCalls(ctx, c)
	var left atomic.Int64
	left.Store(int64(b.N))
	var inside atomic.Int32
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 {
				l, err := m.Lock(ctx)
				if err != nil {
					b.Error(err)
					return
				}
				if inside.Add(1) != 1 {
					b.Error("two holders at once")
				}
				inside.Add(-1)
				if err := l.Release(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	reportCommands(b, c, before, b.N)
}
