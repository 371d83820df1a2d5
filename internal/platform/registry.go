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
	// DockerHost is the manager the agent runs beside.
	DockerHost string
	// Adopt, when set, is a cluster the agent's configuration file
	// declares instead of Terraform (Adopt): the platform opens it on the
	// groups or nodes the file names.
	Adopt    *Adoption
	Progress Progress
	// Check opens the cluster to look only (`autarky-agent check-config`):
	// the platform records nothing, such as an adoption.
	Check bool
	// UserAgent is the agent's product token, "autarky-agent/<version>",
	// that every cloud API call of the agent carries in its User-Agent
	// header, as the provider's carry its own (ProviderSettings): a
	// cloud's request logs tell which agent release made a call.
	UserAgent string
}

// JoinLabeller is a cluster whose platform labels every node of its pools
// as it joins it (local: the engines it starts), so the agent need not.
// Any other cluster's nodes the leading agent labels with their pool's
// labels: a cloud's joining worker cannot label its own node, and an
// adopted cluster's nodes were started by hand or by a launch template,
// not joined by a platform (platform.Adopt's wrapper hides this method of
// the cluster it wraps, so an adopted local cluster is labelled too).
type JoinLabeller interface {
	LabelsNodesAtJoin()
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
	// UserAgent is the provider's product tokens, "name/version" separated
	// by spaces (such as "Terraform/1.5.7 terraform-provider-autarky/0.1.0"),
	// that every cloud API call carries in its User-Agent header, so that a
	// cloud's request logs tell which provider release made a call ("" adds
	// none).
	UserAgent string
}

// BackendOpener opens the provider's view of one platform (platform
// Backend), checking its settings and credentials. The provider opens
// each platform once per process and takes WithProgress per request.
type BackendOpener func(ctx context.Context, s ProviderSettings) (Backend, error)

// registry holds what platforms register from their packages' init: the
// binaries import the platforms they ship, and the provider's and the
// agent's code names none of them.
type registry[T any] struct {
	mu   sync.Mutex
	what string
	m    map[string]T
}

var (
	openers  = &registry[Opener]{what: "platform"}
	backends = &registry[BackendOpener]{what: "platform"}
	rights   = &registry[RightsRenderer]{what: "platform with rights"}
)

func (r *registry[T]) add(name string, v T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.m[name]; dup {
		panic(r.what + " " + name + " registered twice")
	}
	if r.m == nil {
		r.m = map[string]T{}
	}
	r.m[name] = v
}

// get is what name registered, else an error naming what this binary has.
func (r *registry[T]) get(name string) (T, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.m[name]
	if !ok {
		return v, fmt.Errorf("%s %q is not one this binary has: %s", r.what, name, strings.Join(r.names(), ", "))
	}
	return v, nil
}

func (r *registry[T]) names() []string {
	out := make([]string, 0, len(r.m))
	for name := range r.m {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// Register makes platform name known to Open, from its package's init.
func Register(name string, o Opener) { openers.add(name, o) }

// Open opens the agent's view of s.Cluster on platform name.
func Open(ctx context.Context, name string, s AgentSettings) (Opened, error) {
	o, err := openers.get(name)
	if err != nil {
		return Opened{}, err
	}
	return o(ctx, s)
}

// RegisterBackend makes platform name known to OpenBackend, from its
// package's init.
func RegisterBackend(name string, o BackendOpener) { backends.add(name, o) }

// OpenBackend opens the provider's view of platform name.
func OpenBackend(ctx context.Context, name string, s ProviderSettings) (Backend, error) {
	o, err := backends.get(name)
	if err != nil {
		return nil, err
	}
	return o(ctx, s)
}

// Registered lists the platforms Open knows, sorted.
func Registered() []string {
	openers.mu.Lock()
	defer openers.mu.Unlock()
	return openers.names()
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
