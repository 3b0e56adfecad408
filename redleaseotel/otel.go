package redleaseotel

import (
	"errors"
	"fmt"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/observe"
)

// ScopeName is the instrumentation scope of the meter and tracer.
const ScopeName = "github.com/redlease/redlease/redleaseotel"

// Names of the metrics (see the README for units, attributes and meaning).
const (
	MetricWaitDuration    = "redlease.lock.wait.duration"
	MetricAcquisitions    = "redlease.lock.acquisitions"
	MetricReleases        = "redlease.lock.releases"
	MetricHandoffs        = "redlease.lock.handoffs"
	MetricWaitActive      = "redlease.lock.wait.active"
	MetricLeaseActive     = "redlease.lease.active"
	MetricLeaseLosses     = "redlease.lease.losses"
	MetricRenewalFailures = "redlease.lease.renewal.failures"
)

// SpanName is the name of the span of a blocking acquisition.
const SpanName = "redlease.lock"

// Attribute keys.
const (
	AttrKind       = "redlease.lock.kind"         // mutex, multilock, semaphore, rwmutex.read, rwmutex.write
	AttrName       = "redlease.lock.name"         // the lock name (a multilock's names joined by ","); see WithNameAttribute
	AttrBlocking   = "redlease.lock.blocking"     // true for Lock, RLock, Acquire; false for the Try calls
	AttrOutcome    = "redlease.lock.outcome"      // acquired, busy, canceled, error
	AttrLossReason = "redlease.lease.loss.reason" // expired, not_held, revoked, other
	AttrErrorType  = "error.type"                 // a failed release or renewal: not_held, expired, timeout, _OTHER
)

// waitBuckets are the wait histogram's default bounds, in seconds: from a
// TryLock's round trip (~100µs) to a minute of waiting.
var waitBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// Observer reports the events of redlease locks to OpenTelemetry. Make one
// with New and give it to each lock with mutex.WithObserver; one Observer
// serves any number of locks and is safe for concurrent use.
type Observer struct {
	tracer   trace.Tracer
	withName bool

	wait         metric.Float64Histogram
	acquisitions metric.Int64Counter
	releases     metric.Int64Counter
	handoffs     metric.Int64Counter
	waitActive   metric.Int64UpDownCounter
	leaseActive  metric.Int64UpDownCounter
	losses       metric.Int64Counter
	renewFails   metric.Int64Counter
}

var _ observe.Observer = (*Observer)(nil)

// Option configures New.
type Option interface{ apply(*config) }

type config struct {
	mp       metric.MeterProvider
	tp       trace.TracerProvider
	withName bool
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithMeterProvider sets the provider of the metrics; nil means the
// default. The default is the global provider, otel.GetMeterProvider(), as
// it is when New is called (a global provider set later still receives the
// measurements: the global one delegates).
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c *config) { c.mp = mp })
}

// WithTracerProvider sets the provider of the spans; nil means the default.
// The default is the global provider, otel.GetTracerProvider().
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(c *config) { c.tp = tp })
}

// WithNameAttribute turns the redlease.lock.name attribute on spans and
// metrics on or off. Turn it off when lock names are many (each name is a
// metric series) or sensitive (names are written into traces); the kind
// attribute stays. The default is true.
func WithNameAttribute(on bool) Option {
	return optionFunc(func(c *config) { c.withName = on })
}

// New returns an Observer that records to the configured providers. It
// fails, with an error wrapping lease.ErrInvalid, on a nil option, and with
// the provider's error if an instrument cannot be created.
func New(opts ...Option) (*Observer, error) {
	c := config{withName: true}
	for i, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("redleaseotel.New: %w: nil option (option %d)", lease.ErrInvalid, i)
		}
		o.apply(&c)
	}
	if c.mp == nil {
		c.mp = otel.GetMeterProvider()
	}
	if c.tp == nil {
		c.tp = otel.GetTracerProvider()
	}
	m := c.mp.Meter(ScopeName)
	o := &Observer{tracer: c.tp.Tracer(ScopeName), withName: c.withName}
	var errs [8]error
	o.wait, errs[0] = m.Float64Histogram(MetricWaitDuration, metric.WithUnit("s"),
		metric.WithDescription("How long acquisition calls took, their wait included, by outcome."),
		metric.WithExplicitBucketBoundaries(waitBuckets...))
	o.acquisitions, errs[1] = m.Int64Counter(MetricAcquisitions, metric.WithUnit("{acquisition}"),
		metric.WithDescription("Successful acquisitions."))
	o.releases, errs[2] = m.Int64Counter(MetricReleases, metric.WithUnit("{release}"),
		metric.WithDescription("Leases ended by Release; error.type is set when the hold was already gone or Redis failed."))
	o.handoffs, errs[3] = m.Int64Counter(MetricHandoffs, metric.WithUnit("{handoff}"),
		metric.WithDescription("Locks handed by a release directly to a waiter of the same process."))
	o.waitActive, errs[4] = m.Int64UpDownCounter(MetricWaitActive, metric.WithUnit("{waiter}"),
		metric.WithDescription("Blocking acquisitions queued for a lock held by others, now."))
	o.leaseActive, errs[5] = m.Int64UpDownCounter(MetricLeaseActive, metric.WithUnit("{lease}"),
		metric.WithDescription("Leases held now (acquired, not yet released or lost)."))
	o.losses, errs[6] = m.Int64Counter(MetricLeaseLosses, metric.WithUnit("{lease}"),
		metric.WithDescription("Leases that ended without Release, by reason."))
	o.renewFails, errs[7] = m.Int64Counter(MetricRenewalFailures, metric.WithUnit("{failure}"),
		metric.WithDescription("Failed renewal attempts (each is retried until the lease's deadline)."))
	if err := errors.Join(errs[:]...); err != nil {
		return nil, fmt.Errorf("redleaseotel.New: %w", err)
	}
	return o, nil
}

// Probe returns the probe of one lock; redlease calls it once per lock, in
// the lock's constructor.
func (o *Observer) Probe(kind observe.Kind, name string) observe.Probe {
	return newProbe(o, kind, name)
}
