// Package redistest starts real redis-server processes for tests, on free
// loopback ports, and kills them when the test ends.
//
// The binary is looked up on PATH. Without it, Start skips the test with a
// loud message, unless REDLEASE_REQUIRE_REDIS=1, in which case it fails.
package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
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
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Server is one redis-server process.
type Server struct {
	t    testing.TB
	Port int
	Addr string
	Dir  string
	args []string
	cmd  *exec.Cmd
}

// Start runs redis-server on a free loopback port, without persistence and
// with DEBUG enabled, plus extra config arguments ("--maxclients", "100").
// It is killed when t ends.
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	bin := Binary(t, "redis-server")
	dir := t.TempDir()
	port := FreePort(t)
	s := &Server{t: t, Port: port, Addr: fmt.Sprintf("127.0.0.1:%d", port), Dir: dir}
	s.args = append([]string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--enable-debug-command", "yes", "--logfile", filepath.Join(dir, "redis.log"),
		"--daemonize", "no",
	}, extra...)
	s.start(bin)
	t.Cleanup(s.Kill)
	return s
}

func (s *Server) start(bin string) {
	s.t.Helper()
	var err error
	for try := 0; try < 3; try++ {
		cmd := exec.Command(bin, s.args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
		if err = cmd.Start(); err != nil {
			s.t.Fatalf("start redis-server: %v", err)
		}
		s.cmd = cmd
		if err = WaitPing(s.Addr, 10*time.Second); err == nil {
			return
		}
		s.Kill()
	}
	log, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
	s.t.Fatalf("redis-server on %s did not answer: %v\n%s", s.Addr, err, tail(string(log)))
}

func tail(s string) string {
	lines := strings.Split(s, "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
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

// Kill stops the server with SIGKILL (no shutdown, nothing saved) and waits
// for it. Killing a stopped server does nothing.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Restart kills the server and starts it again on the same port, empty.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	s.start(Binary(s.t, "redis-server"))
}

// Pid returns the server's process id, 0 if it is stopped.
func (s *Server) Pid() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Client returns a new client of the server, closed when t ends.
func (s *Server) Client(t testing.TB) *redis.Client {
	return NewClient(t, s.Addr)
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
