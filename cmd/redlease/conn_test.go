package main

import (
	"flag"
	"io"
	"reflect"
	"testing"
)

// resolveArgs resolves the connection of "redlease run ARGS" with env.
func resolveArgs(t *testing.T, env map[string]string, args ...string) (*target, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cf := &connFlags{}
	cf.register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	cf.set = visited(fs)
	return cf.resolve(func(k string) string { return env[k] })
}

func TestResolve(t *testing.T) {
	t.Run("default", func(t *testing.T) {
		tg, err := resolveArgs(t, nil)
		if err != nil || tg.single == nil || tg.single.Addr != defaultAddr {
			t.Fatalf("got %+v, %v; want single %s", tg, err, defaultAddr)
		}
	})
	t.Run("url from env, TLS", func(t *testing.T) {
		tg, err := resolveArgs(t, map[string]string{envURL: "rediss://u:p@r.example:6380/2"})
		if err != nil || tg.single == nil || tg.single.Addr != "r.example:6380" || tg.single.DB != 2 || tg.single.TLSConfig == nil || tg.single.Password != "p" {
			t.Fatalf("got %+v, %v", tg, err)
		}
		if tg.desc != "r.example:6380" {
			t.Fatalf("desc %q: want the address without credentials", tg.desc)
		}
	})
	t.Run("flag overrides env", func(t *testing.T) {
		tg, err := resolveArgs(t, map[string]string{envURL: "redis://a:1", envSentinel: "s:1"}, "--cluster", "c1:7000, c2:7000,")
		if err != nil || tg.cluster == nil || !reflect.DeepEqual(tg.cluster.Addrs, []string{"c1:7000", "c2:7000"}) {
			t.Fatalf("got %+v, %v", tg, err)
		}
	})
	t.Run("cluster from env with credentials", func(t *testing.T) {
		tg, err := resolveArgs(t, map[string]string{envCluster: "c1:7000", envUsername: "u", envPassword: "p"})
		if err != nil || tg.cluster == nil || tg.cluster.Username != "u" || tg.cluster.Password != "p" {
			t.Fatalf("got %+v, %v", tg, err)
		}
	})
	t.Run("sentinel", func(t *testing.T) {
		tg, err := resolveArgs(t, map[string]string{envMaster: "mymaster", envSentinelPassword: "sp"}, "--sentinel", "s1:26379,s2:26379")
		if err != nil || tg.failover == nil || tg.failover.MasterName != "mymaster" || len(tg.failover.SentinelAddrs) != 2 || tg.failover.SentinelPassword != "sp" {
			t.Fatalf("got %+v, %v", tg, err)
		}
		tg, err = resolveArgs(t, map[string]string{envSentinel: "s1:26379", envMaster: "env"}, "--master", "flag")
		if err != nil || tg.failover == nil || tg.failover.MasterName != "flag" {
			t.Fatalf("got %+v, %v; want master from the flag", tg, err)
		}
	})
	t.Run("prefix", func(t *testing.T) {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		cf := &connFlags{}
		cf.register(fs)
		_ = fs.Parse([]string{"--prefix", ""})
		cf.set = visited(fs)
		if got := cf.mutexOptions(func(string) string { return "env:" }); len(got) != 1 {
			t.Fatalf("an explicit empty --prefix: got %d options, want 1", len(got))
		}
		cf.set = map[string]bool{}
		if got := cf.keyPrefix(func(string) string { return "env:" }); got != "env:" {
			t.Fatalf("prefix %q, want env:", got)
		}
	})
}
