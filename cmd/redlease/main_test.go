package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/redlease/redlease/internal/leaktest"
)

// bin is the redlease binary built once by TestMain.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "redlease-cli-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "redlease")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	goleak.VerifyTestMain(m, append(leaktest.Options(), goleak.Cleanup(func(code int) {
		os.RemoveAll(dir)
		os.Exit(code)
	}))...)
}

// runLimit bounds every run of the binary; no test run comes near it.
const runLimit = 60 * time.Second

// result is what a run of the binary (or a shell script) left.
type result struct {
	code           int
	stdout, stderr string
	took           time.Duration
}

// cmdEnv is the environment of the binary: this process's, without any
// connection variables of the machine, plus extra.
func cmdEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "REDIS_") || strings.HasPrefix(kv, "REDLEASE_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// start starts the binary with args; wait collects its result.
func start(t *testing.T, env []string, args ...string) (*exec.Cmd, func() result) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runLimit)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	began := time.Now()
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %v: %v", args, err)
	}
	var r *result
	wait := func() result {
		if r != nil {
			return *r
		}
		err := cmd.Wait()
		timedOut := ctx.Err() != nil
		cancel()
		r = &result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String(), took: time.Since(began)}
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("wait %v: %v", args, err)
		}
		if timedOut && !t.Failed() {
			t.Fatalf("%v still running after %v; stderr:\n%s", args, runLimit, r.stderr)
		}
		return *r
	}
	t.Cleanup(func() {
		if r == nil { // the test failed before waiting: do not wait for runLimit
			_ = cmd.Process.Kill()
			wait()
		}
	})
	return cmd, wait
}

// run runs the binary with args to the end.
func run(t *testing.T, env []string, args ...string) result {
	t.Helper()
	_, wait := start(t, env, args...)
	return wait()
}

// shell runs script with sh -c, with $BIN set to the binary.
func shell(t *testing.T, env []string, script string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", script)
	cmd.Env = append(env, "BIN="+bin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	began := time.Now()
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("sh -c: %v", err)
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String(), took: time.Since(began)}
}

func (r result) String() string {
	return fmt.Sprintf("status %d after %v\nstdout:\n%s\nstderr:\n%s", r.code, r.took.Round(time.Millisecond), r.stdout, r.stderr)
}

// waitFile waits until path exists (written by a command under test).
func waitFile(t *testing.T, path string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not written within %v", path, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
