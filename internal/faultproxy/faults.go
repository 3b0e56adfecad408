package faultproxy

import (
	"strconv"
	"time"
)

// Direction selects which way of a proxied connection a fault applies to.
// Values other than Upstream, Downstream and Both are ignored by the fault
// setters.
type Direction uint8

const (
	// Upstream is the client → server direction.
	Upstream Direction = 1 << iota
	// Downstream is the server → client direction.
	Downstream
	// Both is Upstream and Downstream.
	Both = Upstream | Downstream
)

// String returns "upstream", "downstream", "both" or "Direction(n)".
func (d Direction) String() string {
	switch d {
	case Upstream:
		return "upstream"
	case Downstream:
		return "downstream"
	case Both:
		return "both"
	}
	return "Direction(" + strconv.Itoa(int(d)) + ")"
}

// dirIndex indexes the per-direction fault arrays.
type dirIndex int

const (
	upstream   dirIndex = 0
	downstream dirIndex = 1
)

// indexes returns the array indexes selected by d.
func (d Direction) indexes() []dirIndex {
	var out []dirIndex
	if d&Upstream != 0 {
		out = append(out, upstream)
	}
	if d&Downstream != 0 {
		out = append(out, downstream)
	}
	return out
}

// SetLatency sets the delay added to each chunk forwarded in direction dir
// (a negative d counts as zero, which removes the delay). A chunk is held
// until d has passed since the proxy read it, then written on; because each
// direction of a connection is forwarded by one goroutine, order is
// preserved, and a later chunk is never sent before an earlier one. Changes
// take effect at once, also for chunks already waiting: lowering the latency
// releases them early. Latency does not bound throughput beyond delaying
// each chunk in turn.
func (p *Proxy) SetLatency(dir Direction, d time.Duration) {
	if d < 0 {
		d = 0
	}
	p.update(func() {
		for _, i := range dir.indexes() {
			p.latency[i] = d
		}
	})
}

// Blackhole makes direction dir swallow bytes: connections stay open, and
// the bytes the proxy reads in that direction are discarded silently (and
// counted by Dropped). They are dropped, not buffered: lifting the blackhole
// does not deliver them. A chunk waiting out a latency is dropped if a
// blackhole is on when its delay ends. Blackholes add up; Restore lifts them.
func (p *Proxy) Blackhole(dir Direction) {
	p.update(func() {
		for _, i := range dir.indexes() {
			p.blackhole[i] = true
		}
	})
}

// Refuse sets whether new connections are refused. While on, each new client
// is accepted and immediately closed (the client sees EOF or a reset on its
// first read). Existing connections are not affected.
func (p *Proxy) Refuse(on bool) {
	p.update(func() { p.refuse = on })
}

// Restore removes every fault: latency, blackholes, refusal and lost
// replies. It does not reopen connections closed by ResetAll, nor save a
// connection already losing a reply.
func (p *Proxy) Restore() {
	p.update(func() {
		p.latency = [2]time.Duration{}
		p.blackhole = [2]bool{}
		p.refuse = false
		p.loseN = [4]int{}
		p.loseP = [4]float64{}
	})
}

// ResetAll closes every current proxied connection abruptly, on both the
// client and the target side, with SO_LINGER 0 so that the peers get a TCP
// RST where the OS allows. New connections are still accepted (see Refuse).
// It returns the number of connections closed.
func (p *Proxy) ResetAll() int {
	p.mu.Lock()
	links := p.takeLinksLocked()
	p.mu.Unlock()
	for _, l := range links {
		l.close(true)
	}
	return len(links)
}

// update applies f under the lock and wakes chunks waiting out a latency so
// that they re-read the faults.
func (p *Proxy) update(f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f()
	close(p.changed)
	p.changed = make(chan struct{})
}

// faults returns the current faults for direction i and a channel closed at
// the next change.
func (p *Proxy) faults(i dirIndex) (latency time.Duration, blackhole bool, changed <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.latency[i], p.blackhole[i], p.changed
}
