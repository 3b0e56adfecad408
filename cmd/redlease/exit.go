package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
)

// Exit statuses of redlease's own outcomes, sysexits(3)-style where one
// fits. A command run by "redlease run" exits with its own status, passed
// through unchanged (128+N when signal N killed it, as shells report it), so
// a command that itself exits with one of these codes cannot be told apart by
// the status alone: redlease prints a "redlease: ..." line on stderr for
// each of its own.
const (
	exitOK          = 0
	exitDeclined    = 1   // unlock: the answer at the prompt did not confirm; nothing revoked
	exitUsage       = 64  // EX_USAGE: bad flags, arguments or environment values
	exitUnavailable = 69  // EX_UNAVAILABLE: Redis unreachable or failing
	exitInternal    = 70  // EX_SOFTWARE: an unexpected error inside redlease
	exitBusy        = 75  // EX_TEMPFAIL: the lock stayed held by another owner for the whole --wait
	exitLost        = 79  // run: the lock was lost (expired, deleted, taken) before the command finished
	exitRevoked     = 80  // run: the lock was revoked (unlock --force) before the command finished
	exitNotHeld     = 81  // status --held, unlock: a name is not held (or no longer with the token given)
	exitNotFound    = 127 // run: the command was not found (as in sh)
	exitNoExec      = 126 // run: the command was found but could not be executed (as in sh)
)

// exitInfo documents one status for --help and the README.
type exitInfo struct {
	code    int
	meaning string
}

// exitTable lists every status redlease itself may return. A command's help
// lists the entries named in its exits field, in this order.
var exitTable = []exitInfo{
	{exitOK, "success (run: the command exited 0 and the lock was released; status: every name was read; unlock: the hold was revoked)"},
	{exitDeclined, "unlock: the answer at the prompt was not the token or yes; nothing was revoked"},
	{exitUsage, "bad flags, arguments or environment values"},
	{exitUnavailable, "Redis unreachable or answering with errors"},
	{exitInternal, "internal error in redlease"},
	{exitBusy, "the lock stayed held by another owner for the whole --wait"},
	{exitLost, "the lock was lost (expired, deleted, or taken) before the command finished; the command was signalled"},
	{exitRevoked, "the lock was revoked (redlease unlock --force) before the command finished; the command was signalled"},
	{exitNotHeld, "not held: unlock found the lock free or held with another token than the one shown or given, and revoked nothing; status --held found a name free"},
	{exitNoExec, "the command could not be executed (permission denied, not an executable)"},
	{exitNotFound, "the command was not found"},
}

// exitError ends a command with code; err (if any) is printed on stderr.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// exitf returns an *exitError with code and a formatted message.
func exitf(code int, format string, args ...any) error {
	return &exitError{code: code, err: fmt.Errorf(format, args...)}
}

// exitCode maps err to a status: nil is exitOK, an *exitError its code,
// anything else exitInternal.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	return exitInternal
}

// writeExits prints the table rows for codes.
func writeExits(w io.Writer, codes []int) {
	for _, row := range exitTable {
		if slices.Contains(codes, row.code) {
			fmt.Fprintf(w, "  %3d  %s\n", row.code, row.meaning)
		}
	}
}
