package redleaseotel_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/mutex"
	"github.com/redlease/redlease/redleaseotel"
)

// observers are the configurations the allocation test and benchmark
// compare: none, and redleaseotel with the global providers (no SDK
// installed: the tests never set one), with explicit no-op providers, and
// with the SDK recording (for reference).
func observers(tb testing.TB) []struct {
	name string
	opts []mutex.Option
} {
	global, err := redleaseotel.New()
	if err != nil {
		tb.Fatal(err)
	}
	noop, err := redleaseotel.New(redleaseotel.WithMeterProvider(metricnoop.NewMeterProvider()), redleaseotel.WithTracerProvider(tracenoop.NewTracerProvider()))
	if err != nil {
		tb.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	tp := sdktrace.NewTracerProvider()
	tb.Cleanup(func() {
		_ = mp.Shutdown(context.Background())
		_ = tp.Shutdown(context.Background())
	})
	sdk, err := redleaseotel.New(redleaseotel.WithMeterProvider(mp), redleaseotel.WithTracerProvider(tp))
	if err != nil {
		tb.Fatal(err)
	}
	return []struct {
		name string
		opts []mutex.Option
	}{
		{"none", nil},
		{"otel-global", []mutex.Option{mutex.WithObserver(global)}},
		{"otel-noop", []mutex.Option{mutex.WithObserver(noop)}},
		{"otel-sdk", []mutex.Option{mutex.WithObserver(sdk)}},
	}
}

func tryLockRelease(tb testing.TB, ctx context.Context, m *mutex.Mutex) {
	l, err := m.TryLock(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	if err := l.Release(ctx); err != nil {
		tb.Fatal(err)
	}
}

func newMutex(tb testing.TB, c *redis.Client, name string, opts []mutex.Option) *mutex.Mutex {
	m, err := mutex.New(c, name, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// bigFences starts the fence counter past 255: Go boxes the integers 0-255
// into an interface without allocating, so otherwise the first
// configuration measured (small fences) would allocate less than the later
// ones.
func bigFences(tb testing.TB, c *redis.Client) {
	if err := c.Set(context.Background(), "redlease:fence", 1_000_000, 0).Err(); err != nil {
		tb.Fatal(err)
	}
}

// TestNoopAllocs: with the global or a no-op provider, observing a
// TryLock+Release allocates nothing more than not observing it.
func TestNoopAllocs(t *testing.T) {
	c := redistest.Start(t).Client(t)
	ctx := context.Background()
	bigFences(t, c)
	allocs := map[string]float64{}
	for _, o := range observers(t) {
		m := newMutex(t, c, "allocs-"+o.name, o.opts)
		tryLockRelease(t, ctx, m) // load the scripts, fill the pool
		allocs[o.name] = testing.AllocsPerRun(200, func() { tryLockRelease(t, ctx, m) })
	}
	t.Logf("allocations per TryLock+Release: %v", allocs)
	for _, name := range []string{"otel-global", "otel-noop"} {
		if allocs[name] != allocs["none"] {
			t.Errorf("%s: %v allocations per TryLock+Release, without an observer %v: want equal", name, allocs[name], allocs["none"])
		}
	}
}

// BenchmarkTryLockRelease: uncontended TryLock+Release on one name, without
// an observer and with redleaseotel on the global (no SDK), no-op and SDK
// providers; compare allocs/op.
func BenchmarkTryLockRelease(b *testing.B) {
	c := redistest.Start(b).Client(b)
	ctx := context.Background()
	bigFences(b, c)
	for _, o := range observers(b) {
		b.Run(o.name, func(b *testing.B) {
			m := newMutex(b, c, fmt.Sprintf("bench-%s", o.name), o.opts)
			tryLockRelease(b, ctx, m)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				tryLockRelease(b, ctx, m)
			}
		})
	}
}

// BenchmarkLockRelease: uncontended Lock+Release; a Lock makes a span, so
// with an observer it allocates the span and its context (with the global
// or no-op TracerProvider) or a recording span (with the SDK).
func BenchmarkLockRelease(b *testing.B) {
	c := redistest.Start(b).Client(b)
	ctx := context.Background()
	bigFences(b, c)
	for _, o := range observers(b) {
		b.Run(o.name, func(b *testing.B) {
			m := newMutex(b, c, fmt.Sprintf("bench-lock-%s", o.name), o.opts)
			tryLockRelease(b, ctx, m)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				l, err := m.Lock(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if err := l.Release(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
