// Command redlease runs a command while holding a redlease lock, renewing it
// while the command runs and stopping the command if the lock is lost; it
// also shows who holds a lock and revokes a hold.
//
//	go install github.com/redlease/redlease/cmd/redlease@latest
//	redlease run --wait 5m nightly-backup -- /usr/local/bin/backup.sh
//	redlease status nightly-backup
//	redlease unlock --force nightly-backup
//
// Run "redlease --help" and "redlease COMMAND --help" for flags, environment
// variables and exit statuses; the README's "Operating it" section has the
// same with examples.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/redis/go-redis/v9"
)

// command is one subcommand: its flags, its help and the function that runs it.
type command struct {
	name     string
	synopsis []string // usage lines after "redlease NAME"
	summary  string   // one line for the command list
	details  string   // paragraphs for --help
	conn     bool     // has the connection flags and environment
	exits    []int    // statuses it may return, listed in --help
	// passThrough: any other status is the run command's own.
	passThrough bool
	// setup registers the command's own flags on fs and returns the
	// function that runs it with the positional arguments.
	setup func(fs *flag.FlagSet, conn *connFlags) func(inv *invocation, args []string) error
}

// commands is the subcommand table, in help order.
var commands = []*command{runCommand, statusCommand, unlockCommand, versionCommand}

// invocation is what a command may touch of the process, so that the
// dispatcher can be tested in-process.
type invocation struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	terminal       bool // stdin is a terminal: a command may ask a question
	getenv         func(string) string
	conn           *connFlags // nil unless command.conn
}

func main() {
	// go-redis logs connection churn (a wake-up subscription closed under
	// it, a reconnect) on stderr; redlease reports what matters itself.
	redis.SetLogger(discardLogger{})
	os.Exit(dispatch(os.Args[1:], &invocation{
		stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr,
		terminal: isTerminal(os.Stdin), getenv: os.Getenv,
	}))
}

type discardLogger struct{}

func (discardLogger) Printf(context.Context, string, ...any) {}

// dispatch runs the subcommand named by args[0] and returns the exit status.
func dispatch(args []string, inv *invocation) int {
	if len(args) == 0 {
		writeUsage(inv.stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		if len(args) > 1 && args[0] == "help" {
			if c := lookup(args[1]); c != nil {
				writeHelp(inv.stdout, c)
				return exitOK
			}
			fmt.Fprintf(inv.stderr, "redlease: unknown command %q\n", args[1])
			return exitUsage
		}
		writeUsage(inv.stdout)
		return exitOK
	case "-version", "--version":
		args = []string{"version"}
	}
	c := lookup(args[0])
	if c == nil {
		fmt.Fprintf(inv.stderr, "redlease: unknown command %q (commands: %s)\nRun 'redlease --help' for usage.\n", args[0], names())
		return exitUsage
	}
	fs := flag.NewFlagSet("redlease "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var cf *connFlags
	if c.conn {
		cf = &connFlags{}
		cf.register(fs)
	}
	runFn := c.setup(fs, cf)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			writeHelp(inv.stdout, c)
			return exitOK
		}
		fmt.Fprintf(inv.stderr, "redlease %s: %v\nRun 'redlease %s --help' for usage.\n", c.name, err, c.name)
		return exitUsage
	}
	if cf != nil {
		cf.set = visited(fs)
	}
	inv.conn = cf
	err := runFn(inv, fs.Args())
	code := exitCode(err)
	var e *exitError
	if err != nil && (!errors.As(err, &e) || e.err != nil) {
		fmt.Fprintf(inv.stderr, "redlease %s: %v\n", c.name, err)
		if code == exitUsage {
			fmt.Fprintf(inv.stderr, "Run 'redlease %s --help' for usage.\n", c.name)
		}
	}
	return code
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

func names() string {
	var n []string
	for _, c := range commands {
		n = append(n, c.name)
	}
	return strings.Join(n, ", ")
}

func writeUsage(w io.Writer) {
	fmt.Fprint(w, "Usage: redlease COMMAND [flags] [arguments]\n\nRun commands under a distributed lock in Redis.\n\nCommands:\n")
	var codes []int
	for _, c := range commands {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
		codes = append(codes, c.exits...)
	}
	fmt.Fprint(w, "\nRun 'redlease COMMAND --help' for a command's flags, environment and exit statuses.\n\nExit statuses:\n")
	writeExits(w, codes) // in table order, once each
	fmt.Fprint(w, "  Any other status of 'redlease run' is the command's own (128+N: killed by signal N).\n")
}

func writeHelp(w io.Writer, c *command) {
	for i, s := range c.synopsis {
		prefix := "Usage: "
		if i > 0 {
			prefix = "       "
		}
		fmt.Fprintf(w, "%sredlease %s %s\n", prefix, c.name, s)
	}
	fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.details))
	own := flag.NewFlagSet(c.name, flag.ContinueOnError)
	c.setup(own, nil)
	writeFlags(w, "Flags", own)
	if c.conn {
		conn := flag.NewFlagSet(c.name, flag.ContinueOnError)
		(&connFlags{}).register(conn)
		writeFlags(w, "Connection flags", conn)
	}
	if c.conn {
		fmt.Fprint(w, "\nEnvironment:\n"+connEnvHelp)
	}
	if len(c.exits) > 0 {
		fmt.Fprint(w, "\nExit statuses:\n")
		writeExits(w, c.exits)
		if c.passThrough {
			fmt.Fprint(w, "  Any other status is the command's own (128+N: killed by signal N).\n")
		}
	}
}

// writeFlags lists the flags of fs under title, as --name.
func writeFlags(w io.Writer, title string, fs *flag.FlagSet) {
	first := true
	fs.VisitAll(func(f *flag.Flag) {
		if first {
			fmt.Fprintf(w, "\n%s:\n", title)
			first = false
		}
		arg, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if arg != "" {
			line += " " + arg
		}
		fmt.Fprintf(w, "%s\n        %s", line, usage)
		if f.DefValue != "" && f.DefValue != "false" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

var versionCommand = &command{
	name:     "version",
	synopsis: []string{""},
	summary:  "print the version of redlease and the Go it was built with",
	details:  "Prints the module version (\"(devel)\" for a build from a checkout), the VCS revision when the build recorded one, and the Go version.",
	exits:    []int{exitOK, exitUsage},
	setup: func(*flag.FlagSet, *connFlags) func(*invocation, []string) error {
		return func(inv *invocation, args []string) error {
			if len(args) > 0 {
				return exitf(exitUsage, "unexpected argument %q", args[0])
			}
			fmt.Fprintln(inv.stdout, versionString())
			return nil
		}
	},
}

func versionString() string {
	version, rev := "(unknown)", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		version = bi.Main.Version
		var modified bool
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if rev != "" && modified {
			rev += "+modified"
		}
	}
	s := "redlease " + version
	if rev != "" {
		s += " (" + rev + ")"
	}
	return fmt.Sprintf("%s %s %s/%s", s, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
