//go:build !unix

package main

import (
	"os"
	"os/exec"
)

// forwardSignals are caught by redlease and passed on to the command.
var forwardSignals = []os.Signal{os.Interrupt}

var (
	termSignal os.Signal = os.Kill // no SIGTERM here: the command is killed at once
	killSignal os.Signal = os.Kill
	contSignal os.Signal // none
)

// jobControl reports false, false: no job control here.
func jobControl(os.Signal) (stop, cont bool) { return false, false }

// suspend does nothing: no job control here.
func suspend(*exec.Cmd) {}

// prepare does nothing: process groups are a Unix notion.
func prepare(*exec.Cmd) {}

// signalCommand sends s to the command (only os.Kill works on Windows).
func signalCommand(cmd *exec.Cmd, s os.Signal) error {
	if s == nil {
		return nil
	}
	if s == os.Kill {
		return cmd.Process.Kill()
	}
	return cmd.Process.Signal(s)
}

// groupAlive reports false: there is no group to wait for.
func groupAlive(*exec.Cmd) bool { return false }

// exitStatus is the command's exit code.
func exitStatus(ps *os.ProcessState) int { return ps.ExitCode() }

// signalNumber is N of 128+N: 2 for an interrupt.
func signalNumber(os.Signal) int { return 2 }
