package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/mutex"
)

// Environment variables read for the connection. Flags win: when any of
// --url, --cluster or --sentinel is given, REDIS_URL, REDIS_CLUSTER_ADDRS
// and REDIS_SENTINEL_ADDRS are ignored.
const (
	envURL              = "REDIS_URL"
	envCluster          = "REDIS_CLUSTER_ADDRS"
	envSentinel         = "REDIS_SENTINEL_ADDRS"
	envMaster           = "REDIS_SENTINEL_MASTER"
	envUsername         = "REDIS_USERNAME"
	envPassword         = "REDIS_PASSWORD"
	envSentinelPassword = "REDIS_SENTINEL_PASSWORD"
	envPrefix           = "REDLEASE_PREFIX"
)

// defaultAddr is used when neither flags nor environment name a server.
const defaultAddr = "127.0.0.1:6379"

// pingTimeout bounds the first contact with Redis, so that a wrong address
// fails at once instead of making Lock retry forever.
const pingTimeout = 10 * time.Second

// connFlags are the connection flags every command that talks to Redis has.
type connFlags struct {
	url, cluster, sentinel, master, prefix string
	set                                    map[string]bool // flags given on the command line
}

func (c *connFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.url, "url", "", "Redis `URL`, redis://[user:password@]host:port[/db] or rediss:// for TLS (env "+envURL+")")
	fs.StringVar(&c.cluster, "cluster", "", "Redis Cluster seed `addresses`, host:port,host:port,... (env "+envCluster+")")
	fs.StringVar(&c.sentinel, "sentinel", "", "Sentinel `addresses`, host:port,host:port,... (env "+envSentinel+"); needs --master")
	fs.StringVar(&c.master, "master", "", "Sentinel master `name` (env "+envMaster+")")
	fs.StringVar(&c.prefix, "prefix", "", "key `prefix` of the locks (env "+envPrefix+"; default \"redlease:\")")
}

// connEnvHelp documents the environment for --help.
const connEnvHelp = `  ` + envURL + `              redis:// or rediss:// URL of a single server (as --url)
  ` + envCluster + `    Cluster seed addresses, comma-separated (as --cluster)
  ` + envSentinel + `   Sentinel addresses, comma-separated (as --sentinel)
  ` + envMaster + `  Sentinel master name (as --master)
  ` + envUsername + `, ` + envPassword + `
                         credentials for --cluster, --sentinel (the nodes
                         the Sentinels name) and the default address; a --url
                         carries its own
  ` + envSentinelPassword + `  password of the Sentinels themselves
  ` + envPrefix + `        key prefix (as --prefix)
  With none of --url, --cluster, --sentinel or their variables: ` + defaultAddr + `.
  A flag given overrides all three variables; naming two kinds at once is an error.
`

// target is a resolved connection: exactly one of the option sets.
type target struct {
	single   *redis.Options
	cluster  *redis.ClusterOptions
	failover *redis.FailoverOptions
	desc     string // for messages; never contains a password
}

// resolve turns flags and environment into a target, or a usage error.
func (c *connFlags) resolve(getenv func(string) string) (*target, error) {
	url, cluster, sentinel := c.url, c.cluster, c.sentinel
	from := "flags --url, --cluster and --sentinel"
	if !c.set["url"] && !c.set["cluster"] && !c.set["sentinel"] {
		url, cluster, sentinel = getenv(envURL), getenv(envCluster), getenv(envSentinel)
		from = "variables " + envURL + ", " + envCluster + " and " + envSentinel
	}
	n := 0
	for _, v := range []string{url, cluster, sentinel} {
		if v != "" {
			n++
		}
	}
	if n > 1 {
		return nil, fmt.Errorf("more than one of the %s is set; give one kind of connection", from)
	}
	master := c.master
	if !c.set["master"] {
		master = getenv(envMaster)
	}
	if c.set["master"] && sentinel == "" {
		return nil, fmt.Errorf("--master %q needs Sentinel addresses (--sentinel or %s)", master, envSentinel)
	}
	user, pass := getenv(envUsername), getenv(envPassword)
	switch {
	case url != "":
		opt, err := redis.ParseURL(url)
		if err != nil {
			return nil, fmt.Errorf("bad Redis URL: %v (want redis://host:port or rediss://host:port)", err)
		}
		return &target{single: opt, desc: opt.Addr}, nil
	case cluster != "":
		addrs, err := splitAddrs("--cluster/"+envCluster, cluster)
		if err != nil {
			return nil, err
		}
		return &target{
			cluster: &redis.ClusterOptions{Addrs: addrs, Username: user, Password: pass},
			desc:    "cluster " + strings.Join(addrs, ","),
		}, nil
	case sentinel != "":
		addrs, err := splitAddrs("--sentinel/"+envSentinel, sentinel)
		if err != nil {
			return nil, err
		}
		if master == "" {
			return nil, fmt.Errorf("no Sentinel master name given for the Sentinel addresses (--master or %s)", envMaster)
		}
		return &target{
			failover: &redis.FailoverOptions{
				MasterName: master, SentinelAddrs: addrs, Username: user, Password: pass,
				SentinelPassword: getenv(envSentinelPassword),
			},
			desc: fmt.Sprintf("master %q via sentinels %s", master, strings.Join(addrs, ",")),
		}, nil
	default:
		return &target{single: &redis.Options{Addr: defaultAddr, Username: user, Password: pass}, desc: defaultAddr}, nil
	}
}

// splitAddrs parses a comma-separated host:port list.
func splitAddrs(what, s string) ([]string, error) {
	var addrs []string
	for _, a := range strings.Split(s, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			return nil, fmt.Errorf("%s: bad address %q: want host:port", what, a)
		}
		addrs = append(addrs, a)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("%s: no address in %q", what, s)
	}
	return addrs, nil
}

func (t *target) client() redis.UniversalClient {
	switch {
	case t.cluster != nil:
		return redis.NewClusterClient(t.cluster)
	case t.failover != nil:
		return redis.NewFailoverClient(t.failover)
	default:
		return redis.NewClient(t.single)
	}
}

// keyPrefix is --prefix, else $REDLEASE_PREFIX, else "" (the library default).
func (c *connFlags) keyPrefix(getenv func(string) string) string {
	if c.set["prefix"] {
		return c.prefix
	}
	return getenv(envPrefix)
}

// connect resolves the connection settings into a client, which the caller
// closes. It does not contact Redis (ping does); a bad setting is an
// exitUsage error.
func (c *connFlags) connect(getenv func(string) string) (redis.UniversalClient, *target, error) {
	t, err := c.resolve(getenv)
	if err != nil {
		return nil, nil, &exitError{code: exitUsage, err: err}
	}
	return t.client(), t, nil
}

// mutex returns the Mutex of name with the connection's key prefix and
// opts; an invalid name or option is an exitUsage error.
func (c *connFlags) mutex(client redis.UniversalClient, name string, getenv func(string) string, opts ...mutex.Option) (*mutex.Mutex, error) {
	m, err := mutex.New(client, name, append(c.mutexOptions(getenv), opts...)...)
	if err != nil {
		return nil, &exitError{code: exitUsage, err: err}
	}
	return m, nil
}

// mutexOptions are the options every command's Mutex gets from the
// connection flags.
func (c *connFlags) mutexOptions(getenv func(string) string) []mutex.Option {
	if p := c.keyPrefix(getenv); p != "" || c.set["prefix"] {
		return []mutex.Option{mutex.WithKeyPrefix(p)}
	}
	return nil
}

// ping checks that Redis answers, mapping a failure to exitUnavailable.
func ping(ctx context.Context, client redis.UniversalClient, t *target) error {
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		return exitf(exitUnavailable, "cannot reach Redis at %s: %v", t.desc, err)
	}
	return nil
}

// visited records which flags of fs were given on the command line.
func visited(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}
