package semaphore

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/core"
	"github.com/redlease/redlease/internal/scripts"
	"github.com/redlease/redlease/internal/wake"
)

// hold is how a lease keeps one field of the semaphore's hash (core.Hold).
type hold struct {
	client  redis.UniversalClient
	key     string   // the hash
	keys    []string // {key}: the KEYS of prolong, inspect and available
	relKeys []string // {key, fence counter}: the KEYS of release
	wake    string   // the wake-up channel
}

var _ core.Hold = (*hold)(nil)

func (h *hold) Prolong(ctx context.Context, token string, fence, gen int64, mode string, ms int64) (bool, time.Duration, error) {
	reply, err := scripts.SemProlong.Run(ctx, h.client, h.keys, token, ms, gen, mode, fence).Result()
	return core.ParseHeld(reply, err)
}

func (h *hold) Inspect(ctx context.Context, token string, fence int64) (bool, time.Duration, error) {
	reply, err := scripts.SemInspect.Run(ctx, h.client, h.keys, token, fence).Result()
	return core.ParseHeld(reply, err)
}

// Release deletes the field and wakes, at once, the local waiters that the
// units left free admit (whatever the reply: the release may have run; the
// head if the reply is lost), ignoring its own pub/sub message.
func (h *hold) Release(ctx context.Context, token string, fence int64) (bool, error) {
	wake.Expect(h.client, h.wake, fence, token)
	n, err := h.release(ctx, token, fence)
	return n == 1, err
}

// release runs the release script (fence 0 matches any fence) and wakes the
// local waiters it admits.
func (h *hold) release(ctx context.Context, token string, fence int64) (int64, error) {
	var f any = fence
	if fence == 0 {
		f = ""
	}
	reply, err := scripts.SemRelease.Run(ctx, h.client, h.relKeys, token, f, h.wake).Result()
	return core.ReleaseReply(h.client, h.wake, reply, err, wake.SemState)
}
