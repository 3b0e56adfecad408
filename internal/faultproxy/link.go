package faultproxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// bufSize is the largest chunk forwarded in one write.
const bufSize = 32 << 10

// link is one proxied connection: the accepted client side and the dialed
// target side, forwarded by two pipes (one per direction).
type link struct {
	client, server net.Conn
	done           chan struct{} // closed by close
	once           sync.Once
	scan           reqScanner  // the client's requests; used by the upstream pipe only
	losing         atomic.Bool // a request's reply is being lost: forward nothing downstream

	mu       sync.Mutex
	finished int // directions that ended with a clean EOF
}

func newLink(client, server net.Conn) *link {
	return &link{client: client, server: server, done: make(chan struct{})}
}

// close closes both sides once; with reset, SO_LINGER 0 is set first so that
// the peers get a RST instead of a FIN.
func (l *link) close(reset bool) {
	l.once.Do(func() {
		if reset {
			setLinger0(l.client)
			setLinger0(l.server)
		}
		_ = l.client.Close()
		_ = l.server.Close()
		close(l.done)
	})
}

// finish records a clean EOF in one direction and reports whether both
// directions have now ended.
func (l *link) finish() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.finished++
	return l.finished == 2
}

// pipe forwards one direction of l until EOF, an error or closure. A clean
// EOF is passed on as a half-close (the other direction keeps going); any
// other error ends the whole link abruptly, so that a reset by one peer
// reaches the other as a reset too.
func (p *Proxy) pipe(l *link, dir dirIndex) {
	src, dst := l.client, l.server
	if dir == downstream {
		src, dst = l.server, l.client
	}
	buf := make([]byte, bufSize)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			at := time.Now()
			chunk, lose := buf[:n], false
			if dir == upstream {
				if cut := p.cutLostRequest(l, chunk); cut >= 0 {
					chunk, lose = chunk[:cut], true
					// Before the request can reach the server: from here on
					// no reply may reach the client.
					l.losing.Store(true)
				}
			}
			if !p.forward(l, dir, dst, chunk, at) {
				p.closeLink(l, true)
				return
			}
			if lose {
				p.loseTail(l)
				return
			}
		}
		if err != nil {
			if dir == downstream && l.losing.Load() {
				// The server has closed: the request whose reply is lost
				// has run. Now the client learns the connection is gone.
				p.closeLink(l, true)
				return
			}
			if errors.Is(err, io.EOF) {
				if cw, ok := dst.(interface{ CloseWrite() error }); ok {
					_ = cw.CloseWrite()
				}
				if l.finish() {
					p.closeLink(l, false)
				}
				return
			}
			p.closeLink(l, true)
			return
		}
	}
}

// loseTail ends the upstream pipe of a link losing a reply: it half-closes
// the server connection, so that the server runs what it has received and
// then closes, which the downstream pipe (discarding meanwhile) turns into a
// reset of the client. If the downstream pipe has already ended, the link is
// reset now.
func (p *Proxy) loseTail(l *link) {
	cw, ok := l.server.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil || l.finish() {
		p.closeLink(l, true)
	}
}

// forward writes b (read at time at) to dst once the direction's latency has
// passed, re-reading the faults whenever they change, or drops it if the
// direction is blackholed. It reports false if the link ended or the write
// failed.
func (p *Proxy) forward(l *link, dir dirIndex, dst net.Conn, b []byte, at time.Time) bool {
	for {
		latency, blackhole, changed := p.faults(dir)
		if dir == downstream && l.losing.Load() {
			return true // a lost reply (or one sent before it): discarded
		}
		if blackhole {
			p.dropped.Add(int64(len(b)))
			return true
		}
		wait := time.Until(at.Add(latency))
		if wait <= 0 {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-changed:
			t.Stop()
		case <-l.done:
			t.Stop()
			return false
		}
	}
	_, err := dst.Write(b)
	return err == nil
}

// setLinger0 makes a later Close send a RST, if c is a TCP connection.
func setLinger0(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
}
