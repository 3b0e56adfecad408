package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/mutex"
)

// redisEnv starts a redis-server and returns the environment pointing the
// binary at it, and a client of it.
func redisEnv(t *testing.T) (*redistest.Server, []string) {
	t.Helper()
	srv := redistest.Start(t)
	return srv, cmdEnv("REDIS_URL=redis://" + srv.Addr)
}

func lockKey(name string) string { return "redlease:{" + name + "}" }

// assertFree fails t if the lock key of name exists.
func assertFree(t *testing.T, srv *redistest.Server, name string) {
	t.Helper()
	n, err := srv.Client(t).Exists(context.Background(), lockKey(name)).Result()
	if err != nil || n != 0 {
		t.Fatalf("lock key of %q: exists=%d, err %v; want it released", name, n, err)
	}
}

// TestRunNoOverlap: three "redlease run" of one name started at once by a
// shell never overlap: each command logs its start and end, and every start
// comes after the previous end. The later ones waited (they exit 0, not 75),
// and their fences grow.
func TestRunNoOverlap(t *testing.T) {
	srv, env := redisEnv(t)
	dir := t.TempDir()
	script := `
log=` + dir + `/log
job() {
	"$BIN" run --wait 30s backup -- sh -c 'echo "start $(date +%s%N) $REDLEASE_FENCE" >> '$log'; sleep 0.3; echo "end $(date +%s%N)" >> '$log
	echo "status $?"
}
job & job & job &
wait
cat $log
`
	r := shell(t, env, script)
	if r.code != 0 || strings.Count(r.stdout, "status 0") != 3 {
		t.Fatalf("want three runs with status 0: %v", r)
	}
	var lastEnd, lastFence int64
	starts := 0
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || (f[0] != "start" && f[0] != "end") {
			continue
		}
		ts, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			t.Fatalf("bad timestamp in %q (date +%%s%%N unsupported?)", line)
		}
		switch f[0] {
		case "start":
			starts++
			if ts < lastEnd {
				t.Fatalf("a command started %v before the previous one ended:\n%s", time.Duration(lastEnd-ts), r.stdout)
			}
			fence, _ := strconv.ParseInt(f[2], 10, 64)
			if fence <= lastFence {
				t.Fatalf("fence %d after %d: want growing fences:\n%s", fence, lastFence, r.stdout)
			}
			lastFence = fence
		case "end":
			lastEnd = ts
		}
	}
	if starts != 3 {
		t.Fatalf("%d commands started, want 3:\n%s", starts, r.stdout)
	}
	assertFree(t, srv, "backup")
}

// TestRunWaitTimeout: on a lock someone else holds, --wait 100ms and
// --wait 0 exit 75 without running the command.
func TestRunWaitTimeout(t *testing.T) {
	srv, env := redisEnv(t)
	m, err := mutex.New(srv.Client(t), "busy")
	if err != nil {
		t.Fatal(err)
	}
	l, err := m.TryLock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(context.Background())
	marker := filepath.Join(t.TempDir(), "ran")
	for _, wait := range []string{"100ms", "0"} {
		r := run(t, env, "run", "--wait", wait, "busy", "--", "touch", marker)
		if r.code != exitBusy || !strings.Contains(r.stderr, "locked by another owner") {
			t.Fatalf("--wait %s: want status %d: %v", wait, exitBusy, r)
		}
		if r.took > 10*time.Second {
			t.Fatalf("--wait %s took %v", wait, r.took)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the command ran although the lock was held")
	}
}

// TestRunUnreachable: a closed port exits 69 at once, never running the
// command, whether --wait is forever or not.
func TestRunUnreachable(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	marker := filepath.Join(t.TempDir(), "ran")
	for _, args := range [][]string{
		{"run", "--url", "redis://" + addr, "job", "--", "touch", marker},
		{"run", "--wait", "0", "--cluster", addr, "job", "--", "touch", marker},
	} {
		r := run(t, cmdEnv(), args...)
		if r.code != exitUnavailable || !strings.Contains(r.stderr, "cannot reach Redis at") {
			t.Fatalf("%v: want status %d: %v", args, exitUnavailable, r)
		}
		if r.took > 15*time.Second {
			t.Fatalf("%v took %v", args, r.took)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the command ran without a lock")
	}
}

// TestRunStatus: the command's status passes through (128+N for a signal,
// 126/127 when it cannot run), it sees the lock in its environment, and the
// lock is released after it in every case.
func TestRunStatus(t *testing.T) {
	srv, env := redisEnv(t)
	notExec := filepath.Join(t.TempDir(), "data.txt")
	if err := os.WriteFile(notExec, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		script string
		code   int
	}{
		{`"$BIN" run job -- true`, 0},
		{`"$BIN" run job -- sh -c 'exit 7'`, 7},
		{`"$BIN" run --shell job -- 'exit "$1"' 9`, 9},
		{`"$BIN" run job -- sh -c 'kill -KILL $$'`, 128 + 9},
		{`"$BIN" run job -- redlease-no-such-command`, exitNotFound},
		{`"$BIN" run job -- ` + notExec, exitNoExec},
	} {
		r := shell(t, env, tc.script)
		if r.code != tc.code {
			t.Fatalf("%s: want status %d: %v", tc.script, tc.code, r)
		}
		assertFree(t, srv, "job")
	}

	r := shell(t, env, `"$BIN" run --shell "reports:{eu}" -- 'echo "$REDLEASE_NAME|$REDLEASE_FENCE|$REDLEASE_TOKEN"'`)
	if r.code != 0 || !regexp.MustCompile(`^reports:\{eu\}\|[1-9][0-9]*\|[0-9a-f]{32}\n$`).MatchString(r.stdout) {
		t.Fatalf("want NAME|FENCE|TOKEN from the environment: %v", r)
	}
	assertFree(t, srv, "reports:{eu}")
}

// TestRunPrefix: --prefix decides the key.
func TestRunPrefix(t *testing.T) {
	srv, env := redisEnv(t)
	r := run(t, env, "run", "--prefix", "ops:", "job", "--", "sh", "-c", "echo $REDLEASE_NAME")
	if r.code != 0 {
		t.Fatal(r)
	}
	// The command ran under ops:{job}; it is gone after.
	n, err := srv.Client(t).Exists(context.Background(), "ops:{job}", lockKey("job")).Result()
	if err != nil || n != 0 {
		t.Fatalf("exists=%d err=%v", n, err)
	}
}

// holdUntilLost starts "redlease run" with a command that logs a TERM it
// gets and keeps running unless exitOnTerm, and waits until it runs.
func holdUntilLost(t *testing.T, env []string, name string, exitOnTerm bool, flags ...string) (dir string, wait func() result) {
	t.Helper()
	dir = t.TempDir()
	onTerm := `echo TERM >> ` + dir + `/log`
	if exitOnTerm {
		onTerm += `; exit 0`
	}
	script := `trap '` + onTerm + `' TERM; echo $$ > ` + dir + `/pid.tmp; mv ` + dir + `/pid.tmp ` + dir + `/pid; while :; do sleep 0.05; done`
	args := append(append([]string{"run"}, flags...), name, "--", "sh", "-c", script)
	_, wait = start(t, env, args...)
	waitFile(t, dir+"/pid", 20*time.Second)
	return dir, wait
}

// assertDead fails t if the process whose pid the command wrote still runs.
func assertDead(t *testing.T, dir string) {
	t.Helper()
	b, err := os.ReadFile(dir + "/pid")
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("the command (pid %d) still runs", pid)
	}
}

// TestRunLostKills: a lock deleted behind redlease's back is noticed at the
// next renewal; a command that ignores SIGTERM gets SIGKILL after --grace,
// and redlease exits 79, well within a bound.
func TestRunLostKills(t *testing.T) {
	srv, env := redisEnv(t)
	dir, wait := holdUntilLost(t, env, "lost", false, "--ttl", "1s", "--grace", "300ms")
	deleted := time.Now()
	if err := srv.Client(t).Del(context.Background(), lockKey("lost")).Err(); err != nil {
		t.Fatal(err)
	}
	r := wait()
	if r.code != exitLost || !strings.Contains(r.stderr, "lost the lock") {
		t.Fatalf("want status %d: %v", exitLost, r)
	}
	if took := time.Since(deleted); took > 10*time.Second {
		t.Fatalf("exited %v after the key was deleted (renewal every 333ms, grace 300ms)", took)
	}
	if b, _ := os.ReadFile(dir + "/log"); !strings.Contains(string(b), "TERM") {
		t.Fatalf("the command got no SIGTERM before SIGKILL: %v", r)
	}
	if !strings.Contains(r.stderr, "status 137") {
		t.Fatalf("want the command killed by SIGKILL: %v", r)
	}
	assertDead(t, dir)
}

// TestRunLostServerStopped: Redis stopped (SIGSTOP) past the TTL: the lease
// expires locally, the command gets SIGTERM and exits, redlease exits 79
// without waiting for Redis.
func TestRunLostServerStopped(t *testing.T) {
	srv, env := redisEnv(t)
	dir, wait := holdUntilLost(t, env, "stopped", true, "--ttl", "600ms", "--grace", "20s")
	if err := syscall.Kill(srv.Pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(srv.Pid(), syscall.SIGCONT)
	stopped := time.Now()
	r := wait()
	if r.code != exitLost || !strings.Contains(r.stderr, "lease: expired") || !strings.Contains(r.stderr, "status 0") {
		t.Fatalf("want status %d after an expiry, the command exiting 0 on TERM: %v", exitLost, r)
	}
	if took := time.Since(stopped); took > 10*time.Second {
		t.Fatalf("exited %v after Redis stopped (TTL 600ms)", took)
	}
	if b, _ := os.ReadFile(dir + "/log"); !strings.Contains(string(b), "TERM") {
		t.Fatalf("the command got no SIGTERM: %v", r)
	}
}

// TestRunForwardsSignals: SIGTERM and SIGINT sent to redlease reach the
// command; redlease exits with the command's status and releases the lock.
func TestRunForwardsSignals(t *testing.T) {
	srv, env := redisEnv(t)

	dir := t.TempDir()
	cmd, wait := start(t, env, "run", "job", "--", "sh", "-c",
		`trap 'echo TERM > `+dir+`/log; exit 3' TERM; touch `+dir+`/ready; while :; do sleep 0.05; done`)
	waitFile(t, dir+"/ready", 20*time.Second)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if r := wait(); r.code != 3 {
		t.Fatalf("SIGTERM: want the command's status 3: %v", r)
	}
	if b, _ := os.ReadFile(dir + "/log"); string(b) != "TERM\n" {
		t.Fatalf("the command logged %q, want one TERM", b)
	}
	assertFree(t, srv, "job")

	// A command that does not handle SIGINT dies of it: 128+2, as in a shell.
	cmd, wait = start(t, env, "run", "job", "--", "sh", "-c", `touch `+dir+`/ready2; exec sleep 60`)
	waitFile(t, dir+"/ready2", 20*time.Second)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if r := wait(); r.code != 128+2 {
		t.Fatalf("SIGINT: want status 130: %v", r)
	}
	assertFree(t, srv, "job")
}

// TestRunSignalWhileWaiting: a signal during the wait ends it with 128+N;
// the command never runs and nothing is left held by redlease.
func TestRunSignalWhileWaiting(t *testing.T) {
	srv, env := redisEnv(t)
	c := srv.Client(t)
	m, err := mutex.New(c, "held")
	if err != nil {
		t.Fatal(err)
	}
	l, err := m.TryLock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(context.Background())
	marker := filepath.Join(t.TempDir(), "ran")
	cmd, wait := start(t, env, "run", "held", "--", "touch", marker)
	// Waiting means subscribed to the name's wake-up channel.
	deadline := time.Now().Add(20 * time.Second)
	for {
		n, err := c.PubSubShardNumSub(context.Background(), lockKey("held")+":wake").Result()
		if err == nil && n[lockKey("held")+":wake"] > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("redlease did not start waiting: %v, %v", n, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r := wait()
	if r.code != 128+int(syscall.SIGTERM) || !strings.Contains(r.stderr, "nothing held") {
		t.Fatalf("want status 143: %v", r)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the command ran")
	}
	if ok, err := l.Owned(context.Background()); err != nil || !ok {
		t.Fatalf("the holder's lock: owned=%v err=%v", ok, err)
	}
}

// procState is the state letter of pid in /proc (T: stopped), "" if gone.
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+3 <= len(s) {
		return s[i+2 : i+3]
	}
	return ""
}

func waitState(t *testing.T, what string, pid int, want func(string) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !want(procState(pid)) {
		if time.Now().After(deadline) {
			t.Fatalf("%s (pid %d): state %q", what, pid, procState(pid))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRunCtrlZ: SIGTSTP stops the command (in its own process group) along
// with redlease, and SIGCONT to redlease continues both.
func TestRunCtrlZ(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc to read process states from")
	}
	_, env := redisEnv(t)
	dir := t.TempDir()
	cmd, wait := start(t, env, "run", "--ttl", "30s", "job", "--", "sh", "-c", `echo $$ > `+dir+`/pid.tmp; mv `+dir+`/pid.tmp `+dir+`/pid; while :; do sleep 0.05; done`)
	waitFile(t, dir+"/pid", 20*time.Second)
	b, _ := os.ReadFile(dir + "/pid")
	child, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	stopped := func(s string) bool { return s == "T" }
	running := func(s string) bool { return s != "T" && s != "" }
	if err := cmd.Process.Signal(syscall.SIGTSTP); err != nil {
		t.Fatal(err)
	}
	waitState(t, "redlease after SIGTSTP", cmd.Process.Pid, stopped)
	waitState(t, "the command after SIGTSTP", child, stopped)
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitState(t, "redlease after SIGCONT", cmd.Process.Pid, running)
	waitState(t, "the command after SIGCONT", child, running)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if r := wait(); r.code != 128+int(syscall.SIGTERM) {
		t.Fatalf("want the command's 143: %v", r)
	}
}
