package redleaseotel

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/observe"
)

const (
	numOutcomes = int(observe.Failed) + 1
	numReasons  = int(observe.ReasonOther) + 1
)

// Classes of error of a failed release or renewal (error.type).
const (
	errNone = iota
	errNotHeld
	errExpired
	errTimeout
	errOther
	numErrTypes
)

var errTypeNames = [numErrTypes]string{"", "not_held", "expired", "timeout", "_OTHER"}

// errType classifies err into a value of error.type: few values, and never
// the error's text, which names the lock.
func errType(err error) int {
	switch {
	case err == nil:
		return errNone
	case errors.Is(err, lease.ErrNotHeld):
		return errNotHeld
	case errors.Is(err, lease.ErrExpired):
		return errExpired
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return errTimeout
	}
	return errOther
}

// isTimeout reports a network timeout (a net.Error's Timeout). A function
// of its own: the target of errors.As escapes, and errType is called with
// a nil error on every release.
func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// probe is the Observer's probe of one lock: every attribute set and option
// slice it passes is built here, once, so that recording allocates nothing
// of its own.
type probe struct {
	o *Observer

	base      []metric.AddOption                    // kind [, name]
	wait      [2][numOutcomes][]metric.RecordOption // [blocking][outcome]
	acquired  [2][]metric.AddOption                 // [blocking]
	released  [numErrTypes][]metric.AddOption       // [error type of Release's result]
	lost      [numReasons][]metric.AddOption        // [reason]
	renewFail [numErrTypes][]metric.AddOption       // [error type]
	spanStart []trace.SpanStartOption               // kind [, name]
	spanEnd   [numOutcomes][]attribute.KeyValue     // outcome [, error.type]
}

var _ observe.Probe = (*probe)(nil)

func newProbe(o *Observer, kind observe.Kind, name string) *probe {
	kv := []attribute.KeyValue{attribute.String(AttrKind, string(kind))}
	if o.withName {
		kv = append(kv, attribute.String(AttrName, name))
	}
	with := func(extra ...attribute.KeyValue) metric.MeasurementOption {
		all := append(append([]attribute.KeyValue(nil), kv...), extra...)
		return metric.WithAttributeSet(attribute.NewSet(all...))
	}
	p := &probe{o: o, base: []metric.AddOption{with()}}
	for b, blocking := range [2]bool{false, true} {
		bkv := attribute.Bool(AttrBlocking, blocking)
		p.acquired[b] = []metric.AddOption{with(bkv)}
		for oc := 0; oc < numOutcomes; oc++ {
			p.wait[b][oc] = []metric.RecordOption{with(bkv, attribute.String(AttrOutcome, observe.Outcome(oc).String()))}
		}
	}
	for et := 0; et < numErrTypes; et++ {
		if et == errNone {
			p.released[et] = p.base
			continue
		}
		p.released[et] = []metric.AddOption{with(attribute.String(AttrErrorType, errTypeNames[et]))}
		p.renewFail[et] = p.released[et]
	}
	for r := 0; r < numReasons; r++ {
		p.lost[r] = []metric.AddOption{with(attribute.String(AttrLossReason, observe.Reason(r).String()))}
	}
	p.spanStart = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(kv...)}
	for oc := 0; oc < numOutcomes; oc++ {
		out := observe.Outcome(oc)
		p.spanEnd[oc] = []attribute.KeyValue{attribute.String(AttrOutcome, out.String())}
		if out != observe.Acquired {
			p.spanEnd[oc] = append(p.spanEnd[oc], attribute.String(AttrErrorType, out.String()))
		}
	}
	return p
}

func outcomeIndex(oc observe.Outcome) int {
	if int(oc) >= numOutcomes {
		return int(observe.Failed)
	}
	return int(oc)
}

// LockStart starts the span of a blocking acquisition.
func (p *probe) LockStart(ctx context.Context) context.Context {
	ctx, _ = p.o.tracer.Start(ctx, SpanName, p.spanStart...)
	return ctx
}

// LockEnd records the acquisition and ends its span. The span's status is
// Error for every outcome but acquired, described by the outcome only: the
// error's text names the lock.
func (p *probe) LockEnd(ctx context.Context, wait time.Duration, oc observe.Outcome, _ error) {
	i := outcomeIndex(oc)
	p.record(ctx, 1, wait, i)
	span := trace.SpanFromContext(ctx)
	span.SetAttributes(p.spanEnd[i]...)
	if oc != observe.Acquired {
		span.SetStatus(codes.Error, oc.String())
	}
	span.End()
}

// Tried records a single attempt.
func (p *probe) Tried(d time.Duration, oc observe.Outcome, _ error) {
	p.record(context.Background(), 0, d, outcomeIndex(oc))
}

func (p *probe) record(ctx context.Context, blocking int, d time.Duration, oc int) {
	p.o.wait.Record(ctx, d.Seconds(), p.wait[blocking][oc]...)
	if oc == int(observe.Acquired) {
		p.o.acquisitions.Add(ctx, 1, p.acquired[blocking]...)
		p.o.leaseActive.Add(ctx, 1, p.base...)
	}
}

// WaiterJoined counts a queued waiter.
func (p *probe) WaiterJoined() { p.o.waitActive.Add(context.Background(), 1, p.base...) }

// WaiterLeft uncounts it.
func (p *probe) WaiterLeft() { p.o.waitActive.Add(context.Background(), -1, p.base...) }

// HandedOff counts a handoff.
func (p *probe) HandedOff() { p.o.handoffs.Add(context.Background(), 1, p.base...) }

// Released counts a release and a lease less.
func (p *probe) Released(err error) {
	ctx := context.Background()
	p.o.releases.Add(ctx, 1, p.released[errType(err)]...)
	p.o.leaseActive.Add(ctx, -1, p.base...)
}

// Lost counts a lost lease and a lease less.
func (p *probe) Lost(r observe.Reason) {
	if int(r) >= numReasons {
		r = observe.ReasonOther
	}
	ctx := context.Background()
	p.o.losses.Add(ctx, 1, p.lost[r]...)
	p.o.leaseActive.Add(ctx, -1, p.base...)
}

// RenewFailed counts a failed renewal attempt.
func (p *probe) RenewFailed(err error) {
	et := errType(err)
	if et == errNone {
		et = errOther
	}
	p.o.renewFails.Add(context.Background(), 1, p.renewFail[et]...)
}
