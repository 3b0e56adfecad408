// Command customtoken: a caller-chosen token (mutex.WithToken, redis-py's
// acquire(token=...)) that tells other processes who holds the lock. See
// package customtokenex for the code.
package main

import (
	"context"
	"io"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/examples/customtoken/customtokenex"
	"github.com/redlease/redlease/examples/internal/exredis"
)

func main() {
	exredis.Main("customtoken", func(ctx context.Context, c *redis.Client, out io.Writer) error {
		cfg := customtokenex.Default()
		res, err := customtokenex.Run(ctx, c, out, cfg)
		if err != nil {
			return err
		}
		return res.Check()
	})
}
