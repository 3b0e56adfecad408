package multilock_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/multilock"
	"github.com/redlease/redlease/mutex"
)

// BenchmarkMultiLock: TryLock+Release of 1, 4 and 16 same-slot names as one
// MultiLock (one script call each way), against a loop of per-name mutexes.
func BenchmarkMultiLock(b *testing.B) {
	s := redistest.Start(b)
	c := s.Client(b)
	ctx := context.Background()
	for _, n := range []int{1, 4, 16} {
		set := make([]string, n)
		for i := range set {
			set[i] = fmt.Sprintf("bench-%d-%d", n, i)
		}
		b.Run(fmt.Sprintf("multilock/keys=%d", n), func(b *testing.B) {
			ml, _ := multilock.New(c, set, mutex.WithAutoRenew(false))
			before, _ := redistest.CommandCalls(ctx, c)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				l, err := ml.TryLock(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if err := l.Release(ctx); err != nil {
					b.Fatal(err)
				}
			}
			after, _ := redistest.CommandCalls(ctx, c)
			scripts := after["evalsha"] + after["eval"] - before["evalsha"] - before["eval"]
			b.ReportMetric(float64(scripts)/float64(b.N), "scripts/op")
		})
		b.Run(fmt.Sprintf("mutexloop/keys=%d", n), func(b *testing.B) {
			ms := make([]*mutex.Mutex, n)
			for i := range ms {
				ms[i], _ = mutex.New(c, set[i], mutex.WithAutoRenew(false))
			}
			before, _ := redistest.CommandCalls(ctx, c)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				for _, m := range ms {
					l, err := m.TryLock(ctx)
					if err != nil {
						b.Fatal(err)
					}
					if err := l.Release(ctx); err != nil {
						b.Fatal(err)
					}
				}
			}
			after, _ := redistest.CommandCalls(ctx, c)
			scripts := after["evalsha"] + after["eval"] - before["evalsha"] - before["eval"]
			b.ReportMetric(float64(scripts)/float64(b.N), "scripts/op")
		})
	}
}
