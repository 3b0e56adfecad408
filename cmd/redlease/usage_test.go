package main

import (
	"runtime"
	"strings"
	"testing"
)

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		r := run(t, cmdEnv(), args...)
		if r.code != exitOK || !strings.Contains(r.stdout, "Exit statuses:") || !strings.Contains(r.stdout, "run ") {
			t.Fatalf("%v: %v", args, r)
		}
		for _, code := range []string{" 64 ", " 69 ", " 75 ", " 79 ", " 80 ", " 81 ", "\n  status ", "\n  unlock "} {
			if !strings.Contains(r.stdout, code) {
				t.Errorf("%v: no exit status %q in:\n%s", args, code, r.stdout)
			}
		}
	}
	for _, args := range [][]string{{"run", "--help"}, {"run", "-h"}, {"help", "run"}} {
		r := run(t, cmdEnv(), args...)
		if r.code != exitOK {
			t.Fatalf("%v: %v", args, r)
		}
		for _, want := range []string{"--ttl", "--wait", "--grace", "--shell", "--url", "--cluster", "--sentinel", "--master", "--prefix",
			"REDIS_URL", "REDIS_CLUSTER_ADDRS", "REDIS_SENTINEL_ADDRS", "REDIS_SENTINEL_MASTER", "REDLEASE_FENCE", "Exit statuses:", " 79 ", " 80 ", " 75 "} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("%v: no %q in:\n%s", args, want, r.stdout)
			}
		}
	}
}

func TestHelpStatusUnlock(t *testing.T) {
	for cmd, wants := range map[string][]string{
		"status": {"--json", "--held", "ttl_ms", "--url", "Exit statuses:", " 69 ", " 81 "},
		"unlock": {"--force", "--yes", "--token", "--url", "Exit statuses:", "  1 ", " 64 ", " 69 ", " 81 "},
	} {
		r := run(t, cmdEnv(), cmd, "--help")
		if r.code != exitOK {
			t.Fatalf("%s --help: %v", cmd, r)
		}
		for _, want := range wants {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("%s --help: no %q in:\n%s", cmd, want, r.stdout)
			}
		}
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		r := run(t, cmdEnv(), args...)
		if r.code != exitOK || !strings.HasPrefix(r.stdout, "redlease ") || !strings.Contains(r.stdout, runtime.Version()) {
			t.Fatalf("%v: %v", args, r)
		}
	}
}

// TestUsageErrors: every mistake in flags, arguments or connection settings
// exits 64 with a message naming it, before Redis is contacted (none runs
// here: the default address would be refused or hang otherwise).
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		args []string
		want string
	}{
		{nil, nil, "Usage: redlease COMMAND"},
		{nil, []string{"frobnicate"}, `unknown command "frobnicate"`},
		{nil, []string{"help", "frobnicate"}, `unknown command "frobnicate"`},
		{nil, []string{"version", "extra"}, `unexpected argument "extra"`},
		{nil, []string{"run"}, "missing lock NAME"},
		{nil, []string{"run", "job"}, `missing COMMAND after NAME "job"`},
		{nil, []string{"run", "job", "--"}, `missing COMMAND after NAME "job"`},
		{nil, []string{"run", "--nope", "job", "--", "true"}, "flag provided but not defined: -nope"},
		{nil, []string{"run", "job", "--ttl", "5s", "--", "true"}, "flags go before NAME"},
		{nil, []string{"run", "--ttl", "soon", "job", "--", "true"}, `invalid value "soon" for flag -ttl`},
		{nil, []string{"run", "--ttl", "1ms", "job", "--", "true"}, "TTL 1ms: must be at least 10ms"},
		{nil, []string{"run", "--wait", "-1s", "job", "--", "true"}, "use forever to wait without limit"},
		{nil, []string{"run", "--wait", "later", "job", "--", "true"}, "want a duration"},
		{nil, []string{"run", "--grace", "-1s", "job", "--", "true"}, "--grace -1s: must not be negative"},
		{nil, []string{"run", "}job", "--", "true"}, "empty hash tag"},
		{nil, []string{"run", "--url", "http://x", "job", "--", "true"}, "bad Redis URL"},
		{nil, []string{"run", "--url", "redis://x:1", "--cluster", "y:1", "job", "--", "true"}, "more than one of the flags"},
		{[]string{"REDIS_URL=redis://x:1", "REDIS_CLUSTER_ADDRS=y:1"}, []string{"run", "job", "--", "true"}, "more than one of the variables"},
		{nil, []string{"run", "--cluster", "nohostport", "job", "--", "true"}, `bad address "nohostport"`},
		{nil, []string{"run", "--sentinel", "s:26379", "job", "--", "true"}, "no Sentinel master name"},
		{nil, []string{"run", "--master", "mymaster", "job", "--", "true"}, "needs Sentinel addresses"},
		{nil, []string{"status"}, "missing lock NAME"},
		{nil, []string{"status", "job", "--json"}, "flags go before the names"},
		{nil, []string{"status", "ok", "}job"}, "empty hash tag"},
		{nil, []string{"unlock"}, "missing lock NAME"},
		{nil, []string{"unlock", "job"}, "give --force"},
		{nil, []string{"unlock", "--yes", "job"}, "give --force"},
		{nil, []string{"unlock", "--force", "job", "--yes"}, `unexpected argument "--yes"`},
		{nil, []string{"unlock", "--force", "job"}, "stdin is not a terminal"},
		{nil, []string{"unlock", "--force", "--token", "", "job"}, "--token is empty"},
		{nil, []string{"unlock", "--force", "--yes", "}job"}, "empty hash tag"},
	} {
		r := run(t, cmdEnv(tc.env...), tc.args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v %v: want status %d and %q on stderr; got %v", tc.env, tc.args, exitUsage, tc.want, r)
		}
	}
}
