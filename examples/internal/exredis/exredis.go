// Package exredis gives the examples a Redis to talk to: the server at
// $REDIS_ADDR when it is set, otherwise an in-process miniredis whose clock
// is advanced in real time, so that the examples run with no server
// installed and TTLs still elapse.
package exredis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/alicebob/miniredis/v2/server"
	"github.com/redis/go-redis/v9"
)

// Tick is how often the embedded server's clock is moved forward when no
// command arrives.
const Tick = 5 * time.Millisecond

// Embedded is an in-process miniredis on a loopback port with a clock that
// follows real time.
//
// miniredis only ages keys when told to (FastForward), and it ages every key
// by the whole step, however recently the key was set: with a ticker alone,
// a key set or renewed just before a tick would lose up to a tick of its TTL
// (or far more when the ticker goroutine is starved under load), which can
// end a lock before its holder's lease deadline. So the clock is also
// brought up to date just before every command a client sends is executed
// (a server pre-hook): a key's TTL then only counts time after the command
// that set it.
type Embedded struct {
	mr   *miniredis.Miniredis
	stop chan struct{}
	done chan struct{}
	once sync.Once

	mu   sync.Mutex // serializes advance
	last time.Time  // real time the miniredis clock was last brought to

	peersMu sync.Mutex
	peers   map[*server.Peer]bool // client connections
}

// StartEmbedded starts miniredis on 127.0.0.1 (a free port) and the
// goroutine that advances its clock every Tick. Close stops both.
func StartEmbedded() (*Embedded, error) {
	mr := miniredis.NewMiniRedis()
	if err := mr.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("start miniredis: %w", err)
	}
	e := &Embedded{mr: mr, stop: make(chan struct{}), done: make(chan struct{}), last: time.Now(), peers: map[*server.Peer]bool{}}
	mr.Server().SetPreHook(func(p *server.Peer, _ string, _ ...string) bool {
		if e.fromClient(p) {
			e.advance()
		}
		return false // go on and run the command
	})
	go e.clock()
	return e, nil
}

// fromClient reports whether p is a client connection, as opposed to the
// peer miniredis makes for each redis.call of a Lua script. The latter runs
// with miniredis's lock held, so advancing the clock from there would
// deadlock (and a script's commands are meant to see one instant anyway).
// A connection's peer has no context before its first command; a script's
// peer always has one.
func (e *Embedded) fromClient(p *server.Peer) bool {
	e.peersMu.Lock()
	defer e.peersMu.Unlock()
	if p.Ctx == nil && !e.peers[p] {
		e.peers[p] = true
		p.OnDisconnect(func() {
			e.peersMu.Lock()
			delete(e.peers, p)
			e.peersMu.Unlock()
		})
	}
	return e.peers[p]
}

// advance moves miniredis's clock by the real time elapsed since it was last
// moved.
func (e *Embedded) advance() {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	if d := now.Sub(e.last); d > 0 {
		e.mr.FastForward(d)
		e.last = now
	}
}

// clock advances the clock every Tick, so that keys expire on time even
// when no command arrives.
func (e *Embedded) clock() {
	defer close(e.done)
	t := time.NewTicker(Tick)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			e.advance()
		}
	}
}

// Addr is the server's host:port.
func (e *Embedded) Addr() string { return e.mr.Addr() }

// Close stops the clock goroutine (and waits for it), then the server.
// Clients should be closed first. Close is idempotent.
func (e *Embedded) Close() {
	e.once.Do(func() {
		close(e.stop)
		<-e.done
		e.mr.Close()
	})
}

// NewClient returns a client of addr with short timeouts.
func NewClient(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:         addr,
		DialTimeout:  time.Second,
		ReadTimeout:  2 * time.Second,
		WriteTimeout: 2 * time.Second,
	})
}

// Another returns a new client of the same server as c, with its own
// connection pool (and so its own redlease wake-up subscription): what
// another process would have. The caller closes it.
func Another(c *redis.Client) *redis.Client { return NewClient(c.Options().Addr) }

// Clients returns n separate clients of c's server and a function that closes
// them all.
func Clients(c *redis.Client, n int) ([]*redis.Client, func()) {
	cs := make([]*redis.Client, n)
	for i := range cs {
		cs[i] = Another(c)
	}
	return cs, func() {
		for _, x := range cs {
			_ = x.Close()
		}
	}
}

// Connect returns a client of the server at $REDIS_ADDR when it is set, or
// of a freshly started embedded miniredis. cleanup closes the client and
// stops the embedded server; call it once, when done.
func Connect(ctx context.Context) (client *redis.Client, cleanup func(), err error) {
	if addr := os.Getenv("REDIS_ADDR"); addr != "" {
		c := NewClient(addr)
		if err := c.Ping(ctx).Err(); err != nil {
			_ = c.Close()
			return nil, nil, fmt.Errorf("redis at REDIS_ADDR=%s: %w", addr, err)
		}
		return c, func() { _ = c.Close() }, nil
	}
	e, err := StartEmbedded()
	if err != nil {
		return nil, nil, err
	}
	c := NewClient(e.Addr())
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		e.Close()
		return nil, nil, fmt.Errorf("embedded miniredis: %w", err)
	}
	return c, func() { _ = c.Close(); e.Close() }, nil
}

// Backend describes what Connect connects to, in plain words.
func Backend() string {
	if addr := os.Getenv("REDIS_ADDR"); addr != "" {
		return "Redis at " + addr + " (REDIS_ADDR)"
	}
	return "embedded miniredis (in-process, clock advanced in real time; set REDIS_ADDR to use a real server)"
}

// Main runs one example program: it connects, runs fn with a context that
// Ctrl-C cancels, and exits with status 1 if fn (or connecting) fails.
func Main(title string, fn func(ctx context.Context, c *redis.Client, out io.Writer) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, title, fn)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: FAILED: %v\n", title, err)
		os.Exit(1)
	}
}

func run(ctx context.Context, title string, fn func(context.Context, *redis.Client, io.Writer) error) error {
	c, cleanup, err := Connect(ctx)
	if err != nil {
		return err
	}
	defer cleanup()
	fmt.Printf("%s — against %s\n", title, Backend())
	if err := fn(ctx, c, os.Stdout); err != nil {
		return err
	}
	fmt.Printf("%s: OK\n", title)
	return nil
}

// Printer writes timestamped lines to an io.Writer from any goroutine.
type Printer struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
}

// NewPrinter returns a Printer whose timestamps count from now.
func NewPrinter(w io.Writer) *Printer { return &Printer{w: w, start: time.Now()} }

// Printf writes one line, prefixed with the time since the Printer was made.
func (p *Printer) Printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "  [%6.3fs] %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, args...))
}

// Sleep waits for d or until ctx is done, whichever comes first, and
// returns ctx's cause in the latter case.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// Check collects the conditions an example's result must meet; Err lists
// those that failed.
type Check struct{ errs []error }

// Expect records a failure described by format unless ok.
func (c *Check) Expect(ok bool, format string, args ...any) {
	if !ok {
		c.errs = append(c.errs, fmt.Errorf(format, args...))
	}
}

// Err returns the recorded failures joined, or nil.
func (c *Check) Err() error { return errors.Join(c.errs...) }
