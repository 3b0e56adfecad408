package core

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/keys"
)

// RunReplicated runs script and WAIT n timeout on one connection of the
// master of lockKeys[0], in one pipeline (one round trip plus the replicas'
// acknowledgement). It returns the script's reply and the number of replicas
// that acknowledged it.
func RunReplicated(ctx context.Context, c redis.UniversalClient, n int, timeout time.Duration, script *redis.Script, lockKeys []string, args ...any) (any, int64, error) {
	var node redis.Cmdable = c
	cc, cluster := c.(*redis.ClusterClient)
	if cluster {
		// WAIT counts the acks of this connection's writes, so it must go to
		// the master of the keys' slot on the same connection.
		m, err := cc.MasterForKey(ctx, lockKeys[0])
		if err != nil {
			return nil, 0, err
		}
		node = m
	}
	asking, loaded := false, false
	for redirects := 0; ; {
		pipe := node.Pipeline()
		if asking {
			pipe.Do(ctx, "asking")
		}
		ev := pipe.EvalSha(ctx, script.Hash(), lockKeys, args...)
		wait := pipe.Do(ctx, "wait", n, timeout.Milliseconds())
		_, _ = pipe.Exec(ctx)
		err := ev.Err()
		if kind, addr, ok := keys.Redirect(err); ok && cluster && redirects < 5 {
			// The pipeline goes to one node and does not follow
			// redirections itself: the script did not run; go where told.
			redirects++
			if kind == "MOVED" {
				cc.ReloadState(ctx)
			}
			nc, nerr := nodeByAddr(ctx, cc, addr)
			if nerr != nil {
				return nil, 0, nerr
			}
			node, asking = nc, kind == "ASK"
			continue
		}
		if redis.HasErrorPrefix(err, "NOSCRIPT") && !loaded {
			// Inside a pipeline EVALSHA cannot fall back to EVAL: load and retry.
			loaded = true
			if err := script.Load(ctx, node).Err(); err != nil {
				return nil, 0, err
			}
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		acks, err := wait.Int64()
		if err != nil {
			return ev.Val(), 0, fmt.Errorf("WAIT: %w", err)
		}
		return ev.Val(), acks, nil
	}
}

// nodeByAddr returns the cluster node client for addr.
func nodeByAddr(ctx context.Context, cc *redis.ClusterClient, addr string) (*redis.Client, error) {
	var mu sync.Mutex
	var found *redis.Client
	_ = cc.ForEachShard(ctx, func(ctx context.Context, c *redis.Client) error {
		if c.Options().Addr == addr {
			mu.Lock()
			found = c
			mu.Unlock()
		}
		return nil
	})
	if found == nil {
		return nil, fmt.Errorf("redirected to %s, which is not a known cluster node", addr)
	}
	return found, nil
}
