// Package redistest starts real redis-server processes for tests, on free
// loopback ports, and kills them when the test ends.
//
// The binary is looked up on PATH. Without it, Start skips the test with a
// loud message, unless REDLEASE_REQUIRE_REDIS=1, in which case it fails.
package redistest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Required reports whether REDLEASE_REQUIRE_REDIS=1 is set.
func Required() bool { return os.Getenv("REDLEASE_REQUIRE_REDIS") == "1" }

// Binary returns the path of name (redis-server, redis-cli) or skips/fails t.
func Binary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		msg := fmt.Sprintf("*** %s not found on PATH: integration test skipped. Install Redis (apt-get install redis-server) or set REDLEASE_REQUIRE_REDIS=1 to make this a failure. ***", name)
		if Required() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Server is one redis-server process: a Node (see cluster.go) that is killed
// when its test ends.
type Server struct {
	*Node
	t testing.TB
}

// Start runs redis-server on a free loopback port, without persistence and
// with DEBUG enabled, plus extra config arguments ("--maxclients", "100").
// It is killed when t ends.
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	bin := Binary(t, "redis-server")
	n, err := newNode(t.TempDir(), "redis", bin, false, func(n *Node) ([]string, error) {
		return append([]string{
			"--port", strconv.Itoa(n.Port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", n.Dir, "--enable-debug-command", "yes", "--logfile", n.LogFile, "--daemonize", "no",
		}, extra...), nil
	})
	if err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	t.Cleanup(func() {
		n.Kill()
		n.closeAdmin()
	})
	return &Server{Node: n, t: t}
}

// WaitPing waits until a server at addr answers PING.
func WaitPing(addr string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()
	var err error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err = c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

// Restart kills the server and starts it again on the same port, empty.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	if err := s.launch(); err != nil {
		s.t.Fatalf("restart redis-server: %v", err)
	}
}

// NewClient returns a client of addr, closed when t ends.
func NewClient(t testing.TB, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// CommandCalls returns the calls counted by INFO commandstats per command
// (lower case, e.g. "evalsha", "set"), Lua-internal calls included.
func CommandCalls(ctx context.Context, c redis.UniversalClient) (map[string]int64, error) {
	info, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "cmdstat_") {
			continue
		}
		name, rest, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":")
		if !ok {
			continue
		}
		for _, f := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(f, "calls="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				out[name] = n
			}
		}
	}
	return out, nil
}
