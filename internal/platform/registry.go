package platform

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
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

// ProviderSettings are the provider configuration's platform blocks, as
// policy's types: each platform reads its own. A nil cloud block means
// the provider has none.
type ProviderSettings struct {
	Local policy.LocalSettings
	AWS   *policy.AWSSettings
	GCP   *policy.GCPSettings
}

// BackendOpener opens the provider's view of one platform (platform
// Backend), checking its settings and credentials. The provider opens
// each platform once per process and takes WithProgress per request.
type BackendOpener func(ctx context.Context, s ProviderSettings) (Backend, error)

var (
	registryMu sync.Mutex
	openers    = map[string]Opener{}
	backends   = map[string]BackendOpener{}
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

// RegisterBackend makes platform name known to OpenBackend, from the
// platform package's init as Register does.
func RegisterBackend(name string, o BackendOpener) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := backends[name]; dup {
		panic("platform backend " + name + " registered twice")
	}
	backends[name] = o
}

// OpenBackend opens the provider's view of platform name.
func OpenBackend(ctx context.Context, name string, s ProviderSettings) (Backend, error) {
	registryMu.Lock()
	o, ok := backends[name]
	known := keys(backends)
	registryMu.Unlock()
	if !ok {
		return nil, fmt.Errorf("platform %q is not one this binary has: %s", name, strings.Join(known, ", "))
	}
	return o(ctx, s)
}

// Registered lists the platforms Open knows, sorted.
func Registered() []string {
	registryMu.Lock()
	defer registryMu.Unlock()
	return keys(openers)
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for name := range m {
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
