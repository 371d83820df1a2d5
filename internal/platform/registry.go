package platform

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// AgentSettings are what `autarky-agent run` knows of where its cluster
// lives: every platform's flags, each platform reading its own and
// refusing the others' (Opener).
type AgentSettings struct {
	Cluster string
	// Region: aws and gcp. Project, Bucket and the endpoints: gcp.
	Region, Project, Bucket          string
	ComputeEndpoint, StorageEndpoint string
	// StateDir: local.
	StateDir string
	Progress Progress
}

// Opened is a cluster an agent serves, with the platform's own metrics.
type Opened struct {
	Cluster    Cluster
	Collectors []prometheus.Collector
}

// Opener opens the agent's view of a cluster on one platform, checking
// its settings and credentials before the agent starts.
type Opener func(ctx context.Context, s AgentSettings) (Opened, error)

var (
	registryMu sync.Mutex
	openers    = map[string]Opener{}
)

// Register makes platform name known to Open. A platform registers from
// its package's init; the binaries import the platforms they ship, and the
// agent's code names none of them.
func Register(name string, o Opener) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := openers[name]; dup {
		panic("platform " + name + " registered twice")
	}
	openers[name] = o
}

// Open opens the agent's view of s.Cluster on platform name.
func Open(ctx context.Context, name string, s AgentSettings) (Opened, error) {
	registryMu.Lock()
	o, ok := openers[name]
	registryMu.Unlock()
	if !ok {
		return Opened{}, fmt.Errorf("platform %q is not one this binary has: %s", name, strings.Join(Registered(), ", "))
	}
	return o(ctx, s)
}

// Registered lists the platforms Open knows, sorted.
func Registered() []string {
	registryMu.Lock()
	defer registryMu.Unlock()
	out := make([]string, 0, len(openers))
	for name := range openers {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// Refuse returns an error naming the first of flags (name -> value) that
// is set although platform does not take it.
func Refuse(platform string, flags map[string]string) error {
	names := make([]string, 0, len(flags))
	for name := range flags {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if flags[name] != "" {
			return fmt.Errorf("%s is not a setting of platform %s", name, platform)
		}
	}
	return nil
}
