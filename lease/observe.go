package lease

import (
	"errors"

	"github.com/redlease/redlease/observe"
)

// reasonOf classifies the error a lease ended with (not ErrReleased).
func reasonOf(err error) observe.Reason {
	switch {
	case errors.Is(err, ErrRevoked): // before ErrNotHeld, which it matches too
		return observe.ReasonRevoked
	case errors.Is(err, ErrExpired):
		return observe.ReasonExpired
	case errors.Is(err, ErrNotHeld):
		return observe.ReasonNotHeld
	}
	return observe.ReasonOther
}

// reportLost tells the probe and the logger that the lease ended with err
// (not ErrReleased). Called once, with l.mu held.
func (l *Lease) reportLost(err error) {
	p, lg := l.spec.Probe, l.spec.Logger
	if p == nil && lg == nil {
		return
	}
	r := reasonOf(err)
	if p != nil {
		p.Lost(r)
	}
	if lg == nil {
		return
	}
	if r == observe.ReasonRevoked {
		lg.Info("redlease: lease revoked", "name", l.Name(), "kind", string(l.spec.Kind), "token", l.token)
		return
	}
	lg.Warn("redlease: lease lost", "name", l.Name(), "kind", string(l.spec.Kind), "fence", l.Fence(), "reason", r.String(), "err", err)
}

// reportReleased tells the probe that Release ended the held lease, with
// Release's result.
func (l *Lease) reportReleased(err error) {
	if p := l.spec.Probe; p != nil {
		p.Released(err)
	}
}

// reportRenewFailed tells the probe and the logger that a renewal attempt
// failed with err.
func (l *Lease) reportRenewFailed(err error) {
	if p := l.spec.Probe; p != nil {
		p.RenewFailed(err)
	}
	if lg := l.spec.Logger; lg != nil {
		lg.Warn("redlease: lease renewal failed", "name", l.Name(), "kind", string(l.spec.Kind), "fence", l.Fence(), "err", err)
	}
}
