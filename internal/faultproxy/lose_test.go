package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/redistest"
)

func TestReplyFilterMatches(t *testing.T) {
	for _, name := range []string{"EVAL", "evalsha", "EvalSha", "eval_ro", "EVALSHA_RO"} {
		if !ScriptReplies.matches([]byte(name)) {
			t.Errorf("ScriptReplies does not match %q", name)
		}
	}
	for _, name := range []string{"", "EVALX", "FCALL", "HELLO", "GET", "EVA"} {
		if ScriptReplies.matches([]byte(name)) {
			t.Errorf("ScriptReplies matches %q", name)
		}
	}
	if !AnyReplies.matches([]byte("HELLO")) {
		t.Error("AnyReplies does not match HELLO")
	}
	if !ExecReplies.matches([]byte("exec")) || ExecReplies.matches([]byte("MULTI")) || ExecReplies.matches([]byte("EVAL")) {
		t.Error("ExecReplies matches other than EXEC")
	}
	if s := ReplyFilter(9).String(); s != "ReplyFilter(9)" {
		t.Errorf("String() = %q", s)
	}
}

// incrScript increments KEYS[1]: running it twice shows as 2.
const incrScript = "return redis.call('incr', KEYS[1])"

// redisBehind starts redis-server and a proxy in front of it, and returns
// the proxy and a direct client of the server.
func redisBehind(t *testing.T) (*Proxy, *redis.Client) {
	t.Helper()
	s := redistest.Start(t)
	return newProxy(t, s.Addr), s.Client(t)
}

// proxied returns a client of p with one connection, already handshaken.
func proxied(t *testing.T, p *Proxy, maxRetries int) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: p.Addr(), PoolSize: 1, MaxRetries: maxRetries,
		DialTimeout: time.Second, ReadTimeout: 5 * time.Second})
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	return c
}

func connsReceived(t *testing.T, direct *redis.Client) int64 {
	t.Helper()
	info, err := direct.Info(context.Background(), "stats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "total_connections_received:"); ok {
			var n int64
			fmt.Sscan(v, &n)
			return n
		}
	}
	t.Fatal("no total_connections_received in INFO")
	return 0
}

// TestLoseScriptReplyIsRetried: with go-redis's default retries, a script
// whose reply is lost runs on the server, the client retries on a new
// connection, and the script runs again: the client sees 2, not 1.
func TestLoseScriptReplyIsRetried(t *testing.T) {
	p, direct := redisBehind(t)
	ctx := context.Background()
	c := proxied(t, p, 0) // 0: go-redis's default, 3 retries
	before := connsReceived(t, direct)
	p.LoseReplies(ScriptReplies, 1)
	if n := p.PendingLosses(ScriptReplies); n != 1 {
		t.Fatalf("PendingLosses = %d, want 1", n)
	}
	// Commands other than scripts pass untouched.
	if err := c.Set(ctx, "other", "v", 0).Err(); err != nil {
		t.Fatalf("SET with a script loss armed: %v", err)
	}
	got, err := c.Eval(ctx, incrScript, []string{"n"}).Int()
	if err != nil {
		t.Fatalf("EVAL: %v (want the retry to succeed)", err)
	}
	if got != 2 {
		t.Errorf("EVAL returned %d, want 2: the first run's reply was lost and the retry ran it again", got)
	}
	if v, _ := direct.Get(ctx, "n").Int(); v != 2 {
		t.Errorf("direct GET = %d, want 2 (the script ran twice)", v)
	}
	if n := p.LostReplies(); n != 1 {
		t.Errorf("LostReplies = %d, want 1", n)
	}
	if n := p.PendingLosses(ScriptReplies); n != 0 {
		t.Errorf("PendingLosses = %d, want 0", n)
	}
	if d := connsReceived(t, direct) - before; d != 1 {
		t.Errorf("%d new connections reached redis, want 1 (the retry's)", d)
	}
	// Disarmed: the next script runs once.
	if got, err := c.Eval(ctx, incrScript, []string{"n"}).Int(); err != nil || got != 3 {
		t.Errorf("EVAL after the loss = %d, %v; want 3, nil", got, err)
	}
}

// TestLoseScriptReplyWithoutRetries: the client gets an error, yet the script
// ran once.
func TestLoseScriptReplyWithoutRetries(t *testing.T) {
	p, direct := redisBehind(t)
	ctx := context.Background()
	c := proxied(t, p, -1)
	p.LoseReplies(ScriptReplies, 1)
	// EvalSha of a loaded script: the same filter in lower case on the wire.
	sha, err := direct.ScriptLoad(ctx, incrScript).Result()
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.EvalSha(ctx, sha, []string{"n"}).Result()
	if err == nil {
		t.Fatal("EVALSHA succeeded; want the lost reply to surface as an error")
	}
	if v, _ := direct.Get(ctx, "n").Int(); v != 1 {
		t.Errorf("direct GET = %d, want 1: the script ran although its reply was lost", v)
	}
	if got, err := c.EvalSha(ctx, sha, []string{"n"}).Int(); err != nil || got != 2 {
		t.Errorf("EVALSHA on a new connection = %d, %v; want 2, nil", got, err)
	}
}

// TestLoseAnyReplyBreaksRetryHandshake: losing every reply also loses the
// retries' HELLO replies, so the script ran once and the retries never
// reached Redis.
func TestLoseAnyReplyBreaksRetryHandshake(t *testing.T) {
	p, direct := redisBehind(t)
	ctx := context.Background()
	c := proxied(t, p, 0)
	calls := func() int64 {
		m, err := redistest.CommandCalls(ctx, direct)
		if err != nil {
			t.Fatal(err)
		}
		return m["eval"]
	}
	before := calls()
	p.LoseReplies(AnyReplies, 100)
	_, err := c.Eval(ctx, incrScript, []string{"n"}).Result()
	if err == nil {
		t.Fatal("EVAL succeeded while every reply is lost")
	}
	if v, _ := direct.Get(ctx, "n").Int(); v != 1 {
		t.Errorf("direct GET = %d, want 1", v)
	}
	if d := calls() - before; d != 1 {
		t.Errorf("EVAL ran %d times, want 1: the retries' handshakes failed", d)
	}
	if n := p.LostReplies(); n < 4 {
		t.Errorf("LostReplies = %d, want at least 4 (the EVAL, then a HELLO per retry)", n)
	}
	p.Restore()
	if n := p.PendingLosses(AnyReplies); n != 0 {
		t.Errorf("PendingLosses after Restore = %d", n)
	}
	if got, err := c.Eval(ctx, incrScript, []string{"n"}).Int(); err != nil || got != 2 {
		t.Errorf("EVAL after Restore = %d, %v; want 2, nil", got, err)
	}
}

// TestLoseAnyReplyOnce: one lost reply of any kind and default retries: the
// script runs twice, like the script-only variant.
func TestLoseAnyReplyOnce(t *testing.T) {
	p, direct := redisBehind(t)
	ctx := context.Background()
	c := proxied(t, p, 0)
	p.LoseReplies(AnyReplies, 1)
	got, err := c.Eval(ctx, incrScript, []string{"n"}).Int()
	if err != nil || got != 2 {
		t.Fatalf("EVAL = %d, %v; want 2, nil", got, err)
	}
	if v, _ := direct.Get(ctx, "n").Int(); v != 2 {
		t.Errorf("direct GET = %d, want 2", v)
	}
}

// TestLoseRepliesPipelined: in a pipeline, the requests before the selected
// one run, the one selected runs, and those after it are never sent.
func TestLoseRepliesPipelined(t *testing.T) {
	p, direct := redisBehind(t)
	ctx := context.Background()
	c := proxied(t, p, -1)
	p.LoseReplies(ScriptReplies, 1)
	pipe := c.Pipeline()
	pipe.Incr(ctx, "before")
	pipe.Eval(ctx, incrScript, []string{"n"})
	pipe.Incr(ctx, "after")
	if _, err := pipe.Exec(ctx); err == nil {
		t.Fatal("pipeline succeeded")
	}
	for key, want := range map[string]int{"before": 1, "n": 1, "after": 0} {
		if v, _ := direct.Get(ctx, key).Int(); v != want {
			t.Errorf("%s = %d, want %d", key, v, want)
		}
	}
}

// TestLoseRepliesRate: probability 1 loses every script reply, 0 none; the
// setting changes while a connection stays open.
func TestLoseRepliesRate(t *testing.T) {
	p, direct := redisBehind(t)
	ctx := context.Background()
	c := proxied(t, p, -1)
	p.LoseRepliesRate(ScriptReplies, 2) // clamped to 1
	for i := range 3 {
		if err := c.Eval(ctx, incrScript, []string{"n"}).Err(); err == nil {
			t.Fatalf("EVAL %d succeeded at rate 1", i)
		}
		if err := c.Ping(ctx).Err(); err != nil {
			t.Fatalf("PING at script rate 1: %v", err)
		}
	}
	if v, _ := direct.Get(ctx, "n").Int(); v != 3 {
		t.Errorf("n = %d, want 3", v)
	}
	p.LoseRepliesRate(ScriptReplies, 0)
	if got, err := c.Eval(ctx, incrScript, []string{"n"}).Int(); err != nil || got != 4 {
		t.Errorf("EVAL at rate 0 = %d, %v; want 4, nil", got, err)
	}
	if n := p.LostReplies(); n != 3 {
		t.Errorf("LostReplies = %d, want 3", n)
	}
	p.LoseRepliesRate(ReplyFilter(0), 1) // ignored
	p.LoseReplies(ReplyFilter(7), 1)     // ignored
	if err := c.Eval(ctx, incrScript, []string{"n"}).Err(); err != nil {
		t.Errorf("EVAL after invalid settings: %v", err)
	}
}

// TestLoseReplyCloseWaits: a connection stuck losing a reply (the server
// busy in a slow script) is closed by Close, and every goroutine ends.
func TestLoseReplyCloseWaits(t *testing.T) {
	s := redistest.Start(t)
	p, err := New(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	direct := s.Client(t)
	c := redis.NewClient(&redis.Options{Addr: p.Addr(), MaxRetries: -1, ReadTimeout: 5 * time.Second})
	defer c.Close()
	ctx := context.Background()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		// Keeps Redis busy for 300ms: the lost reply's connection waits.
		done <- direct.Eval(ctx, "local t = redis.call('time'); local s = t[1]*1000000+t[2]; while true do local n = redis.call('time'); if n[1]*1000000+n[2] - s > 300000 then break end end return 1", nil).Err()
	}()
	time.Sleep(50 * time.Millisecond)
	p.LoseReplies(ScriptReplies, 1)
	errc := make(chan error, 1)
	go func() { errc <- c.Eval(ctx, "return 1", nil).Err() }()
	time.Sleep(50 * time.Millisecond)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err == nil {
		t.Error("EVAL through a closed proxy succeeded")
	}
	<-done
}

// TestLoseExecReply: a transaction whose EXEC reply is lost was applied;
// the commands queued before EXEC pass, and so do other commands.
func TestLoseExecReply(t *testing.T) {
	p, direct := redisBehind(t)
	ctx := context.Background()
	c := proxied(t, p, -1)
	p.LoseReplies(ExecReplies, 1)
	if err := c.Eval(ctx, incrScript, []string{"other"}).Err(); err != nil {
		t.Fatalf("EVAL with an EXEC loss armed: %v", err)
	}
	_, err := c.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.Incr(ctx, "n")
		return nil
	})
	if err == nil {
		t.Fatal("transaction succeeded; want the lost EXEC reply to surface as an error")
	}
	if v, _ := direct.Get(ctx, "n").Int(); v != 1 {
		t.Errorf("n = %d, want 1: the transaction was applied", v)
	}
	if n := p.LostReplies(); n != 1 {
		t.Errorf("LostReplies = %d, want 1", n)
	}
}

// TestLoseExecReplyNotRetried: with default retries, go-redis does not send
// a transaction again after its EXEC reply was lost: the caller gets the
// error, the transaction was applied once. (Lease.Guard relies on that: a
// retried MULTI … EXEC on a new connection would run without its WATCH.)
func TestLoseExecReplyNotRetried(t *testing.T) {
	p, direct := redisBehind(t)
	ctx := context.Background()
	c := proxied(t, p, 0)
	p.LoseReplies(ExecReplies, 1)
	_, err := c.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.Incr(ctx, "n")
		return nil
	})
	if v, _ := direct.Get(ctx, "n").Int(); err == nil || v != 1 {
		t.Errorf("transaction: err %v, applied %d times; want an error and 1", err, v)
	}
}

// TestLoseReplyResetsClient: the client sees its connection reset, not
// closed, and no reply bytes.
func TestLoseReplyResetsClient(t *testing.T) {
	p, direct := redisBehind(t)
	p.LoseReplies(ScriptReplies, 1)
	c := dial(t, p)
	if _, err := c.Write([]byte(resp("EVAL", incrScript, "1", "n"))); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(c)
	if len(got) != 0 || !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("read %q, %v; want nothing and ECONNRESET", got, err)
	}
	if v, _ := direct.Get(context.Background(), "n").Int(); v != 1 {
		t.Errorf("n = %d, want 1", v)
	}
}
