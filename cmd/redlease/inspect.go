package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redlease/redlease/mutex"
)

// callTimeout bounds each Inspect or Revoke call.
const callTimeout = 10 * time.Second

var statusCommand = &command{
	name:     "status",
	synopsis: []string{"[--json] [--held] NAME..."},
	summary:  "show who holds each lock NAME: token, fence, TTL, waiters",
	details: `
Reads each lock NAME (one read-only script call per name) and prints one line
per name: NAME, HOLDER (the holder's token, or "free"), FENCE (the holder's
fencing token), TTL (the key's remaining time; the holder renews it every
TTL/3) and WAITERS (processes waiting for the lock, as Redis counts the
subscribers of its wake-up channel; "?" when the server cannot tell). The
answer may be stale by the time it is printed.

With --json it prints a JSON array instead, one object per NAME in argument
order: {"name", "held", "token", "fence", "ttl_ms", "waiters"}; token is "",
fence and ttl_ms are 0 for a free lock, waiters is -1 when unknown.

A free lock is not an error: status exits 0 once every name was read. With
--held it exits 81 when any name is free (after printing all of them), for
scripts that ask "is it running somewhere?".`,
	conn:  true,
	exits: []int{exitOK, exitUsage, exitUnavailable, exitInternal, exitNotHeld},
	setup: func(fs *flag.FlagSet, _ *connFlags) func(*invocation, []string) error {
		o := &statusOpts{}
		fs.BoolVar(&o.json, "json", false, "print a JSON array of objects instead of a table")
		fs.BoolVar(&o.held, "held", false, "exit 81 if any NAME is free")
		return o.run
	},
}

type statusOpts struct {
	json, held bool
}

// statusJSON is one element of status --json; the field names are stable.
type statusJSON struct {
	Name    string `json:"name"`
	Held    bool   `json:"held"`
	Token   string `json:"token"`
	Fence   int64  `json:"fence"`
	TTLms   int64  `json:"ttl_ms"`
	Waiters int64  `json:"waiters"`
}

func (o *statusOpts) run(inv *invocation, args []string) error {
	if len(args) == 0 {
		return exitf(exitUsage, "missing lock NAME")
	}
	client, t, err := inv.conn.connect(inv.getenv)
	if err != nil {
		return err
	}
	defer client.Close()
	// Every name is checked before Redis is contacted.
	ms := make([]*mutex.Mutex, len(args))
	for i, name := range args {
		if strings.HasPrefix(name, "-") {
			return exitf(exitUsage, "flag %q after NAME: flags go before the names", name)
		}
		if ms[i], err = inv.conn.mutex(client, name, inv.getenv); err != nil {
			return err
		}
	}
	if err := ping(context.Background(), client, t); err != nil {
		return err
	}
	sts := make([]mutex.Status, len(ms))
	for i, m := range ms {
		if sts[i], err = inspect(m, t); err != nil {
			return err
		}
	}
	if o.json {
		out := make([]statusJSON, len(sts))
		for i, st := range sts {
			out[i] = statusJSON{Name: st.Name, Held: st.Held, Waiters: st.Waiters}
			if st.Held {
				out[i].Token, out[i].Fence, out[i].TTLms = st.Token, st.Fence, st.TTL.Milliseconds()
			}
		}
		enc := json.NewEncoder(inv.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(inv.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tHOLDER\tFENCE\tTTL\tWAITERS")
		for _, st := range sts {
			if st.Held {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", st.Name, st.Token, st.Fence, formatTTL(st.TTL), formatWaiters(st.Waiters))
			} else {
				fmt.Fprintf(tw, "%s\tfree\t-\t-\t%s\n", st.Name, formatWaiters(st.Waiters))
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if o.held {
		var free []string
		for _, st := range sts {
			if !st.Held {
				free = append(free, strconv.Quote(st.Name))
			}
		}
		if len(free) > 0 {
			return exitf(exitNotHeld, "not held: %s", strings.Join(free, ", "))
		}
	}
	return nil
}

// inspect reads m's status within callTimeout, mapping a failure to
// exitUnavailable.
func inspect(m *mutex.Mutex, t *target) (mutex.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	st, err := m.Inspect(ctx)
	if err != nil {
		return st, exitf(exitUnavailable, "Redis at %s: %v", t.desc, err)
	}
	return st, nil
}

func formatTTL(d time.Duration) string {
	if d < 0 {
		return "-"
	}
	return d.Round(time.Millisecond).String()
}

func formatWaiters(n int64) string {
	if n < 0 {
		return "?"
	}
	return strconv.FormatInt(n, 10)
}

var unlockCommand = &command{
	name:     "unlock",
	synopsis: []string{"--force [--yes | --token TOKEN] NAME"},
	summary:  "revoke the lock NAME from its holder (--force)",
	details: `
Forcibly takes the lock NAME from whoever holds it: the hold is deleted, so
another client may acquire NAME at once, and the holder is told — a
"redlease run" holding it sends SIGTERM to its command about one round trip
later and exits 80. A holder Redis cannot reach (partitioned, paused) learns
it only when its lease expires, and may act as the holder until then: only
fencing protects what the lock guards. --force is required, to say you mean
that.

unlock first reads and prints the holder's token, fence and TTL, then revokes
that hold only if it still has the token: a holder that released it and a
newer holder are never touched (exit 81). Which token:
  --token TOKEN  revoke the hold with TOKEN (from status, or a command's
                 $REDLEASE_TOKEN); 81 if the lock is no longer held with it
  --yes          revoke the hold just shown
  neither        stdin must be a terminal: unlock asks you to type the token
                 shown (or "yes"); any other answer revokes nothing (exit 1)

A revocation whose reply is lost (69) may or may not have happened; running
the same unlock --token again is safe: it exits 0, saying "revoked already",
while Redis remembers the revocation (as long as the hold would have lived).`,
	conn:  true,
	exits: []int{exitOK, exitDeclined, exitUsage, exitUnavailable, exitInternal, exitNotHeld},
	setup: func(fs *flag.FlagSet, _ *connFlags) func(*invocation, []string) error {
		o := &unlockOpts{}
		fs.BoolVar(&o.force, "force", false, "required: take the lock from its holder")
		fs.BoolVar(&o.yes, "yes", false, "revoke the holder shown without asking")
		fs.StringVar(&o.token, "token", "", "revoke only the hold with `TOKEN`")
		return o.run
	},
}

type unlockOpts struct {
	force, yes bool
	token      string
}

func (o *unlockOpts) run(inv *invocation, args []string) error {
	switch {
	case len(args) == 0:
		return exitf(exitUsage, "missing lock NAME")
	case len(args) > 1:
		return exitf(exitUsage, "unexpected argument %q: unlock takes one NAME, flags before it", args[1])
	case !o.force:
		return exitf(exitUsage, "unlock takes the lock %q from its holder, whose command is stopped; give --force to do that", args[0])
	case o.token == "" && inv.conn.set["token"]:
		return exitf(exitUsage, "--token is empty")
	case o.token == "" && !o.yes && !inv.terminal:
		return exitf(exitUsage, "stdin is not a terminal to confirm on: give --yes to revoke the holder shown, or --token TOKEN")
	}
	client, t, err := inv.conn.connect(inv.getenv)
	if err != nil {
		return err
	}
	defer client.Close()
	m, err := inv.conn.mutex(client, args[0], inv.getenv)
	if err != nil {
		return err
	}
	if err := ping(context.Background(), client, t); err != nil {
		return err
	}
	st, err := inspect(m, t)
	if err != nil {
		return err
	}
	if st.Held {
		fmt.Fprintf(inv.stdout, "%s: held by %s, fence %d, TTL %s, waiters %s\n", st.Name, st.Token, st.Fence, formatTTL(st.TTL), formatWaiters(st.Waiters))
	} else {
		fmt.Fprintf(inv.stdout, "%s: free\n", st.Name)
	}
	token := o.token
	switch {
	case token != "":
	case !st.Held:
		return exitf(exitNotHeld, "the lock %q is free; nothing to revoke", st.Name)
	case o.yes:
		token = st.Token
	default:
		ok, err := confirm(inv, st)
		if err != nil {
			return err
		}
		if !ok {
			return exitf(exitDeclined, "not confirmed; nothing revoked")
		}
		token = st.Token
	}
	return revoke(inv, m, t, token, st.Held && st.Token == token)
}

// confirm asks on stderr for the token shown or "yes" and reads one line.
func confirm(inv *invocation, st mutex.Status) (bool, error) {
	fmt.Fprintf(inv.stderr, "Revoke it? Its holder loses the lock. Type the token shown, or yes: ")
	line, err := bufio.NewReader(inv.stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return false, exitf(exitUsage, "reading the answer: %v", err)
	}
	if err != nil && line == "" {
		fmt.Fprintln(inv.stderr)
	}
	answer := strings.TrimSpace(line)
	return answer == "yes" || answer == st.Token, nil
}

// revoke revokes the hold with token, mapping the outcome to a status;
// shown says the status just printed had that token.
func revoke(inv *invocation, m *mutex.Mutex, t *target, token string, shown bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	switch err := m.Revoke(ctx, token); {
	case err == nil && !shown:
		// Revoke also succeeds on the tombstone of an earlier revocation.
		fmt.Fprintf(inv.stdout, "%s: %s was revoked already\n", m.Name(), token)
		return nil
	case err == nil:
		fmt.Fprintf(inv.stdout, "%s: revoked %s\n", m.Name(), token)
		return nil
	case errors.Is(err, mutex.ErrNotHeld):
		return exitf(exitNotHeld, "the lock %q is not held with token %s (free, or a newer holder); nothing revoked", m.Name(), token)
	case errors.Is(err, mutex.ErrInvalid):
		return &exitError{code: exitUsage, err: err}
	default:
		return exitf(exitUnavailable, "Redis at %s: %v (the revocation may or may not have happened; running unlock --token %s again is safe)", t.desc, err, token)
	}
}
