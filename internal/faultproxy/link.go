package faultproxy

import (
	"errors"
	"io"
	"net"
	"sync"
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
			if !p.forward(l, dir, dst, buf[:n], at) {
				p.closeLink(l, true)
				return
			}
		}
		if err != nil {
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

// forward writes b (read at time at) to dst once the direction's latency has
// passed, re-reading the faults whenever they change, or drops it if the
// direction is blackholed. It reports false if the link ended or the write
// failed.
func (p *Proxy) forward(l *link, dir dirIndex, dst net.Conn, b []byte, at time.Time) bool {
	for {
		latency, blackhole, changed := p.faults(dir)
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
