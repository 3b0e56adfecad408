package mutex_test

// Regression tests for lost replies and related protocol findings. Each test
// forces one interleaving (with a go-redis hook on the victim's client, or a
// DEBUG SLEEP stall) and then checks safety through the public API: while a
// lease believes it holds its lock, a competitor on a separate, clean client
// must not be able to take it.

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/internal/scripts"
	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/multilock"
	"github.com/redlease/redlease/mutex"
)

// ---------------------------------------------------------------------------
// Protocol knowledge. Everything these tests know about redlease's internals
// is in this block; adapt it when the protocol changes. The tests below use
// the public API and these helpers only.
// ---------------------------------------------------------------------------

// fenceCounter is the fence counter of a single Redis under the default
// prefix.
const fenceCounter = "redlease:fence"

// lockKeyOf returns the Redis key of lock name under the default prefix.
func lockKeyOf(name string) string { return "redlease:{" + name + "}" }

// lockValue is the "<fence>:<gen>:<token>" form of a lock key's value (a
// waiter's mark "w" after the generation, or none).
var lockValue = regexp.MustCompile(`(?s)^\d+:\d+w?:(.*)$`)

// holds reports whether v, the value of a lock key, belongs to token: v is
// the token itself, or "<fence>:<gen>:<token>" (marked or not).
func holds(v, token string) bool {
	if v == token {
		return true
	}
	m := lockValue.FindStringSubmatch(v)
	return m != nil && m[1] == token
}

// knownScripts are the scripts the fault hook recognises, by name for
// messages.
var knownScripts = map[string]*redis.Script{
	"acquire":  scripts.Acquire,
	"acquire1": scripts.Acquire1, // reported as "acquire"
	"release":  scripts.Release,
	"prolong":  scripts.Prolong, // called by its mode: renew, extend, refresh
	"inspect":  scripts.Inspect,
	"handoff":  scripts.Handoff,
	"revoke":   scripts.Revoke,
	"status":   scripts.Status,
}

// scriptOf returns the name of the script cmd runs (EVALSHA by its hash, EVAL
// by its source), or "".
func scriptOf(cmd redis.Cmder) string {
	args := cmd.Args()
	if len(args) < 2 {
		return ""
	}
	op, _ := args[0].(string)
	arg, _ := args[1].(string)
	var sha string
	switch op {
	case "evalsha", "EVALSHA":
		sha = arg
	case "eval", "EVAL":
		sum := sha1.Sum([]byte(arg))
		sha = hex.EncodeToString(sum[:])
	default:
		return ""
	}
	for name, s := range knownScripts {
		if s.Hash() == sha {
			if name == "prolong" { // ARGV[4] is the mode
				var numkeys int
				switch n := args[2].(type) {
				case int:
					numkeys = n
				case int64:
					numkeys = int(n)
				}
				if i := 3 + numkeys + 3; i < len(args) {
					mode, _ := args[i].(string)
					return mode
				}
			}
			if name == "acquire1" {
				return "acquire"
			}
			return name
		}
	}
	return ""
}

// loadScripts caches every script on the server, so that no EVALSHA answers
// NOSCRIPT: a one-shot fault then hits the call that does the work.
func loadScripts(t *testing.T, s *redistest.Server) {
	t.Helper()
	c := s.Client(t)
	for name, sc := range knownScripts {
		if err := sc.Load(context.Background(), c).Err(); err != nil {
			t.Fatalf("SCRIPT LOAD %s: %v", name, err)
		}
	}
}

// ---------------------------------------------------------------------------
// Fault injection: a go-redis hook that intercepts script calls.
// ---------------------------------------------------------------------------

// faultWait bounds every wait inside a hook, so a test that goes wrong
// cannot hang.
const faultWait = 10 * time.Second

// errLost is what a caller sees when a reply is lost: a socket read timeout.
var errLost error = &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}

type interceptFunc func(ctx context.Context, cmd redis.Cmder, next redis.ProcessHook) error

type rule struct {
	once bool
	f    interceptFunc
}

// faultHook counts the script calls of one client and intercepts those for
// which a rule is armed, whether they go out alone (ProcessHook) or in a
// pipeline (ProcessPipelineHook: concurrent calls of one client are batched).
// With chaos set, every script call it does not intercept otherwise loses
// its reply at random (see chaos).
type faultHook struct {
	mu        sync.Mutex
	calls     map[string]int
	rules     map[string]rule
	pipelines int // pipelines holding at least one script call
	chaos     *chaos
}

var _ redis.Hook = (*faultHook)(nil)

// hookedClient returns a client of addr with a faultHook, closed when t ends.
// contextTimeout sets ContextTimeoutEnabled: a ctx deadline then becomes the
// socket deadline.
func hookedClient(t *testing.T, addr string, contextTimeout bool) (*redis.Client, *faultHook) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, ReadTimeout: 2 * time.Second,
		WriteTimeout: 2 * time.Second, ContextTimeoutEnabled: contextTimeout})
	h := &faultHook{calls: map[string]int{}, rules: map[string]rule{}}
	c.AddHook(h)
	t.Cleanup(func() { _ = c.Close() })
	return c, h
}

func (h *faultHook) DialHook(next redis.DialHook) redis.DialHook { return next }

// match counts a script call and returns the rule armed for it, if any.
func (h *faultHook) match(cmd redis.Cmder) (name string, r rule, ok bool) {
	name = scriptOf(cmd)
	if name == "" {
		return "", rule{}, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls[name]++
	r, ok = h.rules[name]
	if ok && r.once {
		delete(h.rules, name)
	}
	return name, r, ok
}

func (h *faultHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		name, r, ok := h.match(cmd)
		switch {
		case ok:
			return r.f(ctx, cmd, next)
		case name != "" && h.chaos != nil:
			return h.chaos.single(ctx, cmd, next)
		}
		return next(ctx, cmd)
	}
}

// ProcessPipelineHook sends the calls without a rule together, as the
// client meant, and then each call with a rule alone, through its rule.
func (h *faultHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		var plain, ruled []redis.Cmder
		var rules []rule
		scriptsSeen := false
		for _, cmd := range cmds {
			name, r, ok := h.match(cmd)
			scriptsSeen = scriptsSeen || name != ""
			if ok {
				ruled, rules = append(ruled, cmd), append(rules, r)
			} else {
				plain = append(plain, cmd)
			}
		}
		if scriptsSeen {
			h.mu.Lock()
			h.pipelines++
			h.mu.Unlock()
		}
		var first error
		if len(plain) > 0 {
			if h.chaos != nil {
				first = h.chaos.pipeline(ctx, plain, next)
			} else {
				first = next(ctx, plain)
			}
		}
		one := func(ctx context.Context, cmd redis.Cmder) error { return next(ctx, []redis.Cmder{cmd}) }
		for i, cmd := range ruled {
			if err := rules[i].f(ctx, cmd, one); err != nil && first == nil {
				first = err
			}
		}
		return first
	}
}

// pipelineCount returns how many pipelines carried script calls.
func (h *faultHook) pipelineCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.pipelines
}

// once applies f to the next call of script.
func (h *faultHook) once(script string, f interceptFunc) { h.arm(script, f, true) }

// always applies f to every later call of script.
func (h *faultHook) always(script string, f interceptFunc) { h.arm(script, f, false) }

func (h *faultHook) arm(script string, f interceptFunc, once bool) {
	if knownScripts[script] == nil && script != "renew" && script != "extend" && script != "refresh" {
		panic("unknown script " + script)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rules[script] = rule{once: once, f: f}
}

// count returns how many calls of script reached the hook.
func (h *faultHook) count(script string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls[script]
}

// waitCalls waits until n calls of script have reached the hook.
func (h *faultHook) waitCalls(t *testing.T, script string, n int) {
	t.Helper()
	deadline := time.Now().Add(faultWait)
	for h.count(script) < n {
		if time.Now().After(deadline) {
			t.Fatalf("harness: %d of %d %s calls seen", h.count(script), n, script)
		}
		time.Sleep(time.Millisecond)
	}
}

// fired fails t unless the one-shot fault armed on script was applied.
func (h *faultHook) fired(t *testing.T, script string) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if r, ok := h.rules[script]; ok && r.once {
		t.Fatalf("harness: the fault armed on the %s script never fired (adapt the protocol helpers)", script)
	}
}

// runTwice runs the command twice and returns the second run's reply: it
// ran, its reply was lost, and go-redis resent it.
func runTwice(ctx context.Context, cmd redis.Cmder, next redis.ProcessHook) error {
	if err := next(ctx, cmd); err != nil {
		return err
	}
	return next(ctx, cmd)
}

// lostReply runs the command and then reports errLost to the caller: it ran,
// its reply was lost. Before running it closes entered (if not nil) and waits
// for before (if not nil); after running it waits for after (if not nil).
func lostReply(entered chan<- struct{}, before, after <-chan struct{}) interceptFunc {
	return func(ctx context.Context, cmd redis.Cmder, next redis.ProcessHook) error {
		if entered != nil {
			close(entered)
		}
		if before != nil {
			select {
			case <-before:
			case <-time.After(faultWait):
			}
		}
		_ = next(ctx, cmd)
		if after != nil {
			select {
			case <-after:
			case <-time.After(faultWait):
			}
		}
		cmd.SetErr(errLost)
		return errLost
	}
}

// ---------------------------------------------------------------------------
// Public-API helpers.
// ---------------------------------------------------------------------------

// believes reports whether l believes it holds its lock.
func believes(l *lease.Lease) bool {
	return l.Err() == nil && time.Now().Before(l.ValidUntil())
}

func releaseOnCleanup(t *testing.T, l *lease.Lease) {
	t.Cleanup(func() { _ = l.Release(context.Background()) })
}

func tryLock(ctx context.Context, t *testing.T, c redis.UniversalClient, name string, opts ...mutex.Option) *lease.Lease {
	t.Helper()
	l, err := newMutex(t, c, name, opts...).TryLock(ctx)
	if err != nil {
		t.Fatalf("TryLock %q: %v", name, err)
	}
	releaseOnCleanup(t, l)
	return l
}

type lockResult struct {
	l   *lease.Lease
	err error
}

// lockAsync runs m.Lock(ctx) in a goroutine that t waits for when it ends; a
// lease the test never received is released then.
func lockAsync(ctx context.Context, t *testing.T, m *mutex.Mutex) <-chan lockResult {
	ch := make(chan lockResult, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		l, err := m.Lock(ctx)
		ch <- lockResult{l, err}
	}()
	t.Cleanup(func() {
		<-done
		select {
		case r := <-ch:
			if r.l != nil {
				_ = r.l.Release(context.Background())
			}
		default:
		}
	})
	return ch
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(2 * faultWait):
		t.Fatalf("harness: timed out waiting for %s", what)
	}
	var zero T
	return zero
}

// keyState describes a lock key for messages.
func keyState(t *testing.T, s *redistest.Server, name string) string {
	t.Helper()
	c := s.Client(t)
	ctx := context.Background()
	v, err := c.Get(ctx, lockKeyOf(name)).Result()
	if errors.Is(err, redis.Nil) {
		return fmt.Sprintf("%s does not exist", lockKeyOf(name))
	}
	pttl, _ := c.PTTL(ctx, lockKeyOf(name)).Result()
	return fmt.Sprintf("%s holds %q (PTTL %v, GET error %v)", lockKeyOf(name), v, pttl, err)
}

// checkNoOverlap is the safety check: a competitor on a clean client tries
// to take name while l believes it holds it, for up to within. It fails t if
// the competitor succeeds while l still believes it holds the lock.
func checkNoOverlap(t *testing.T, s *redistest.Server, name string, l *lease.Lease, within time.Duration) {
	t.Helper()
	ctx := context.Background()
	m := newMutex(t, s.Client(t), name)
	deadline := time.Now().Add(within)
	for believes(l) && time.Now().Before(deadline) {
		cl, err := m.TryLock(ctx)
		if err == nil {
			releaseOnCleanup(t, cl)
			if believes(l) {
				t.Fatalf("a competitor acquired %q while the lease still believes it holds it (Err %v, ValidUntil in %v, Lost open); the competitor's key: %s",
					name, l.Err(), time.Until(l.ValidUntil()).Round(time.Millisecond), keyState(t, s, name))
			}
			return
		}
		if !errors.Is(err, mutex.ErrLocked) {
			t.Fatalf("competitor TryLock: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stallRedis makes s run DEBUG SLEEP d on its own connection and returns once
// Redis is stalled (a probe PING times out).
func stallRedis(t *testing.T, s *redistest.Server, d time.Duration) {
	t.Helper()
	ctx := context.Background()
	probe := redis.NewClient(&redis.Options{Addr: s.Addr, ContextTimeoutEnabled: true, MaxRetries: -1})
	defer probe.Close()
	if err := probe.Ping(ctx).Err(); err != nil {
		t.Fatalf("probe: %v", err)
	}
	admin := s.Client(t)
	done := make(chan error, 1)
	go func() { done <- admin.Do(ctx, "debug", "sleep", fmt.Sprintf("%.3f", d.Seconds())).Err() }()
	t.Cleanup(func() {
		if err := <-done; err != nil {
			t.Errorf("DEBUG SLEEP: %v", err)
		}
	})
	deadline := time.Now().Add(faultWait)
	for {
		pctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		err := probe.Ping(pctx).Err()
		cancel()
		if err != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("harness: Redis never stalled")
		}
		time.Sleep(time.Millisecond)
	}
}

// ---------------------------------------------------------------------------
// Finding 1: a Refresh to a shorter TTL whose reply is lost.
// ---------------------------------------------------------------------------

// TestLostReply1RefreshShorterStalled: Redis stalls (DEBUG SLEEP), Refresh to
// 200ms gives up after 100ms with a deadline error, and Redis then runs the
// queued script. The key expires ~200ms later: the lease must not still
// believe it holds it when a competitor takes it.
func TestLostReply1RefreshShorterStalled(t *testing.T) {
	s := redistest.Start(t)
	loadScripts(t, s)
	ctx := context.Background()
	c, _ := hookedClient(t, s.Addr, true)
	name := uniqueName(t)
	l := tryLock(ctx, t, c, name) // TTL 10s
	stallRedis(t, s, 500*time.Millisecond)
	rctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	err := l.Refresh(rctx, 200*time.Millisecond)
	cancel()
	if err == nil {
		t.Fatal("harness: Refresh returned nil while Redis was stalled")
	}
	t.Logf("Refresh during the stall: %v", err)
	checkNoOverlap(t, s, name, l, 5*time.Second)
}

// TestLostReply1RefreshShorterHook: the same with the hook: the refresh runs,
// its caller gets a read timeout.
func TestLostReply1RefreshShorterHook(t *testing.T) {
	s := redistest.Start(t)
	loadScripts(t, s)
	ctx := context.Background()
	c, h := hookedClient(t, s.Addr, false)
	name := uniqueName(t)
	l := tryLock(ctx, t, c, name) // TTL 10s
	h.once("refresh", lostReply(nil, nil, nil))
	if err := l.Refresh(ctx, 200*time.Millisecond); err == nil {
		t.Fatal("harness: Refresh returned nil despite the lost reply")
	}
	h.fired(t, "refresh")
	checkNoOverlap(t, s, name, l, 5*time.Second)
}

// ---------------------------------------------------------------------------
// Finding 2: the handoff's error path deletes a lock the waiter took itself.
// ---------------------------------------------------------------------------

// TestLostReply2HandoffErrorDeletesWaitersOwnLock: A holds; W waits in the
// same process (so A's release is a handoff) and V in another process (so
// the handoff script releases and publishes instead). The handoff's reply is
// lost, and before A hears of it W takes the lock by itself. A's error path
// must not delete W's lock.
func TestLostReply2HandoffErrorDeletesWaitersOwnLock(t *testing.T) {
	s := redistest.Start(t)
	loadScripts(t, s)
	ctx := context.Background()
	name := uniqueName(t)
	ttl := mutex.WithTTL(30 * time.Second)
	cA, hA := hookedClient(t, s.Addr, false) // process 1: A and W
	cB, hB := hookedClient(t, s.Addr, false) // process 2: V

	lA := tryLock(ctx, t, cA, name, ttl)
	base := hA.count("acquire")
	wctx, wcancel := context.WithTimeout(ctx, 2*faultWait)
	defer wcancel()
	wDone := lockAsync(wctx, t, newMutex(t, cA, name, ttl))
	hA.waitCalls(t, "acquire", base+2) // W tried, queued, tried again

	// V's first attempt finds A's lock and queues V; its later attempts wait
	// for gate, so that W, not V, takes the lock after A's release.
	gate := make(chan struct{})
	var vMu sync.Mutex
	vCalls := 0
	hB.always("acquire", func(ctx context.Context, cmd redis.Cmder, next redis.ProcessHook) error {
		vMu.Lock()
		vCalls++
		n := vCalls
		vMu.Unlock()
		if n > 1 {
			select {
			case <-gate:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return next(ctx, cmd)
	})
	vctx, vcancel := context.WithCancel(ctx)
	lockAsync(vctx, t, newMutex(t, cB, name, ttl))
	// Registered after lockAsync, so it runs before lockAsync's wait.
	t.Cleanup(func() { vcancel(); close(gate) })
	hB.waitCalls(t, "acquire", 2) // V tried, queued (subscribed), tried again

	wAcquired := make(chan struct{})
	hA.once("handoff", lostReply(nil, nil, wAcquired))
	relDone := make(chan error, 1)
	go func() { relDone <- lA.Release(ctx) }()
	r := recv(t, wDone, "W's Lock")
	var wKey string
	if r.err == nil {
		wKey, _ = s.Client(t).Get(ctx, lockKeyOf(name)).Result()
	}
	close(wAcquired)
	if r.err != nil {
		t.Fatalf("W's Lock: %v", r.err)
	}
	releaseOnCleanup(t, r.l)
	if !holds(wKey, r.l.Token()) {
		t.Fatalf("harness: W's Lock returned, but the key held %q, not W's token %q", wKey, r.l.Token())
	}
	relErr := recv(t, relDone, "A's Release")
	hA.fired(t, "handoff")
	t.Logf("A's release: %v", relErr)
	checkNoOverlap(t, s, name, r.l, 2*time.Second)
}

// ---------------------------------------------------------------------------
// Finding 3: a waiter's failed attempt deletes the key just handed to it.
// ---------------------------------------------------------------------------

// TestLostReply3OwnAttemptDeletesHandedOffKey: W's own attempt is in flight
// when A's release hands the key to W; the attempt then reaches Redis, fails
// (the key is held) and its reply is lost. W's cleanup of that attempt must
// not delete the key handed to it, and W's lease from the handoff must be
// real.
func TestLostReply3OwnAttemptDeletesHandedOffKey(t *testing.T) {
	s := redistest.Start(t)
	loadScripts(t, s)
	ctx := context.Background()
	name := uniqueName(t)
	ttl := mutex.WithTTL(30 * time.Second)
	c, h := hookedClient(t, s.Addr, false)

	lA := tryLock(ctx, t, c, name, ttl)
	base := h.count("acquire")
	wctx, wcancel := context.WithTimeout(ctx, 2*faultWait)
	defer wcancel()
	wDone := lockAsync(wctx, t, newMutex(t, c, name, ttl))
	h.waitCalls(t, "acquire", base+2) // W tried, queued, tried again

	inFlight, handedOff := make(chan struct{}), make(chan struct{})
	h.once("acquire", lostReply(inFlight, handedOff, nil)) // W's next attempt
	recv(t, (<-chan struct{})(inFlight), "W's next attempt")
	relErr := lA.Release(ctx)
	handed, _ := s.Client(t).Get(ctx, lockKeyOf(name)).Result() // before W's attempt reaches Redis
	close(handedOff)
	r := recv(t, wDone, "W's Lock")
	h.fired(t, "acquire")
	if r.err != nil {
		t.Fatalf("W's Lock: %v (A's release: %v)", r.err, relErr)
	}
	releaseOnCleanup(t, r.l)
	if relErr != nil || !holds(handed, r.l.Token()) {
		t.Fatalf("harness: no handoff to W: A's release: %v; the key held %q after it, W's token is %q", relErr, handed, r.l.Token())
	}
	checkNoOverlap(t, s, name, r.l, 2*time.Second)
}

// ---------------------------------------------------------------------------
// Finding 4: the acquire script is not safe to run twice.
// ---------------------------------------------------------------------------

// TestLostReply4AcquireRetriedTryLock: a TryLock whose acquire is resent
// after a lost reply succeeds, or at least leaves no key behind.
func TestLostReply4AcquireRetriedTryLock(t *testing.T) {
	s := redistest.Start(t)
	loadScripts(t, s)
	ctx := context.Background()
	name := uniqueName(t)
	c, h := hookedClient(t, s.Addr, false)
	h.once("acquire", runTwice)
	l, err := newMutex(t, c, name, mutex.WithTTL(30*time.Second)).TryLock(ctx)
	h.fired(t, "acquire")
	if err != nil {
		t.Fatalf("TryLock with a retried acquire, nobody else holding %q: %v; %s", name, err, keyState(t, s, name))
	}
	releaseOnCleanup(t, l)
	if v, _ := s.Client(t).Get(ctx, lockKeyOf(name)).Result(); !holds(v, l.Token()) {
		t.Fatalf("TryLock succeeded but %s", keyState(t, s, name))
	}
	// The retry returned the first run's fence: each run drew one (acquire1
	// draws before SET NX), and the second one stays unused.
	if f, _ := s.Client(t).Get(ctx, fenceCounter).Int64(); f != l.Fence()+1 {
		t.Fatalf("fence %d, counter %d: want the first of the two runs' fences", l.Fence(), f)
	}
}

// TestLostReply4AcquireRetriedLock: a Lock whose first acquire is resent does
// not wait out its own key.
func TestLostReply4AcquireRetriedLock(t *testing.T) {
	s := redistest.Start(t)
	loadScripts(t, s)
	ctx := context.Background()
	name := uniqueName(t)
	c, h := hookedClient(t, s.Addr, false)
	h.once("acquire", runTwice)
	lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	start := time.Now()
	l, err := newMutex(t, c, name, mutex.WithTTL(30*time.Second)).Lock(lctx)
	h.fired(t, "acquire")
	if err != nil {
		t.Fatalf("Lock with a retried acquire, nobody else holding %q: %v after %v; %s",
			name, err, time.Since(start).Round(time.Millisecond), keyState(t, s, name))
	}
	releaseOnCleanup(t, l)
}

// TestLostReply4AcquireRetriedMultiLock: a multilock TryLock whose acquire is
// resent succeeds, or at least leaves none of its keys behind.
func TestLostReply4AcquireRetriedMultiLock(t *testing.T) {
	s := redistest.Start(t)
	loadScripts(t, s)
	ctx := context.Background()
	base := uniqueName(t)
	names := []string{base + "-a", base + "-b", base + "-c"}
	c, h := hookedClient(t, s.Addr, false)
	ml, err := multilock.New(c, names, mutex.WithTTL(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	h.once("acquire", runTwice)
	l, err := ml.TryLock(ctx)
	h.fired(t, "acquire")
	admin := s.Client(t)
	if err == nil {
		releaseOnCleanup(t, l)
		for _, n := range names {
			if v, _ := admin.Get(ctx, lockKeyOf(n)).Result(); !holds(v, l.Token()) {
				t.Fatalf("TryLock succeeded but %s", keyState(t, s, n))
			}
		}
		return
	}
	var left []string
	for _, n := range names {
		if k, _ := admin.Exists(ctx, lockKeyOf(n)).Result(); k != 0 {
			left = append(left, keyState(t, s, n))
		}
	}
	if len(left) > 0 {
		t.Fatalf("multilock TryLock with a retried acquire: %v; no lease was returned, yet %d of %d keys are held: %v",
			err, len(left), len(names), left)
	}
	t.Logf("multilock TryLock with a retried acquire failed cleanly: %v", err)
}

// ---------------------------------------------------------------------------
// Finding 5: a retried handoff strands the lock.
// ---------------------------------------------------------------------------

// TestLostReply5RetriedHandoffStrandsLock: A's release hands the key to W in
// the same process; the reply is lost and the script resent. W must get the
// lock promptly (the TTL is 30s), and nothing may stay held once W releases.
func TestLostReply5RetriedHandoffStrandsLock(t *testing.T) {
	s := redistest.Start(t)
	loadScripts(t, s)
	ctx := context.Background()
	name := uniqueName(t)
	ttl := mutex.WithTTL(30 * time.Second)
	c, h := hookedClient(t, s.Addr, false)

	lA := tryLock(ctx, t, c, name, ttl)
	base := h.count("acquire")
	wctx, wcancel := context.WithTimeout(ctx, 3*time.Second)
	defer wcancel()
	wDone := lockAsync(wctx, t, newMutex(t, c, name, ttl))
	h.waitCalls(t, "acquire", base+2) // W tried, queued, tried again

	h.once("handoff", runTwice)
	relErr := lA.Release(ctx)
	h.fired(t, "handoff")
	r := recv(t, wDone, "W's Lock")
	if r.err != nil {
		t.Fatalf("W's Lock: %v; A's release: %v; %s", r.err, relErr, keyState(t, s, name))
	}
	if err := r.l.Release(ctx); err != nil {
		t.Fatalf("W's release: %v (A's release: %v)", err, relErr)
	}
	if n, _ := s.Client(t).Exists(ctx, lockKeyOf(name)).Result(); n != 0 {
		t.Fatalf("every lease released, yet %s (A's release: %v)", keyState(t, s, name), relErr)
	}
}

// ---------------------------------------------------------------------------
// Finding 7: with WithToken, a failed TryLock deletes another lease's key.
// ---------------------------------------------------------------------------

// TestLostReply7FailedTryLockKeepsSharedTokenKey: lease A holds with token
// "svc-A"; a TryLock on the same Mutex with a canceled ctx fails, and must
// leave A's key alone.
func TestLostReply7FailedTryLockKeepsSharedTokenKey(t *testing.T) {
	s := redistest.Start(t)
	loadScripts(t, s)
	ctx := context.Background()
	name := uniqueName(t)
	c := s.Client(t)
	m := newMutex(t, c, name, mutex.WithToken("svc-A"), mutex.WithTTL(30*time.Second))
	lA, err := m.TryLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	releaseOnCleanup(t, lA)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	l, err := m.TryLock(cctx)
	if err == nil {
		releaseOnCleanup(t, l)
		t.Fatal("TryLock with a canceled ctx succeeded while lease A holds the lock")
	}
	if v, _ := s.Client(t).Get(ctx, lockKeyOf(name)).Result(); !holds(v, "svc-A") {
		t.Fatalf("after a failed TryLock (%v), %s; lease A (Err %v) still believes it holds: %v",
			err, keyState(t, s, name), lA.Err(), believes(lA))
	}
	checkNoOverlap(t, s, name, lA, 200*time.Millisecond)
}

// ---------------------------------------------------------------------------
// Finding 8: *redis.Ring.
// ---------------------------------------------------------------------------

// TestRingIsRejected: a ring's shards are independent servers and route a
// multi-key script by its first key, so mutex.New and multilock.New refuse
// it. If they accept it, the test shows two holders of one name.
func TestRingIsRejected(t *testing.T) {
	s1, s2 := redistest.Start(t), redistest.Start(t)
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"s1": s1.Addr, "s2": s2.Addr}})
	t.Cleanup(func() { _ = ring.Close() })
	name := uniqueName(t)
	_, errM := mutex.New(ring, name)
	_, errML := multilock.New(ring, []string{name, name + "-b"})
	if errors.Is(errM, mutex.ErrInvalid) && errors.Is(errML, mutex.ErrInvalid) {
		return
	}
	t.Fatalf("mutex.New(ring): %v; multilock.New(ring): %v; want errors wrapping mutex.ErrInvalid. %s",
		errM, errML, ringTwoHolders(t, ring, s1, name))
}

// ringTwoHolders takes names x and y (on different shards) with a multilock
// and then y with a mutex, and describes the outcome.
func ringTwoHolders(t *testing.T, ring *redis.Ring, s1 *redistest.Server, x string) string {
	t.Helper()
	ctx := context.Background()
	c1 := s1.Client(t)
	onS1 := func(name string) bool {
		_ = ring.Set(ctx, lockKeyOf(name), "probe", time.Minute).Err()
		n, _ := c1.Exists(ctx, lockKeyOf(name)).Result()
		_ = ring.Del(ctx, lockKeyOf(name)).Err()
		return n == 1
	}
	y := ""
	for i := 0; i < 100 && y == ""; i++ {
		if cand := fmt.Sprintf("%s-%d", x, i); onS1(cand) != onS1(x) {
			y = cand
		}
	}
	if y == "" {
		return "(no two names on different shards found)"
	}
	ml, err := multilock.New(ring, []string{x, y}, mutex.WithTTL(30*time.Second))
	if err != nil {
		return fmt.Sprintf("(multilock.New: %v)", err)
	}
	lML, err := ml.TryLock(ctx)
	if err != nil {
		return fmt.Sprintf("(multilock TryLock: %v)", err)
	}
	releaseOnCleanup(t, lML)
	m, err := mutex.New(ring, y, mutex.WithTTL(30*time.Second))
	if err != nil {
		return fmt.Sprintf("(mutex.New: %v)", err)
	}
	lM, err := m.TryLock(ctx)
	if err != nil {
		return fmt.Sprintf("(a mutex on %q after the multilock: %v)", y, err)
	}
	releaseOnCleanup(t, lM)
	return fmt.Sprintf("Two holders of %q: a multilock lease on [%q %q] and a mutex lease, both believing they hold it "+
		"(the multilock's script wrote %q's key on %q's shard).", y, x, y, y, x)
}

// ---------------------------------------------------------------------------
// Small: a renew interval past the lease's validity.
// ---------------------------------------------------------------------------

// TestNewRejectsRenewIntervalPastValidity: the renewer must run before the
// lease's validity (TTL×(1−drift)−5ms) ends, so a longer interval is refused.
func TestNewRejectsRenewIntervalPastValidity(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	bad := []mutex.Option{mutex.WithTTL(100 * time.Millisecond), mutex.WithRenewInterval(99 * time.Millisecond)}
	if _, err := mutex.New(c, "x", bad...); !errors.Is(err, mutex.ErrInvalid) {
		t.Errorf("mutex.New with TTL 100ms, renew interval 99ms: got %v, want an error wrapping ErrInvalid", err)
	}
	if _, err := multilock.New(c, []string{"x"}, bad...); !errors.Is(err, mutex.ErrInvalid) {
		t.Errorf("multilock.New with TTL 100ms, renew interval 99ms: got %v, want an error wrapping ErrInvalid", err)
	}
	if _, err := mutex.New(c, "x", mutex.WithTTL(100*time.Millisecond), mutex.WithRenewInterval(50*time.Millisecond)); err != nil {
		t.Errorf("mutex.New with TTL 100ms, renew interval 50ms: %v, want it accepted", err)
	}
}

// TestLostReplyRefreshRunsLate: a Refresh to a shorter TTL whose request is
// held up (its caller gets an error) and only runs after the lease's next
// renewal must not shorten the key behind the lease's back: the renewal
// supersedes it, so when it finally runs it changes nothing.
func TestLostReplyRefreshRunsLate(t *testing.T) {
	s := redistest.Start(t)
	loadScripts(t, s)
	ctx := context.Background()
	name := uniqueName(t)
	c, h := hookedClient(t, s.Addr, false)
	l := tryLock(ctx, t, c, name, mutex.WithTTL(10*time.Second), mutex.WithAutoRenew(false))
	var held redis.Cmder
	h.once("refresh", func(ctx context.Context, cmd redis.Cmder, next redis.ProcessHook) error {
		held = cmd // not sent yet: it will run late
		cmd.SetErr(errLost)
		return errLost
	})
	if err := l.Refresh(ctx, 200*time.Millisecond); err == nil {
		t.Fatal("Refresh with a lost request: nil error")
	}
	h.fired(t, "refresh")
	if until := time.Until(l.ValidUntil()); until > 200*time.Millisecond {
		t.Fatalf("after a Refresh in doubt to 200ms the lease believes it is valid for %v", until)
	}
	// The lease moves on: Extend succeeds and raises its deadline.
	if err := l.Extend(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// Now the held-up Refresh runs.
	if err := s.Client(t).Do(ctx, held.Args()...).Err(); err != nil {
		t.Fatalf("late refresh: %v", err)
	}
	pttl, _ := s.Client(t).PTTL(ctx, lockKeyOf(name)).Result()
	if until := time.Until(l.ValidUntil()); believes(l) && pttl < until {
		t.Fatalf("the late Refresh shortened the key to %v while the lease believes it is valid for %v", pttl, until)
	}
	checkNoOverlap(t, s, name, l, 400*time.Millisecond)
}

// TestLostReplyExtendRetried: an Extend whose reply is lost and resent adds
// the time once.
func TestLostReplyExtendRetried(t *testing.T) {
	s := redistest.Start(t)
	loadScripts(t, s)
	ctx := context.Background()
	name := uniqueName(t)
	c, h := hookedClient(t, s.Addr, false)
	l := tryLock(ctx, t, c, name, mutex.WithTTL(10*time.Second), mutex.WithAutoRenew(false))
	h.once("extend", runTwice)
	if err := l.Extend(ctx, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	h.fired(t, "extend")
	if pttl, _ := s.Client(t).PTTL(ctx, lockKeyOf(name)).Result(); pttl > 30*time.Second {
		t.Fatalf("PTTL %v after Extend(20s) of a 10s lock: the retry added the time twice", pttl)
	}
}
