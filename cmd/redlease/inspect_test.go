package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
)

// hold takes the lock name in-process with a 30 s TTL, released at cleanup.
func hold(t *testing.T, srv *redistest.Server, name string) *lease.Lease {
	t.Helper()
	m, err := mutex.New(srv.Client(t), name, mutex.WithTTL(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	l, err := m.TryLock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Release(context.Background()) })
	return l
}

// TestStatus: a free and a held name, as a table and as JSON; --held exits
// 81 when one is free.
func TestStatus(t *testing.T) {
	srv, env := redisEnv(t)
	l := hold(t, srv, "busy")

	r := shell(t, env, `"$BIN" status idle busy`)
	if r.code != exitOK {
		t.Fatalf("want status 0: %v", r)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "NAME HOLDER FENCE TTL WAITERS" {
		t.Fatalf("want a header and two rows: %v", r)
	}
	if f := strings.Fields(lines[1]); strings.Join(f, " ") != "idle free - - 0" {
		t.Fatalf("free row %q, want idle free - - 0", lines[1])
	}
	f := strings.Fields(lines[2])
	if len(f) != 5 || f[0] != "busy" || f[1] != l.Token() || f[2] != fmt.Sprint(l.Fence()) || f[4] != "0" {
		t.Fatalf("held row %q, want busy %s %d TTL 0", lines[2], l.Token(), l.Fence())
	}
	if ttl, err := time.ParseDuration(f[3]); err != nil || ttl <= 0 || ttl > 30*time.Second {
		t.Fatalf("held row TTL %q: want a duration in (0, 30s]", f[3])
	}

	r = shell(t, env, `"$BIN" status --json idle busy`)
	var got []map[string]any
	if r.code != exitOK {
		t.Fatalf("--json: want status 0: %v", r)
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || len(got) != 2 {
		t.Fatalf("--json: want an array of two objects (%v): %v", err, r)
	}
	for _, o := range got {
		for _, k := range []string{"name", "held", "token", "fence", "ttl_ms", "waiters"} {
			if _, ok := o[k]; !ok || len(o) != 6 {
				t.Fatalf("--json: object %v: want exactly the fields name, held, token, fence, ttl_ms, waiters", o)
			}
		}
	}
	if o := got[0]; o["name"] != "idle" || o["held"] != false || o["token"] != "" || o["fence"] != 0.0 || o["ttl_ms"] != 0.0 {
		t.Fatalf("--json: free: %v", o)
	}
	o := got[1]
	if o["name"] != "busy" || o["held"] != true || o["token"] != l.Token() || o["fence"] != float64(l.Fence()) || o["waiters"] != 0.0 {
		t.Fatalf("--json: held: %v, want token %s fence %d", o, l.Token(), l.Fence())
	}
	if ms, _ := o["ttl_ms"].(float64); ms <= 0 || ms > 30000 {
		t.Fatalf("--json: ttl_ms %v: want (0, 30000]", o["ttl_ms"])
	}

	if r := shell(t, env, `"$BIN" status --held busy`); r.code != exitOK {
		t.Fatalf("--held busy: want 0: %v", r)
	}
	if r := shell(t, env, `"$BIN" status --held idle busy`); r.code != exitNotHeld || !strings.Contains(r.stderr, `not held: "idle"`) || !strings.Contains(r.stdout, "busy") {
		t.Fatalf("--held idle busy: want 81 after the table: %v", r)
	}
}

// TestUnlockRevokesRun: unlock --force --yes while "redlease run" holds the
// lock with a 30 s TTL: the run's command gets SIGTERM within 10 s (so not
// by expiry) and the run exits 80; the lock is then free.
func TestUnlockRevokesRun(t *testing.T) {
	srv, env := redisEnv(t)
	dir, wait := holdUntilLost(t, env, "job", true, "--ttl", "30s", "--grace", "20s")
	revoked := time.Now()
	r := shell(t, env, `"$BIN" unlock --force --yes job`)
	if r.code != exitOK || !strings.Contains(r.stdout, "job: held by ") || !strings.Contains(r.stdout, "job: revoked ") {
		t.Fatalf("unlock: want status 0 showing the holder: %v", r)
	}
	rr := wait()
	if rr.code != exitRevoked || !strings.Contains(rr.stderr, "was revoked") || !strings.Contains(rr.stderr, "status 0") {
		t.Fatalf("run: want status %d, the command exiting 0 on TERM: %v", exitRevoked, rr)
	}
	if took := time.Since(revoked); took > 10*time.Second {
		t.Fatalf("run exited %v after the revocation (TTL 30s)", took)
	}
	if b, _ := os.ReadFile(dir + "/log"); !strings.Contains(string(b), "TERM") {
		t.Fatalf("the command got no SIGTERM: %v", rr)
	}
	assertFree(t, srv, "job")
	// Nothing held now: 81.
	if r := shell(t, env, `"$BIN" unlock --force --yes job`); r.code != exitNotHeld || !strings.Contains(r.stdout, "job: free") {
		t.Fatalf("unlock of a free lock: want 81: %v", r)
	}
}

// TestUnlockStaleToken: the token of a hold that ended, given to a lock held
// again by another, exits 81 and leaves the newer holder alone.
func TestUnlockStaleToken(t *testing.T) {
	srv, env := redisEnv(t)
	m, err := mutex.New(srv.Client(t), "job")
	if err != nil {
		t.Fatal(err)
	}
	old, err := m.TryLock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	l := hold(t, srv, "job")
	r := shell(t, env, `"$BIN" unlock --force --token `+old.Token()+` job`)
	if r.code != exitNotHeld || !strings.Contains(r.stderr, "nothing revoked") {
		t.Fatalf("stale --token: want 81: %v", r)
	}
	if ok, err := l.Owned(context.Background()); err != nil || !ok {
		t.Fatalf("the newer holder: owned=%v err=%v", ok, err)
	}
	// The right token revokes, and a retry of it still says 0.
	for i, want := range []string{"job: revoked " + l.Token(), "job: " + l.Token() + " was revoked already"} {
		if r := shell(t, env, `"$BIN" unlock --force --token `+l.Token()+` job`); r.code != exitOK || !strings.Contains(r.stdout, want) {
			t.Fatalf("unlock #%d with the holder's token: want 0 and %q: %v", i+1, want, r)
		}
	}
	select {
	case <-l.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("the holder's lease did not end within 10s of the revocation")
	}
}

// TestUnlockPrompt: on a terminal, unlock asks; only the token shown or
// "yes" revokes, anything else exits 1 and leaves the hold.
func TestUnlockPrompt(t *testing.T) {
	srv, _ := redisEnv(t)
	l := hold(t, srv, "job")
	unlock := func(answer string) (int, string) {
		var out bytes.Buffer
		inv := &invocation{
			stdin: strings.NewReader(answer), stdout: &out, stderr: &out, terminal: true,
			getenv: func(k string) string {
				if k == envURL {
					return "redis://" + srv.Addr
				}
				return ""
			},
		}
		return dispatch([]string{"unlock", "--force", "job"}, inv), out.String()
	}
	for _, answer := range []string{"no\n", "", "y\n", "0123\n"} {
		if code, out := unlock(answer); code != exitDeclined || !strings.Contains(out, "Type the token shown") {
			t.Fatalf("answer %q: want %d: status %d, output:\n%s", answer, exitDeclined, code, out)
		}
	}
	if ok, err := l.Owned(context.Background()); err != nil || !ok {
		t.Fatalf("after declined prompts: owned=%v err=%v", ok, err)
	}
	if code, out := unlock(l.Token() + "\n"); code != exitOK || !strings.Contains(out, "revoked "+l.Token()) {
		t.Fatalf("typing the token: want 0: status %d, output:\n%s", code, out)
	}
	l2 := hold(t, srv, "job")
	if code, out := unlock("yes\n"); code != exitOK || !strings.Contains(out, "revoked "+l2.Token()) {
		t.Fatalf("typing yes: want 0: status %d, output:\n%s", code, out)
	}
}

// TestStatusUnreachable: status and unlock against a closed port exit 69.
func TestStatusUnreachable(t *testing.T) {
	env := cmdEnv(fmt.Sprintf("REDIS_URL=redis://127.0.0.1:%d", redistest.FreePort(t)))
	for _, args := range [][]string{{"status", "job"}, {"status", "--json", "a", "b"}, {"unlock", "--force", "--yes", "job"}} {
		r := run(t, env, args...)
		if r.code != exitUnavailable || !strings.Contains(r.stderr, "cannot reach Redis at") {
			t.Fatalf("%v: want status %d: %v", args, exitUnavailable, r)
		}
	}
}
