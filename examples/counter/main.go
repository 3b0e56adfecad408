// Command counter: the distributed counter. N workers on separate clients
// increment under the lock (GET then SET); then a holder paused past its TTL
// writes a stale value: applied when unguarded, refused with Lease.Guard and
// with a fence check at the resource. See package counterex for the code.
package main

import (
	"context"
	"fmt"
	"io"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/examples/counter/counterex"
	"github.com/redlease/redlease/examples/internal/exredis"
)

func main() {
	exredis.Main("counter", func(ctx context.Context, c *redis.Client, out io.Writer) error {
		cfg := counterex.Default()
		res, err := counterex.Run(ctx, c, out, cfg)
		if err != nil {
			return err
		}
		for _, o := range res.Outcomes {
			fmt.Fprintln(out, o.Verdict())
		}
		return res.Check()
	})
}
