package core

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/scripts"
)

// ErrNotReplicated reports an acquisition that fewer replicas acknowledged
// than required (see mutex.WithReplicas). The acquisition was undone.
var ErrNotReplicated = errors.New("mutex: not acknowledged by enough replicas")

// acquireReplicated runs the acquire script and WAIT on one connection of the
// group's master, in one pipeline (one round trip plus the replicas' ack).
// It returns the script's reply and the number of replicas that acknowledged.
func (s *Spec) acquireReplicated(ctx context.Context, g Group) (any, int64, error) {
	var node redis.Cmdable = s.Client
	if cc, ok := s.Client.(*redis.ClusterClient); ok {
		// WAIT counts the acks of this connection's writes, so it must go to
		// the master of the group's slot on the same connection.
		c, err := cc.MasterForKey(ctx, g.Keys[0].Lock)
		if err != nil {
			return nil, 0, err
		}
		node = c
	}
	for try := 0; ; try++ {
		pipe := node.Pipeline()
		ev := pipe.EvalSha(ctx, scripts.Acquire.Hash(), g.acquireKeys(), s.TokenArg, s.TTLArg)
		wait := pipe.Do(ctx, "wait", s.Replicas, s.ReplicaTimeout.Milliseconds())
		_, _ = pipe.Exec(ctx)
		if err := ev.Err(); redis.HasErrorPrefix(err, "NOSCRIPT") && try == 0 {
			// Inside a pipeline EVALSHA cannot fall back to EVAL: load and retry.
			if err := scripts.Acquire.Load(ctx, node).Err(); err != nil {
				return nil, 0, err
			}
			continue
		}
		if err := ev.Err(); err != nil {
			return nil, 0, err
		}
		acks, err := wait.Int64()
		if err != nil {
			return ev.Val(), 0, fmt.Errorf("WAIT: %w", err)
		}
		return ev.Val(), acks, nil
	}
}

func notReplicated(acks int64, want int) error {
	return fmt.Errorf("%w: %d of %d replicas acknowledged", ErrNotReplicated, acks, want)
}
