package rwmutex

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/core"
	"github.com/redlease/redlease/internal/scripts"
	"github.com/redlease/redlease/internal/wake"
)

// hold is how a lease keeps one field of the lock's hash (core.Hold): a read
// hold ("r:<token>") or the write hold ("w:<token>").
type hold struct {
	client  redis.UniversalClient
	key     string   // the hash
	keys    []string // {key}: the KEYS of prolong and inspect
	relKeys []string // {key, fence counter}: the KEYS of release
	wake    string   // the wake-up channel
	kind    string   // "r" or "w"
}

var _ core.Hold = (*hold)(nil)

// writeHold is the write hold, which excludes every other: Guard accepts it.
type writeHold struct{ *hold }

var _ core.ExclusiveHold = writeHold{}

func (h *hold) field(token string) string { return h.kind + ":" + token }

func (h *hold) Prolong(ctx context.Context, token string, fence, gen int64, mode string, ms int64) (bool, time.Duration, error) {
	reply, err := scripts.RWProlong.Run(ctx, h.client, h.keys, h.field(token), ms, gen, mode, fence).Result()
	return core.ParseHeld(reply, err)
}

func (h *hold) Inspect(ctx context.Context, token string, fence int64) (bool, time.Duration, error) {
	reply, err := scripts.RWInspect.Run(ctx, h.client, h.keys, h.field(token), fence).Result()
	return core.ParseHeld(reply, err)
}

// Release deletes the field and wakes, at once, the local waiters that can
// now be admitted (whatever the reply: the release may have run; the head if
// the reply is lost), ignoring its own pub/sub message.
func (h *hold) Release(ctx context.Context, token string, fence int64) (bool, error) {
	wake.Expect(h.client, h.wake, fence, token)
	n, err := h.release(ctx, token, fence, "")
	return n == 1, err
}

// release runs the release script (fence 0 matches any fence; a non-empty
// claim deletes that waiting writer's claim too) and wakes the local waiters
// it admits.
func (h *hold) release(ctx context.Context, token string, fence int64, claim string) (int64, error) {
	var f any = fence
	if fence == 0 {
		f = ""
	}
	reply, err := scripts.RWRelease.Run(ctx, h.client, h.relKeys, token, f, h.wake, h.kind, claim).Result()
	return core.ReleaseReply(h.client, h.wake, reply, err, wake.RWState)
}

// WatchKey is the key Guard WATCHes: every change of a hold changes the hash.
func (h writeHold) WatchKey() string { return h.key }

// HeldIn reports, inside Guard's WATCH, whether the write hold token:fence
// is in the hash and unexpired on the server's clock. An expiry between this
// check and EXEC cannot let anyone in unseen: an acquisition after it changes
// the watched hash, which aborts the transaction.
func (h writeHold) HeldIn(ctx context.Context, tx *redis.Tx, token string, fence int64) (bool, error) {
	v, err := tx.HGet(ctx, h.key, h.field(token)).Result()
	if err == redis.Nil {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	now, err := tx.Time(ctx).Result()
	if err != nil {
		return false, err
	}
	parts := strings.Split(v, ":")
	if len(parts) != 3 || parts[0] != strconv.FormatInt(fence, 10) {
		return false, nil
	}
	exp, err := strconv.ParseInt(parts[2], 10, 64)
	return err == nil && exp > now.UnixMilli(), nil
}
