//go:build faults

package faults

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/mutex"
)

const childEnv = "REDLEASE_FAULTS_CHILD_ADDR"

// childMain is a holder process: it takes the lock "paused" with a 500ms
// TTL, prints "ACQUIRED <fence>", waits for a line on stdin, then tries a
// fenced write and a guarded write, and reports what happened and how long
// after it resumed its lease reported lost.
func childMain() int {
	addr := os.Getenv(childEnv)
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	ctx := context.Background()
	m, err := mutex.New(c, "paused", mutex.WithTTL(500*time.Millisecond), mutex.WithRenewInterval(100*time.Millisecond))
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	l, err := m.Lock(ctx)
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	fmt.Println("ACQUIRED", l.Fence())
	in := bufio.NewReader(os.Stdin)
	line, _ := in.ReadString('\n') // the parent sends the time it sent SIGCONT
	resumed, _ := strconv.ParseInt(strings.TrimSpace(line), 10, 64)
	// The work the holder was about to do when it was paused.
	applied, err := fencedIncr.Run(ctx, c, []string{"{paused}:register"}, l.Fence()).Int()
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	gerr := l.Guard(ctx, func(p redis.Pipeliner) error {
		p.Incr(ctx, "{paused}:guarded")
		return nil
	})
	<-l.Lost()
	lostAfter := time.Since(time.Unix(0, resumed))
	fmt.Printf("FENCED %d\nGUARD %v\nLOST %v %d\n", applied, gerr, l.Err(), lostAfter.Microseconds())
	_ = l.Release(ctx)
	return 0
}

// TestFaultPausedHolder: a holder process is stopped with SIGSTOP for longer
// than its TTL; another client takes the lock and writes. When the holder
// resumes, its fenced write and its guarded write are rejected and its lease
// reports lost at once.
func TestFaultPausedHolder(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	c := newClient(t, s, 2*time.Second)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+s)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	out := bufio.NewReader(stdout)
	first, _ := out.ReadString('\n')
	if !strings.HasPrefix(first, "ACQUIRED") {
		t.Fatalf("child: %q", first)
	}
	childFence, _ := strconv.ParseInt(strings.Fields(first)[1], 10, 64)

	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// Wait out the TTL, then take the lock and write with a newer fence.
	m, _ := mutex.New(c, "paused", mutex.WithTTL(5*time.Second))
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	l, err := m.Lock(lctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if l.Fence() <= childFence {
		t.Fatalf("new fence %d not above the paused holder's %d", l.Fence(), childFence)
	}
	if n, _ := fencedIncr.Run(ctx, c, []string{"{paused}:register"}, l.Fence()).Int(); n != 1 {
		t.Fatal("current holder's fenced write rejected")
	}
	if err := l.Guard(ctx, func(p redis.Pipeliner) error { p.Incr(ctx, "{paused}:guarded"); return nil }); err != nil {
		t.Fatal(err)
	}
	// Resume the paused holder while the new one still holds the lock.
	sent := time.Now()
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(stdin, "%d\n", sent.UnixNano())
	rest, _ := io.ReadAll(out)
	_ = cmd.Wait()
	report := string(rest)
	if !strings.Contains(report, "FENCED 0") {
		t.Fatalf("stale fenced write applied:\n%s", report)
	}
	if !strings.Contains(report, "GUARD lease") || !strings.Contains(report, "GUARD lease \"paused\": guard: lease: expired") && !strings.Contains(report, "not held") {
		t.Fatalf("stale guarded write not refused:\n%s", report)
	}
	value, _ := c.HGet(ctx, "{paused}:register", "value").Int()
	guarded, _ := c.Get(ctx, "{paused}:guarded").Int()
	if value != 1 || guarded != 1 {
		t.Fatalf("counters %d (fenced) and %d (guarded), want 1 and 1", value, guarded)
	}
	_ = l.Release(ctx)
	var lostErr string
	var lostUS int64
	for _, line := range strings.Split(report, "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "LOST" {
			lostErr = strings.Join(f[1:len(f)-1], " ")
			lostUS, _ = strconv.ParseInt(f[len(f)-1], 10, 64)
		}
	}
	result(t, "holder paused past its 500ms TTL: fenced write rejected, guarded write rejected, counters exact (1/1), Lost (%s) %v after SIGCONT",
		lostErr, (time.Duration(lostUS) * time.Microsecond).Round(time.Microsecond))
}
