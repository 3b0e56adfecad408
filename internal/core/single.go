package core

import (
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/keys"
	"github.com/redlease/redlease/observe"
)

// Single is the storage of a one-name lock's Spec: the Spec, its group, its
// key and the script arguments they reuse, so that mutex.New allocates them
// at once (a Mutex embeds a Single).
type Single struct {
	spec    Spec
	groups  [1]Group
	keys    [1]keys.Key
	acquire [2]string // KEYS of acquire: the lock key, the slot's fence counter
	args    [3]any    // the group's keyArgs (2) and wakeArgs (1)
}

// InitSingle checks client, resolves opts into o and builds the Spec of the
// lock on name, on behalf of op. Its errors name the value and the rule; the
// caller wraps them into ErrInvalid. On a client that is not a Redis Cluster
// client the key's hash slot is not computed (nothing is routed by it).
func InitSingle[O Option](o *Single, op string, kind observe.Kind, errs Errors, client redis.UniversalClient, name string, opts []O) (*Spec, error) {
	if err := CheckClient(client); err != nil {
		return nil, err
	}
	s := &o.spec
	if err := ResolveTo(&s.Config, opts); err != nil {
		return nil, err
	}
	_, cluster := client.(*redis.ClusterClient)
	var err error
	if cluster {
		o.keys[0], err = keys.For(s.Prefix, name)
	} else {
		o.keys[0], err = keys.ForUnsharded(s.Prefix, name)
	}
	if err != nil {
		return nil, fmt.Errorf("lock name %v", err)
	}
	f, ok := keys.FenceKey(s.Prefix, o.keys[0].Slot, cluster)
	if !ok {
		return nil, fmt.Errorf("key prefix %q: no fence counter key reaches hash slot %d", s.Prefix, o.keys[0].Slot)
	}
	o.groups[0] = newGroup(o.keys[:], f, o.acquire[:], o.args[:])
	s.Op, s.Errors, s.Client, s.Groups = op, errs, client, o.groups[:]
	s.finish(kind)
	return s, nil
}
