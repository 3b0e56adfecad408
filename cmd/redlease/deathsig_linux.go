package main

import "syscall"

// setDeathSignal makes the kernel kill the command if redlease dies: a
// command must not outlive the renewals of its lock. Only the command itself
// gets it, not what it started.
func setDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
