// Package redleaseotel reports what redlease's locks do as OpenTelemetry
// metrics and traces.
//
//	obs, err := redleaseotel.New() // the global MeterProvider and TracerProvider
//	if err != nil { ... }
//	m, err := mutex.New(client, "orders:42", mutex.WithObserver(obs))
//
// Observer implements observe.Observer; give it to any lock with
// mutex.WithObserver (mutex, multilock, semaphore, rwmutex). It records the
// metrics listed in the README ("Metrics and traces"), all under the
// "redlease." namespace and following the OpenTelemetry semantic-convention
// naming rules (durations in seconds, counters without a _total suffix,
// UpDownCounters for what is held or waiting now), and one span per
// blocking acquisition (Lock, RLock, Acquire), named "redlease.lock", that
// covers the whole wait; the Redis calls made meanwhile are its children
// when the client is instrumented (redisotel). TryLock makes no span.
//
// Every measurement and span carries redlease.lock.kind and, unless
// WithNameAttribute(false), redlease.lock.name. Lock names can be many
// (one per order, per user) or sensitive; turn the attribute off then, or
// every name becomes a metric series and is written into traces.
//
// # Why a separate module
//
// The redlease module itself does not depend on OpenTelemetry: it only
// defines the small observe package, which this module implements. Users
// who do not want OpenTelemetry do not download or compile it, and the
// core's go.mod stays minimal — the same split go-redis makes with
// github.com/redis/go-redis/extra/redisotel. Without an observer each hook
// in redlease is one nil check.
//
// # Cost
//
// The observer prepares every attribute set and option slice once per lock,
// in its constructor. With a no-op MeterProvider and TracerProvider — also
// the global ones while no SDK is installed — a TryLock+Release makes no
// allocation more than without an observer (TestNoopAllocs,
// BenchmarkTryLockRelease); with the SDK recording, none either. A Lock
// call makes its span, which allocates: 3 allocations with the global
// TracerProvider and no SDK, 1 with a no-op one (the context that carries
// the span), 5 with the SDK (BenchmarkLockRelease) — only calls that block.
package redleaseotel
