package redleaseotel_test

import (
	"context"
	"fmt"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/redlease/redlease/mutex"
	"github.com/redlease/redlease/redleaseotel"
)

func Example() {
	// An in-process Redis for the example; use your own client.
	mr, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	defer mr.Close()
	client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer client.Close()
	ctx := context.Background()

	// In real code: the global providers your OpenTelemetry setup
	// installed (redleaseotel.New() with no options), or your own.
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(ctx)
	obs, err := redleaseotel.New(redleaseotel.WithMeterProvider(mp), redleaseotel.WithNameAttribute(false))
	if err != nil {
		panic(err)
	}

	m, err := mutex.New(client, "report", mutex.WithObserver(obs))
	if err != nil {
		panic(err)
	}
	l, err := m.Lock(ctx)
	if err != nil {
		panic(err)
	}
	_ = l.Release(ctx)

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		panic(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok {
				fmt.Printf("%s = %d %s\n", m.Name, sum.DataPoints[0].Value, m.Unit)
			}
		}
	}
	// Unordered output:
	// redlease.lock.acquisitions = 1 {acquisition}
	// redlease.lease.active = 0 {lease}
	// redlease.lock.releases = 1 {release}
}
