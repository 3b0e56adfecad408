package redleaseotel_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/redlease/redlease/redleaseotel"
)

// sdk is an Observer recording into the SDK's in-memory reader and span
// recorder.
type sdk struct {
	t      *testing.T
	reader *sdkmetric.ManualReader
	spans  *tracetest.SpanRecorder
	obs    *redleaseotel.Observer
}

func newSDK(t *testing.T, opts ...redleaseotel.Option) *sdk {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() {
		_ = mp.Shutdown(context.Background())
		_ = tp.Shutdown(context.Background())
	})
	obs, err := redleaseotel.New(append([]redleaseotel.Option{redleaseotel.WithMeterProvider(mp), redleaseotel.WithTracerProvider(tp)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return &sdk{t: t, reader: reader, spans: sr, obs: obs}
}

func (s *sdk) collect() map[string]metricdata.Metrics {
	s.t.Helper()
	var rm metricdata.ResourceMetrics
	if err := s.reader.Collect(context.Background(), &rm); err != nil {
		s.t.Fatal(err)
	}
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != redleaseotel.ScopeName {
			s.t.Fatalf("scope %q, want %q", sm.Scope.Name, redleaseotel.ScopeName)
		}
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

// matches reports whether set has every attribute of want ("" values: the
// key must be absent).
func matches(set attribute.Set, want map[string]string) bool {
	for k, v := range want {
		got, ok := set.Value(attribute.Key(k))
		if v == "" {
			if ok {
				return false
			}
			continue
		}
		if !ok || got.Emit() != v {
			return false
		}
	}
	return true
}

// sum adds up the int64 sum metric name over the points matching want.
func (s *sdk) sum(name string, want map[string]string) int64 {
	s.t.Helper()
	m, ok := s.collect()[name]
	if !ok {
		return 0
	}
	d, ok := m.Data.(metricdata.Sum[int64])
	if !ok {
		s.t.Fatalf("%s: data %T, want metricdata.Sum[int64]", name, m.Data)
	}
	var n int64
	for _, p := range d.DataPoints {
		if matches(p.Attributes, want) {
			n += p.Value
		}
	}
	return n
}

// count adds up the counts of histogram name over the points matching want.
func (s *sdk) count(name string, want map[string]string) uint64 {
	s.t.Helper()
	m, ok := s.collect()[name]
	if !ok {
		return 0
	}
	d, ok := m.Data.(metricdata.Histogram[float64])
	if !ok {
		s.t.Fatalf("%s: data %T, want metricdata.Histogram[float64]", name, m.Data)
	}
	var n uint64
	for _, p := range d.DataPoints {
		if matches(p.Attributes, want) {
			n += p.Count
		}
	}
	return n
}

// waitSum waits (bounded) until sum(name, want) is n.
func (s *sdk) waitSum(name string, want map[string]string, n int64) {
	s.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.sum(name, want) != n {
		if time.Now().After(deadline) {
			s.t.Fatalf("%s%v: %d after 5s, want %d", name, want, s.sum(name, want), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (s *sdk) wantSum(name string, want map[string]string, n int64) {
	s.t.Helper()
	if got := s.sum(name, want); got != n {
		s.t.Errorf("%s%v = %d, want %d", name, want, got, n)
	}
}

func (s *sdk) wantCount(name string, want map[string]string, n uint64) {
	s.t.Helper()
	if got := s.count(name, want); got != n {
		s.t.Errorf("%s%v count = %d, want %d", name, want, got, n)
	}
}

// spanAttrs returns the attributes of a span as strings.
func spanAttrs(sp sdktrace.ReadOnlySpan) map[string]string {
	out := map[string]string{}
	for _, kv := range sp.Attributes() {
		out[string(kv.Key)] = kv.Value.Emit()
	}
	return out
}
