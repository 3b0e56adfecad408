//go:build unix

package main

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// forwardSignals are caught by redlease and passed on to the command;
// SIGTSTP (Ctrl-Z) and SIGCONT are job control (see suspend).
var forwardSignals = []os.Signal{
	syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2,
	syscall.SIGTSTP, syscall.SIGCONT,
}

// jobControl reports whether s stops (Ctrl-Z) or continues a job.
func jobControl(s os.Signal) (stop, cont bool) {
	return s == syscall.SIGTSTP, s == syscall.SIGCONT
}

// suspend stops the command's process group (cmd may be nil), then
// redlease itself, as Ctrl-Z stops a job: the command is not in redlease's
// group, and must not run on while its lock is not renewed. The shell's fg
// or bg continues redlease, whose SIGCONT is passed on to the command.
func suspend(cmd *exec.Cmd) {
	if cmd != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGSTOP)
	}
	_ = syscall.Kill(os.Getpid(), syscall.SIGSTOP)
}

var (
	termSignal os.Signal = syscall.SIGTERM
	killSignal os.Signal = syscall.SIGKILL
	contSignal os.Signal = syscall.SIGCONT
)

// prepare puts the command in a process group of its own, so that a signal
// reaches everything it started (the commands of a shell script, a pipeline)
// and not redlease.
func prepare(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	setDeathSignal(cmd.SysProcAttr)
}

// signalCommand sends s to the command's process group.
func signalCommand(cmd *exec.Cmd, s os.Signal) error {
	sig, ok := s.(syscall.Signal)
	if !ok {
		return cmd.Process.Signal(s)
	}
	return syscall.Kill(-cmd.Process.Pid, sig)
}

// groupAlive reports whether the command's process group still has a member.
func groupAlive(cmd *exec.Cmd) bool {
	err := syscall.Kill(-cmd.Process.Pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// exitStatus is the status a shell reports for the command: its exit code,
// or 128+N when signal N killed it.
func exitStatus(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// signalNumber is N of 128+N, the status for "ended by signal s".
func signalNumber(s os.Signal) int {
	if sig, ok := s.(syscall.Signal); ok {
		return int(sig)
	}
	return 0
}
