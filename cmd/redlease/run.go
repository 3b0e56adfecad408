package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
)

// Environment variables the command gets.
const (
	envLockName  = "REDLEASE_NAME"
	envLockFence = "REDLEASE_FENCE"
	envLockToken = "REDLEASE_TOKEN"
)

// groupPoll is how often a lost run checks whether the command's process
// group has emptied before its grace period ends.
const groupPoll = 50 * time.Millisecond

var runCommand = &command{
	name: "run",
	synopsis: []string{
		"[flags] NAME -- COMMAND [ARG...]",
		"[flags] --shell NAME -- 'SCRIPT' [ARG...]",
	},
	summary: "hold the lock NAME while a command runs",
	details: `
Acquires the lock NAME (waiting at most --wait), runs COMMAND with the lock in
its environment, and renews the lock while it runs. When the command exits,
the lock is released and redlease exits with the command's status (128+N if
signal N killed it).

The command gets ` + envLockName + `, ` + envLockFence + ` (the fencing token: larger for every
acquisition of NAME; pass it to storage that refuses stale writers) and
` + envLockToken + ` (the holder's token) in its environment; stdin, stdout and
stderr are redlease's own. With --shell, SCRIPT is run by "sh -c SCRIPT sh ARG...".

The command runs in a process group of its own. SIGINT, SIGTERM, SIGHUP,
SIGQUIT, SIGUSR1 and SIGUSR2 sent to redlease are passed on to that group (so
Ctrl-C reaches the command once, through redlease) and redlease keeps the lock
until the command has exited, then releases it. A signal while waiting for the
lock ends the wait with 128+N, holding nothing. Ctrl-Z (SIGTSTP) stops the
command's group and redlease; fg or bg continues both (a stop longer than
--ttl loses the lock). Being in its own group, the command is not the
terminal's foreground job: run non-interactive commands.
On Linux the command gets SIGKILL if redlease itself dies (kill -9), so it
does not outlive a lock nobody renews.

If the lock is lost while the command runs (it expired because Redis could not
be reached, or its key was deleted or taken), the command's process group gets
SIGTERM, then SIGKILL once --grace has passed, and redlease exits with 79
after the command has exited. A lock found lost at the release after the
command exited also gives 79: the command's work may have overlapped with
another holder's. Processes the command leaves running in the background are
not waited for, except in a lost run (up to --grace).

A lock revoked by "redlease unlock --force" (or mutex.Revoke) is a loss told
at once: the command gets SIGTERM about one round trip to Redis later, not at
the next renewal, then SIGKILL after --grace as above, and redlease exits 80.`,
	conn:        true,
	passThrough: true,
	exits:       []int{exitOK, exitUsage, exitUnavailable, exitInternal, exitBusy, exitLost, exitRevoked, exitNoExec, exitNotFound},
	setup: func(fs *flag.FlagSet, _ *connFlags) func(*invocation, []string) error {
		o := &runOpts{wait: waitFlag{forever: true}}
		fs.DurationVar(&o.ttl, "ttl", 10*time.Second, "lock `TTL`: how long the lock outlives a redlease that stops renewing it; renewed every TTL/3")
		fs.Var(&o.wait, "wait", "longest time to wait for the lock: a `duration`, 0 to try once, or \"forever\"")
		fs.DurationVar(&o.grace, "grace", 10*time.Second, "time between SIGTERM and SIGKILL when the lock is lost")
		fs.BoolVar(&o.shell, "shell", false, "run 'SCRIPT' with sh -c")
		return o.run
	},
}

// waitFlag is --wait: a duration >= 0 or "forever".
type waitFlag struct {
	d       time.Duration
	forever bool
}

func (w *waitFlag) String() string {
	if w == nil || w.forever {
		return "forever"
	}
	return w.d.String()
}

func (w *waitFlag) Set(s string) error {
	if s == "forever" {
		*w = waitFlag{forever: true}
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration such as 30s or 5m, 0, or forever")
	}
	if d < 0 {
		return fmt.Errorf("negative wait %v: use forever to wait without limit", d)
	}
	*w = waitFlag{d: d}
	return nil
}

type runOpts struct {
	ttl, grace time.Duration
	wait       waitFlag
	shell      bool
}

// args splits NAME -- COMMAND [ARG...] and builds the command line.
func (o *runOpts) args(args []string) (name string, argv []string, err error) {
	if len(args) == 0 {
		return "", nil, exitf(exitUsage, "missing lock NAME and COMMAND")
	}
	name, rest := args[0], args[1:]
	switch {
	case len(rest) > 0 && rest[0] == "--":
		rest = rest[1:]
	case len(rest) > 0 && strings.HasPrefix(rest[0], "-"):
		return "", nil, exitf(exitUsage, "flag %q after NAME: flags go before NAME, the command after --", rest[0])
	}
	if len(rest) == 0 {
		return "", nil, exitf(exitUsage, "missing COMMAND after NAME %q", name)
	}
	if o.shell {
		return name, append([]string{"sh", "-c", rest[0], "sh"}, rest[1:]...), nil
	}
	return name, rest, nil
}

func (o *runOpts) run(inv *invocation, args []string) error {
	name, argv, err := o.args(args)
	if err != nil {
		return err
	}
	if o.grace < 0 {
		return exitf(exitUsage, "--grace %v: must not be negative", o.grace)
	}
	client, t, err := inv.conn.connect(inv.getenv)
	if err != nil {
		return err
	}
	defer client.Close()
	m, err := inv.conn.mutex(client, name, inv.getenv, mutex.WithTTL(o.ttl))
	if err != nil {
		return err
	}

	// Signals are caught from here on: one during the wait ends it cleanly.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, forwardSignals...)
	defer signal.Stop(sigs)

	l, err := o.acquire(m, client, t, sigs)
	if err != nil {
		return err
	}
	return o.supervise(inv, l, argv, sigs)
}

// acquire pings Redis and takes the lock, giving up on --wait or on a
// signal. It returns only once its own goroutine has ended.
func (o *runOpts) acquire(m *mutex.Mutex, client redis.UniversalClient, t *target, sigs <-chan os.Signal) (*lease.Lease, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		l   *lease.Lease
		err error
	}
	done := make(chan result, 1)
	go func() {
		l, err := o.tryAcquire(ctx, m, client, t)
		done <- result{l, err}
	}()
	var caught os.Signal
	for {
		select {
		case s := <-sigs:
			if stop, cont := jobControl(s); stop || cont {
				if stop {
					suspend(nil)
				}
				continue
			}
			if caught == nil {
				caught = s
				cancel()
			}
		case r := <-done:
			if caught != nil {
				if r.l != nil {
					_ = release(r.l) // won the race with the signal; on failure the key expires with its TTL
				}
				return nil, exitf(128+signalNumber(caught), "%v while waiting for the lock %q; nothing held", caught, m.Name())
			}
			return r.l, r.err
		}
	}
}

func (o *runOpts) tryAcquire(ctx context.Context, m *mutex.Mutex, client redis.UniversalClient, t *target) (*lease.Lease, error) {
	if err := ping(ctx, client, t); err != nil {
		return nil, err
	}
	var (
		l   *lease.Lease
		err error
	)
	switch {
	case o.wait.forever:
		l, err = m.Lock(ctx)
	case o.wait.d == 0:
		l, err = m.TryLock(ctx)
	default:
		wctx, cancel := context.WithTimeout(ctx, o.wait.d)
		l, err = m.Lock(wctx)
		cancel()
	}
	if err == nil {
		return l, nil
	}
	switch {
	case errors.Is(err, mutex.ErrLocked), errors.Is(err, context.DeadlineExceeded) && onlyContext(err):
		if !o.wait.forever && o.wait.d == 0 {
			return nil, exitf(exitBusy, "not acquired in one attempt (--wait 0): %v", err)
		}
		return nil, exitf(exitBusy, "not acquired within --wait %v: %v", o.wait.String(), err)
	case errors.Is(err, mutex.ErrInvalid):
		return nil, &exitError{code: exitUsage, err: err}
	default:
		return nil, exitf(exitUnavailable, "Redis at %s: %v", t.desc, err)
	}
}

// onlyContext reports whether every error err wraps, at the leaves, is a
// context error: the wait ended before any attempt failed for another reason.
func onlyContext(err error) bool {
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		if next := u.Unwrap(); next != nil {
			return onlyContext(next)
		}
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if !onlyContext(e) {
				return false
			}
		}
		return true
	}
	return err == context.DeadlineExceeded || err == context.Canceled
}

// supervise runs the command under l and returns how redlease should exit.
// It returns once the command has exited and l has ended.
func (o *runOpts) supervise(inv *invocation, l *lease.Lease, argv []string, sigs <-chan os.Signal) error {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(),
		envLockName+"="+l.Name(),
		envLockFence+"="+strconv.FormatInt(l.Fence(), 10),
		envLockToken+"="+l.Token(),
	)
	prepare(cmd)
	if err := cmd.Start(); err != nil {
		_ = release(l) // on failure the key expires with its TTL
		code := exitNoExec
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
			code = exitNotFound
		}
		return &exitError{code: code, err: err}
	}
	// Wait's error is only the exit status here (no I/O is copied: the
	// command has redlease's own files); ProcessState has it.
	waitc := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(waitc)
	}()

	lostc := l.Lost()
	var (
		lost   error // why the lock was lost while the command ran
		grace  *time.Timer
		gracec <-chan time.Time
		killed bool
	)
	defer func() {
		if grace != nil {
			grace.Stop()
		}
	}()
	// kill ends the grace period: the command's process group gets SIGKILL.
	kill := func() {
		if !killed {
			killed = true
			_ = signalCommand(cmd, killSignal)
		}
	}
	for waitc != nil {
		select {
		case s := <-sigs:
			forward(cmd, s)
		case <-lostc:
			lostc, lost = nil, l.Err()
			what := "lost the lock"
			if errors.Is(lost, lease.ErrRevoked) {
				what = "revoked: the lock"
			}
			fmt.Fprintf(inv.stderr, "redlease run: %s %q (%v); sending SIGTERM to the command, SIGKILL in %v\n", what, l.Name(), lost, o.grace)
			_ = signalCommand(cmd, termSignal)
			_ = signalCommand(cmd, contSignal) // a stopped command must run to handle TERM
			grace = time.NewTimer(o.grace)
			gracec = grace.C
		case <-gracec:
			gracec = nil
			kill()
		case <-waitc:
			waitc = nil
		}
	}
	status := exitStatus(cmd.ProcessState)

	if lost != nil {
		// The command has exited; what it left in its group gets the rest
		// of the grace period.
		for gracec != nil && groupAlive(cmd) {
			select {
			case <-gracec:
				gracec = nil
			case s := <-sigs:
				forward(cmd, s)
			case <-time.After(groupPoll):
			}
		}
		if gracec == nil {
			kill()
		}
		if errors.Is(lost, lease.ErrRevoked) {
			return exitf(exitRevoked, "the lock %q was revoked while the command ran (%v); the command exited with status %d", l.Name(), lost, status)
		}
		return exitf(exitLost, "lost the lock %q while the command ran (%v); the command exited with status %d", l.Name(), lost, status)
	}
	if err := release(l); err != nil {
		if !isLoss(err) {
			fmt.Fprintf(inv.stderr, "redlease run: warning: %v (the lock expires after its TTL)\n", err)
			return &exitError{code: status}
		}
		if errors.Is(err, lease.ErrRevoked) {
			return exitf(exitRevoked, "the lock %q was revoked before the command finished (%v); the command exited with status %d", l.Name(), err, status)
		}
		return exitf(exitLost, "the lock %q was lost before the command finished (%v); the command exited with status %d", l.Name(), err, status)
	}
	return &exitError{code: status}
}

// release releases l within lease.ReleaseTimeout.
func release(l *lease.Lease) error {
	ctx, cancel := context.WithTimeout(context.Background(), lease.ReleaseTimeout)
	defer cancel()
	return l.Release(ctx)
}

// forward passes s on to the command's process group; Ctrl-Z stops the
// command and redlease.
func forward(cmd *exec.Cmd, s os.Signal) {
	if stop, _ := jobControl(s); stop {
		suspend(cmd)
		return
	}
	_ = signalCommand(cmd, s)
}

// isLoss reports whether a Release error says the lease was lost before it
// (rather than Redis failing during the release).
func isLoss(err error) bool {
	return errors.Is(err, lease.ErrNotHeld) || errors.Is(err, lease.ErrExpired)
}
