package faultproxy

import (
	"bytes"
	"math/rand/v2"
	"strconv"
)

// ReplyFilter selects the requests whose replies LoseReplies and
// LoseRepliesRate lose. Values other than ScriptReplies, AnyReplies and
// ExecReplies are ignored by the setters.
type ReplyFilter uint8

const (
	// ScriptReplies matches script calls: EVAL, EVALSHA, EVAL_RO and
	// EVALSHA_RO, in any letter case. A client's retry on a fresh connection
	// then gets through its handshake (HELLO, CLIENT SETINFO) and runs the
	// script again.
	ScriptReplies ReplyFilter = 1 + iota
	// AnyReplies matches every request, handshakes included: while it stays
	// armed, a retry's handshake loses its reply too and the retried command
	// never reaches the server. In a pipeline it selects the first request.
	AnyReplies
	// ExecReplies matches EXEC: a transaction is applied and its reply lost.
	ExecReplies
)

// filters lists the valid filters in the order an armed count is tried.
var filters = [...]ReplyFilter{ScriptReplies, ExecReplies, AnyReplies}

// String returns "scripts", "any", "exec" or "ReplyFilter(n)".
func (f ReplyFilter) String() string {
	switch f {
	case ScriptReplies:
		return "scripts"
	case AnyReplies:
		return "any"
	case ExecReplies:
		return "exec"
	}
	return "ReplyFilter(" + strconv.Itoa(int(f)) + ")"
}

// valid reports whether f indexes the per-filter fault arrays.
func (f ReplyFilter) valid() bool { return f >= ScriptReplies && f <= ExecReplies }

// matches reports whether a request named name is selected by f.
func (f ReplyFilter) matches(name []byte) bool {
	switch f {
	case AnyReplies:
		return true
	case ExecReplies:
		return bytes.EqualFold(name, execCommand)
	}
	for _, s := range scriptCommands {
		if bytes.EqualFold(name, s) {
			return true
		}
	}
	return false
}

var (
	scriptCommands = [][]byte{[]byte("evalsha"), []byte("eval"), []byte("evalsha_ro"), []byte("eval_ro")}
	execCommand    = []byte("exec")
)

// LoseReplies arms the fault "execute, lose the reply, reset the connection"
// for the next n requests matching f, over all connections, replacing f's
// previous count (n <= 0 disarms it). Such a request is forwarded to the
// server, which runs it; then the proxy sends nothing more upstream on that
// connection (later requests in the same chunk are dropped unsent), closes
// the write side towards the server, discards everything the server sends
// back — the request's reply, and replies to earlier pipelined requests not
// yet forwarded — and, once the server has closed the connection (so the
// request has run), resets the client connection (RST). A client that retries
// does so on a new connection. A request that a blackhole would drop is not
// selected. Restore disarms it; LostReplies counts the requests selected.
func (p *Proxy) LoseReplies(f ReplyFilter, n int) {
	if !f.valid() {
		return
	}
	p.update(func() { p.loseN[f] = max(n, 0) })
}

// LoseRepliesRate makes each request matching f lose its reply, as
// LoseReplies describes, with probability prob (clamped to [0, 1]; 0 turns
// it off), until Restore. The draws come from math/rand/v2's global source:
// which requests are hit is not reproducible. A request that a count armed by
// LoseReplies selects is not drawn for.
func (p *Proxy) LoseRepliesRate(f ReplyFilter, prob float64) {
	if !f.valid() {
		return
	}
	p.update(func() { p.loseP[f] = min(max(prob, 0), 1) })
}

// LostReplies returns how many requests have had their replies lost (by
// LoseReplies or LoseRepliesRate) since the proxy started.
func (p *Proxy) LostReplies() int64 { return p.lost.Load() }

// PendingLosses returns the count still armed by LoseReplies for f.
func (p *Proxy) PendingLosses(f ReplyFilter) int {
	if !f.valid() {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.loseN[f]
}

// loseReply decides whether the request just read, named name, loses its
// reply, consuming an armed count; counts are tried before rates, and the
// narrow filters before the catch-all one.
func (p *Proxy) loseReply(name []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.blackhole[upstream] {
		return false
	}
	hit := false
	for _, f := range filters {
		if p.loseN[f] > 0 && f.matches(name) {
			p.loseN[f]--
			hit = true
			break
		}
	}
	if !hit {
		for _, f := range filters {
			if q := p.loseP[f]; q > 0 && f.matches(name) && rand.Float64() < q {
				hit = true
				break
			}
		}
	}
	if hit {
		p.lost.Add(1)
	}
	return hit
}

// cutLostRequest scans chunk, read from l's client, and returns the length
// of its prefix that ends with a request whose reply is to be lost, or -1.
func (p *Proxy) cutLostRequest(l *link, chunk []byte) int {
	for off := 0; off < len(chunk); {
		n, done, name := l.scan.next(chunk[off:])
		off += n
		if done && p.loseReply(name) {
			return off
		}
	}
	return -1
}
