package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// server is the one redis-server process a benchmark run starts: loopback
// only, on a free port (never 6379), without persistence.
type server struct {
	Addr    string
	Version string
	dir     string
	cmd     *exec.Cmd
}

// startServer runs redis-server on a free loopback port; the caller kills it.
func startServer() (*server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found on PATH: %w", err)
	}
	dir, err := os.MkdirTemp("", "redlease-bench-")
	if err != nil {
		return nil, err
	}
	var last error
	for try := 0; try < 3; try++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s := &server{Addr: "127.0.0.1:" + strconv.Itoa(port), dir: dir}
		cmd := exec.Command(bin,
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no",
			"--dir", dir, "--logfile", filepath.Join(dir, "redis.log"),
			"--daemonize", "no", "--maxclients", "10000")
		// SIGKILL the server if this process dies without cleaning up.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("start redis-server: %w", err)
		}
		s.cmd = cmd
		if last = waitPing(s.Addr, 10*time.Second); last == nil {
			c := redis.NewClient(&redis.Options{Addr: s.Addr})
			info, _ := c.Info(context.Background(), "server").Result()
			_ = c.Close()
			for _, line := range strings.Split(info, "\n") {
				if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
					s.Version = v
				}
			}
			return s, nil
		}
		s.Kill()
	}
	return nil, fmt.Errorf("redis-server did not answer: %w", last)
}

// freePort returns a loopback port that was free a moment ago, never 6379.
func freePort() (int, error) {
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if port != 6379 {
			return port, nil
		}
	}
}

func waitPing(addr string, limit time.Duration) error {
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

// Kill stops the server with SIGKILL and removes its directory.
func (s *server) Kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		s.cmd = nil
	}
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}

// clientOptions are the go-redis options every contender's client gets.
func clientOptions(addr string) *redis.Options {
	return &redis.Options{
		Addr:         addr,
		PoolSize:     poolSize,
		DialTimeout:  2 * time.Second,
		ReadTimeout:  3 * time.Second,
		WriteTimeout: 3 * time.Second,
	}
}

// poolSize is the connection pool size of every client: enough for the 32
// parallel goroutines of scenario 2 to each hold a connection.
const poolSize = 64

// counter is a go-redis hook counting round trips: one per Process (a
// command) and one per ProcessPipeline (a pipeline or MULTI/EXEC).
// It also counts the connections the client dials (pool and pub/sub).
type counter struct{ n, dials atomic.Int64 }

func (h *counter) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		h.dials.Add(1)
		return next(ctx, network, addr)
	}
}

func (h *counter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h *counter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

// newClient returns a client with the shared options and a round-trip counter.
func newClient(addr string) (*redis.Client, *counter) {
	c := redis.NewClient(clientOptions(addr))
	h := &counter{}
	c.AddHook(h)
	return c, h
}

// commandCalls sums INFO commandstats calls over all commands (Lua-internal
// calls included) except INFO itself, which the measurement issues.
func commandCalls(ctx context.Context, c *redis.Client) (int64, error) {
	info, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		return 0, err
	}
	var total int64
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		rest, ok := strings.CutPrefix(line, "cmdstat_")
		if !ok {
			continue
		}
		name, fields, ok := strings.Cut(rest, ":")
		if !ok || name == "info" {
			continue
		}
		for _, f := range strings.Split(fields, ",") {
			if v, ok := strings.CutPrefix(f, "calls="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				total += n
			}
		}
	}
	return total, nil
}

// connectedClients counts the server's client connections (CLIENT LIST).
func connectedClients(ctx context.Context, c *redis.Client) (int, error) {
	s, err := c.ClientList(ctx).Result()
	if err != nil {
		return 0, err
	}
	return strings.Count(strings.TrimSpace(s), "\n") + 1, nil
}

var errLocked = errors.New("locked")
