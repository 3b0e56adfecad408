package faultproxy

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/redlease/redlease/internal/leaktest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, leaktest.Options()...) }

// echoServer is a TCP echo server whose goroutines all end by Close.
type echoServer struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func startEcho(t *testing.T) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &echoServer{ln: ln, conns: make(map[net.Conn]struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = struct{}{}
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				_, _ = io.Copy(c, c)
				_ = c.Close()
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			}()
		}
	}()
	t.Cleanup(s.Close)
	return s
}

func (s *echoServer) Addr() string { return s.ln.Addr().String() }

func (s *echoServer) Close() {
	_ = s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func newProxy(t *testing.T, target string) *Proxy {
	t.Helper()
	p, err := New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func dial(t *testing.T, p *Proxy) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// roundTrip writes msg and reads the same number of bytes back.
func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(got) != msg {
		t.Fatalf("got %q, want %q", got, msg)
	}
}

// expectTimeout checks that nothing arrives on c within d and that the read
// fails with a timeout, not with EOF or a reset.
func expectTimeout(t *testing.T, c net.Conn, d time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	n, err := c.Read(make([]byte, 16))
	var ne net.Error
	if n != 0 || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read = %d, %v; want a timeout", n, err)
	}
}

// expectClosed checks that a read on c fails other than by timing out.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("read timed out; want the connection closed")
	}
	// io.ReadAll reports a clean EOF as nil; a reset as an error. Both mean
	// the proxy closed the connection.
}

// waitFor polls cond until it holds, failing after a generous deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestNewBadTarget(t *testing.T) {
	for _, target := range []string{"", "nohostport", "a:b:c"} {
		if p, err := New(target); err == nil {
			_ = p.Close()
			t.Errorf("New(%q) succeeded, want error", target)
		}
	}
}

func TestPassThrough(t *testing.T) {
	e := startEcho(t)
	p := newProxy(t, e.Addr())
	if p.Target() != e.Addr() {
		t.Errorf("Target() = %q, want %q", p.Target(), e.Addr())
	}
	c := dial(t, p)
	roundTrip(t, c, "hello")
	roundTrip(t, c, "world")
	if n := p.Conns(); n != 1 {
		t.Errorf("Conns() = %d, want 1", n)
	}
	c2 := dial(t, p)
	roundTrip(t, c2, "second")
	if n := p.Conns(); n != 2 {
		t.Errorf("Conns() = %d, want 2", n)
	}
	_ = c.Close()
	_ = c2.Close()
	waitFor(t, "Conns() == 0 after clients closed", func() bool { return p.Conns() == 0 })
}

func TestLargeTransferPreservesOrder(t *testing.T) {
	e := startEcho(t)
	p := newProxy(t, e.Addr())
	p.SetLatency(Both, time.Millisecond)
	c := dial(t, p)
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(rand.Uint32())
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for b := data; len(b) > 0; {
			n := min(len(b), 1000+rand.IntN(9000)) // odd chunk sizes
			if _, err := c.Write(b[:n]); err != nil {
				return
			}
			b = b[n:]
		}
	}()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	got := make([]byte, len(data))
	_, err := io.ReadFull(c, got)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("data corrupted or reordered through the proxy")
	}
}

func TestHalfClose(t *testing.T) {
	e := startEcho(t)
	p := newProxy(t, e.Addr())
	c := dial(t, p)
	if _, err := c.Write([]byte("bye")); err != nil {
		t.Fatal(err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(c) // echo server replies, sees EOF, closes
	if err != nil || string(got) != "bye" {
		t.Fatalf("ReadAll = %q, %v; want \"bye\", nil", got, err)
	}
	waitFor(t, "Conns() == 0", func() bool { return p.Conns() == 0 })
}

func TestLatency(t *testing.T) {
	e := startEcho(t)
	p := newProxy(t, e.Addr())
	c := dial(t, p)
	roundTrip(t, c, "warm") // latency must also apply to existing connections

	const d = 100 * time.Millisecond
	cases := []struct {
		dir  Direction
		want time.Duration // lower bound for one round trip
	}{
		{Upstream, d},
		{Downstream, d},
		{Both, 2 * d},
	}
	for _, tc := range cases {
		t.Run(tc.dir.String(), func(t *testing.T) {
			p.Restore()
			p.SetLatency(tc.dir, d)
			start := time.Now()
			roundTrip(t, c, "ping")
			if el := time.Since(start); el < tc.want {
				t.Errorf("round trip took %v, want at least %v", el, tc.want)
			}
		})
	}

	// Restore removes the delay; nothing to assert on timing, but traffic
	// must still flow.
	p.Restore()
	roundTrip(t, c, "fast")
}

func TestLatencyChangeReleasesWaitingChunk(t *testing.T) {
	e := startEcho(t)
	p := newProxy(t, e.Addr())
	c := dial(t, p)
	p.SetLatency(Upstream, time.Hour)
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	expectTimeout(t, c, 50*time.Millisecond)
	p.SetLatency(Upstream, -time.Second) // negative counts as zero
	roundTripRead(t, c, "x")
}

// roundTripRead reads exactly want from c.
func roundTripRead(t *testing.T, c net.Conn, want string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(got) != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestBlackhole(t *testing.T) {
	for _, dir := range []Direction{Upstream, Downstream, Both} {
		t.Run(dir.String(), func(t *testing.T) {
			e := startEcho(t)
			p := newProxy(t, e.Addr())
			c := dial(t, p)
			roundTrip(t, c, "before")

			p.Blackhole(dir)
			if _, err := c.Write([]byte("lost")); err != nil {
				t.Fatalf("write while blackholed: %v", err)
			}
			expectTimeout(t, c, 200*time.Millisecond)
			// The bytes are dropped (not buffered) in exactly one place.
			waitFor(t, "Dropped() == 4", func() bool { return p.Dropped() == 4 })
			if n := p.Conns(); n != 1 {
				t.Errorf("Conns() = %d while blackholed, want 1", n)
			}

			p.Restore()
			// Only the new message arrives: "lost" is gone for good.
			roundTrip(t, c, "after")
			if got := p.Dropped(); got != 4 {
				t.Errorf("Dropped() = %d, want 4", got)
			}
		})
	}
}

func TestBlackholeAppliesToNewConns(t *testing.T) {
	e := startEcho(t)
	p := newProxy(t, e.Addr())
	p.Blackhole(Downstream)
	c := dial(t, p)
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	expectTimeout(t, c, 100*time.Millisecond)
	waitFor(t, "Dropped() == 1", func() bool { return p.Dropped() == 1 })
	p.Restore()
	roundTrip(t, c, "y")
}

func TestResetAll(t *testing.T) {
	e := startEcho(t)
	p := newProxy(t, e.Addr())
	c1, c2 := dial(t, p), dial(t, p)
	roundTrip(t, c1, "a")
	roundTrip(t, c2, "b")
	if n := p.ResetAll(); n != 2 {
		t.Errorf("ResetAll() = %d, want 2", n)
	}
	if n := p.Conns(); n != 0 {
		t.Errorf("Conns() = %d after ResetAll, want 0", n)
	}
	_ = c1.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c1.Read(make([]byte, 1)); err == nil {
		t.Fatal("read after ResetAll succeeded, want an error")
	}
	expectClosed(t, c2)
	// The server side was closed too: the echo server sees its conns end.
	waitFor(t, "echo server connections closed", func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return len(e.conns) == 0
	})
	// New connections still work.
	roundTrip(t, dial(t, p), "again")
}

func TestRefuse(t *testing.T) {
	e := startEcho(t)
	p := newProxy(t, e.Addr())
	old := dial(t, p)
	roundTrip(t, old, "old")

	p.Refuse(true)
	c := dial(t, p) // the kernel completes the handshake; the proxy closes it
	expectClosed(t, c)
	roundTrip(t, old, "still works")
	if n := p.Conns(); n != 1 {
		t.Errorf("Conns() = %d, want 1", n)
	}

	p.Refuse(false)
	roundTrip(t, dial(t, p), "accepted")
}

func TestRestoreLiftsRefuse(t *testing.T) {
	e := startEcho(t)
	p := newProxy(t, e.Addr())
	p.Refuse(true)
	p.SetLatency(Both, time.Hour)
	p.Blackhole(Both)
	p.Restore()
	roundTrip(t, dial(t, p), "ok")
}

func TestUnreachableTarget(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Create the proxy while ln still holds the port, so that the proxy
	// cannot be given the same port and forward to itself.
	p := newProxy(t, ln.Addr().String())
	_ = ln.Close() // nothing listens at the target now
	// The proxy resets the client at once: depending on scheduling, the
	// client sees the reset already in Dial, or on its first read.
	if c, err := net.Dial("tcp", p.Addr()); err == nil {
		expectClosed(t, c)
		_ = c.Close()
	}
	if n := p.Conns(); n != 0 {
		t.Errorf("Conns() = %d, want 0", n)
	}
}

func TestTargetIsSelf(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	// Usually the proxy gets another port and New succeeds; if it gets addr,
	// New must refuse rather than forward to itself.
	p, err := New(addr)
	if err == nil {
		if p.Addr() == addr {
			t.Error("New returned a proxy forwarding to itself")
		}
		_ = p.Close()
	}
}

func TestInvalidDirectionIgnored(t *testing.T) {
	e := startEcho(t)
	p := newProxy(t, e.Addr())
	p.SetLatency(Direction(0), time.Hour)
	p.Blackhole(Direction(0))
	p.SetLatency(Direction(8), time.Hour)
	p.Blackhole(Direction(8))
	roundTrip(t, dial(t, p), "ok")
	if s := Direction(8).String(); s != "Direction(8)" {
		t.Errorf("String() = %q", s)
	}
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	e := startEcho(t)
	p, err := New(e.Addr())
	if err != nil {
		t.Fatal(err)
	}
	var clients []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
		roundTrip(t, c, "hi")
	}
	// Leave pipes in every state: one waiting out a latency, one blackholed.
	p.SetLatency(Upstream, time.Hour)
	_, _ = clients[0].Write([]byte("delayed"))
	p.Restore()
	p.Blackhole(Downstream)
	_, _ = clients[1].Write([]byte("dropped"))
	p.SetLatency(Upstream, time.Hour)
	_, _ = clients[2].Write([]byte("waiting"))

	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if n := p.Conns(); n != 0 {
		t.Errorf("Conns() = %d after Close, want 0", n)
	}
	for _, c := range clients {
		expectClosed(t, c)
		_ = c.Close()
	}
	e.Close()
	goleak.VerifyNone(t, ignore)
}
