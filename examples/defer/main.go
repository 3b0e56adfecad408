// Command defer: the context-manager pattern, Lock then defer Release
// (redis-py: "with r.lock(...):"). The lock is released when a critical
// section fails or panics. See package deferex for the code.
package main

import (
	"context"
	"io"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/examples/defer/deferex"
	"github.com/redlease/redlease/examples/internal/exredis"
)

func main() {
	exredis.Main("defer", func(ctx context.Context, c *redis.Client, out io.Writer) error {
		cfg := deferex.Default()
		res, err := deferex.Run(ctx, c, out, cfg)
		if err != nil {
			return err
		}
		return res.Check()
	})
}
