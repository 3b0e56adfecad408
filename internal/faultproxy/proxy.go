// Package faultproxy is an in-process TCP proxy for tests. It sits on
// 127.0.0.1 between clients and a server (redis-server or any TCP server) and
// injects network faults that can be changed while traffic flows:
//
//   - latency, per direction, added to every chunk of bytes forwarded;
//   - blackholes, per direction: the connection stays open but the bytes are
//     read and silently discarded (never buffered for later);
//   - abrupt resets of every current connection (RST where the OS allows);
//   - refusal of new connections (accepted, then closed at once);
//   - lost replies: a request (a script call, an EXEC, or any) runs on the server but
//     its reply never arrives and the client's connection is reset, so that a
//     client library retries it on a new connection.
//
// Faults apply to existing and new connections alike. Each accepted client
// connection gets its own connection to the target, dialed when the client is
// accepted; byte order is preserved per connection and direction.
//
// Every goroutine the proxy starts is owned by the Proxy, stops when its
// connection ends or the proxy is closed, and is waited for by Close, so tests
// can check for leaks with go.uber.org/goleak.
package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// dialTimeout bounds the dial to the target for each accepted client.
const dialTimeout = 5 * time.Second

// Proxy is a fault-injecting TCP proxy. Create it with New and release it with
// Close. All methods are safe for concurrent use.
type Proxy struct {
	target  string
	ln      net.Listener
	ctx     context.Context // cancelled by Close; aborts dials in flight
	cancel  context.CancelFunc
	wg      sync.WaitGroup // accept loop, connection handlers and pipes
	dropped atomic.Int64   // bytes discarded by blackholes
	lost    atomic.Int64   // requests whose replies were lost

	mu        sync.Mutex
	closed    bool
	latency   [2]time.Duration // indexed by dirIndex
	blackhole [2]bool          // indexed by dirIndex
	refuse    bool
	loseN     [4]int        // indexed by ReplyFilter: requests still to lose
	loseP     [4]float64    // indexed by ReplyFilter: probability of a loss
	changed   chan struct{} // closed and replaced whenever a fault changes
	conns     map[*link]struct{}
}

// New starts a proxy listening on 127.0.0.1 at a free port that forwards
// every accepted connection to target ("host:port"). Faults are initially
// off. New returns an error if target is not a host:port pair or the
// listener cannot be created; whether the target is reachable is only
// discovered per connection (a client whose dial fails is reset).
func New(target string) (*Proxy, error) {
	if _, _, err := net.SplitHostPort(target); err != nil {
		return nil, fmt.Errorf("faultproxy: bad target %q: %w", target, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	if ln.Addr().String() == target {
		_ = ln.Close()
		return nil, fmt.Errorf("faultproxy: target %q is the proxy's own address", target)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		target:  target,
		ln:      ln,
		ctx:     ctx,
		cancel:  cancel,
		changed: make(chan struct{}),
		conns:   make(map[*link]struct{}),
	}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr returns the proxy's listening address ("127.0.0.1:port"); clients
// connect here instead of to the target.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target returns the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// Conns returns the number of proxied connections currently open: accepted
// clients whose target connection has been established and that have not yet
// ended. A client counts only once the proxy has accepted it and dialed the
// target, so tests should poll rather than expect it right after a Dial.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Dropped returns the total number of bytes discarded by blackholes since the
// proxy started, over all connections and both directions.
func (p *Proxy) Dropped() int64 { return p.dropped.Load() }

// Close stops accepting, closes every proxied connection (both the client
// and the target side), and waits until every goroutine started by the proxy
// has returned. It returns the error from closing the listener, if any.
// Calling Close again waits likewise and returns nil.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.wg.Wait()
		return nil
	}
	p.closed = true
	links := p.takeLinksLocked()
	p.mu.Unlock()

	p.cancel()
	err := p.ln.Close()
	for _, l := range links {
		l.close(false)
	}
	p.wg.Wait()
	return err
}

// acceptLoop accepts clients until the listener is closed. It owns one
// WaitGroup count, so the counts it adds for handlers never race with Wait.
func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if p.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Transient failure (e.g. out of file descriptors): back off.
			t := time.NewTimer(10 * time.Millisecond)
			select {
			case <-p.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		p.mu.Lock()
		refuse := p.refuse || p.closed
		p.mu.Unlock()
		if refuse {
			_ = c.Close()
			continue
		}
		p.wg.Add(1)
		go p.handle(c)
	}
}

// handle dials the target for client, registers the pair and runs the
// upstream pipe itself, with the downstream pipe in a second goroutine.
func (p *Proxy) handle(client net.Conn) {
	defer p.wg.Done()
	d := net.Dialer{Timeout: dialTimeout}
	server, err := d.DialContext(p.ctx, "tcp", p.target)
	if err != nil {
		setLinger0(client)
		_ = client.Close()
		return
	}
	l := newLink(client, server)
	if !p.register(l) {
		l.close(false)
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.pipe(l, downstream)
	}()
	p.pipe(l, upstream)
}

// register adds l to the live connections, or reports false if the proxy is
// closed (the caller then closes l).
func (p *Proxy) register(l *link) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[l] = struct{}{}
	return true
}

// closeLink removes l from the live connections and closes it.
func (p *Proxy) closeLink(l *link, reset bool) {
	p.mu.Lock()
	delete(p.conns, l)
	p.mu.Unlock()
	l.close(reset)
}

// takeLinksLocked empties the set of live connections and returns them.
// p.mu must be held.
func (p *Proxy) takeLinksLocked() []*link {
	links := make([]*link, 0, len(p.conns))
	for l := range p.conns {
		links = append(links, l)
	}
	clear(p.conns)
	return links
}
