package policy

import (
	"fmt"
	"time"
)

// Platforms are where instances come from.
const (
	PlatformLocal = "local"
	PlatformAWS   = "aws"
	PlatformGCP   = "gcp"
)

// Platforms lists every platform name, supported or not.
var Platforms = []string{PlatformLocal, PlatformAWS, PlatformGCP}

// SupportedPlatforms lists the platforms this build can create clusters on.
var SupportedPlatforms = []string{PlatformLocal, PlatformAWS, PlatformGCP}

// ValidatePlatform refuses unknown platforms and those not supported yet.
func ValidatePlatform(p string) error {
	for _, s := range SupportedPlatforms {
		if p == s {
			return nil
		}
	}
	for _, s := range Platforms {
		if p == s {
			return fmt.Errorf("platform %q is not yet supported: use one of %q", p, SupportedPlatforms)
		}
	}
	return fmt.Errorf("platform %q is unknown: use one of %q", p, Platforms)
}

// Roles of a node pool.
const (
	RoleWorker  = "worker"
	RoleManager = "manager"
)

// ManagerPoolName is the reserved name of every cluster's manager pool.
const ManagerPoolName = "managers"

// Labels Autarky sets on every Swarm node (engine labels at boot, node labels
// after join) so the agent can map nodes to pools and instances.
const (
	LabelCluster  = "autarky.cluster"
	LabelPool     = "autarky.pool"
	LabelInstance = "autarky.instance"
)

// DefaultHeartbeatPeriod is Swarm's own dispatcher heartbeat default.
const DefaultHeartbeatPeriod = 5 * time.Second

// Cluster describes one Swarm as the provider declared it.
type Cluster struct {
	Name            string            `json:"name"`
	Platform        string            `json:"platform"`
	ManagerCount    int64             `json:"manager_count"`
	HeartbeatPeriod string            `json:"heartbeat_period"`
	Labels          map[string]string `json:"labels,omitempty"`
	Agent           *Agent            `json:"agent,omitempty"`
	// AWS holds the platform's settings when Platform is "aws".
	AWS *AWS `json:"aws,omitempty"`
	// GCP holds the platform's settings when Platform is "gcp".
	GCP *GCP `json:"gcp,omitempty"`
	// JoinTokenRotation is the user's rotation trigger: whenever it
	// changes, both join tokens are rotated in the swarm (and in the
	// platform's token store), so a leaked token stops admitting nodes.
	JoinTokenRotation string    `json:"join_token_rotation,omitempty"`
	CreatedAt         time.Time `json:"created_at"`
}

// MaxJoinTokenRotationLength bounds join_token_rotation: a trigger, such
// as a date or a counter, not a place for data.
const MaxJoinTokenRotationLength = 256

// ValidateJoinTokenRotation accepts any trigger of printable characters up
// to MaxJoinTokenRotationLength.
func ValidateJoinTokenRotation(v string) error {
	if len(v) > MaxJoinTokenRotationLength {
		return fmt.Errorf("is %d characters long: use at most %d (a date, a counter or a ticket id)", len(v), MaxJoinTokenRotationLength)
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("holds a control character: use printable text (a date, a counter or a ticket id)")
		}
	}
	return nil
}

// Agent says how the platform starts autarky-agent beside every manager.
type Agent struct {
	Enabled bool `json:"enabled"`
	// Binary is the agent executable the platform starts (local platform).
	Binary string `json:"binary,omitempty"`
	// EvaluationInterval is how often the agent evaluates without an event.
	EvaluationInterval string `json:"evaluation_interval"`
	DryRun             bool   `json:"dry_run,omitempty"`
	// BinaryURL and BinarySHA256 say where managers on a cloud download
	// the agent (a static linux binary) and its digest, checked before it
	// runs.
	BinaryURL    string `json:"binary_url,omitempty"`
	BinarySHA256 string `json:"binary_sha256,omitempty"`
}

// DefaultEvaluationInterval is the agent's default evaluation interval.
const DefaultEvaluationInterval = 2 * time.Second

// AgentPort is the port every agent listens on, on its manager's address.
const AgentPort = 9910

// AgentTokenFile is where a manager's boot script on a cloud writes the
// agent's bearer token (root's, mode 0600): the agent's unit reads it
// with --alert-token-file, and `autarky-agent status` run as root on the
// manager sends it without being told.
const AgentTokenFile = "/etc/autarky/alert-token"

// AgentAddressFile is where a manager's boot script on a cloud writes the
// URL its agent listens on (the manager's private address, not loopback),
// so `autarky-agent status` on the manager finds it without --address.
const AgentAddressFile = "/etc/autarky/agent-address"

// ManagerPoolID is the id of the cluster's manager pool.
func (c Cluster) ManagerPoolID() string { return PoolID(c.Name, ManagerPoolName) }

// Validate checks every field of the descriptor.
func (c Cluster) Validate() error {
	if err := ValidateName(c.Name); err != nil {
		return fmt.Errorf("name: %w", err)
	}
	if err := ValidatePlatform(c.Platform); err != nil {
		return fmt.Errorf("platform: %w", err)
	}
	if err := ValidateManagerCount(c.ManagerCount); err != nil {
		return fmt.Errorf("manager_count: %w", err)
	}
	if err := ValidateJoinTokenRotation(c.JoinTokenRotation); err != nil {
		return fmt.Errorf("join_token_rotation: %w", err)
	}
	if c.JoinTokenRotation != "" && c.onCloud() && (c.Agent == nil || !c.Agent.Enabled || c.Agent.DryRun) {
		return fmt.Errorf("join_token_rotation: on platform %q the agent on the managers rotates the join tokens (Terraform does not reach the engines): set agent.enabled = true and agent.dry_run = false", c.Platform)
	}
	d, err := ParseDuration(c.HeartbeatPeriod)
	if err != nil {
		return fmt.Errorf("heartbeat_period: %w", err)
	}
	if d < time.Second {
		return fmt.Errorf("heartbeat_period: %q is too short: Swarm needs at least 1s", c.HeartbeatPeriod)
	}
	if c.Agent != nil && c.Agent.Enabled {
		if _, err := ParseEvaluationInterval(c.Agent.EvaluationInterval); err != nil {
			return fmt.Errorf("agent.evaluation_interval: %w", err)
		}
		if c.onCloud() {
			if err := ValidateAgentDownload(c.Agent.BinaryURL, c.Agent.BinarySHA256); err != nil {
				return fmt.Errorf("%w (managers on %s download the agent at boot)", err, c.Platform)
			}
		}
	}
	switch {
	case c.Platform == PlatformGCP && c.GCP == nil:
		return fmt.Errorf("gcp: platform \"gcp\" needs a gcp block (project, region, machine_type, image, subnetwork, bucket)")
	case c.Platform != PlatformGCP && c.GCP != nil:
		return fmt.Errorf("gcp: the gcp block is for platform \"gcp\" only, not %q", c.Platform)
	case c.GCP != nil:
		return c.GCP.Validate()
	}
	switch {
	case c.Platform == PlatformAWS && c.AWS == nil:
		return fmt.Errorf("aws: platform \"aws\" needs an aws block (ami, instance_type, subnets)")
	case c.Platform != PlatformAWS && c.AWS != nil:
		return fmt.Errorf("aws: the aws block is for platform \"aws\" only, not %q", c.Platform)
	case c.AWS != nil:
		return c.AWS.Validate()
	}
	return nil
}

// onCloud reports whether the cluster's managers are cloud instances,
// which Terraform does not reach: their boot script downloads the agent,
// and the agent rotates the join tokens.
func (c Cluster) onCloud() bool { return c.Platform == PlatformAWS || c.Platform == PlatformGCP }

// ParseEvaluationInterval parses an evaluation interval: 100ms to 1h.
func ParseEvaluationInterval(s string) (time.Duration, error) {
	d, err := ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d < 100*time.Millisecond || d > time.Hour {
		return 0, fmt.Errorf("%q is out of range: use 100ms to 1h", s)
	}
	return d, nil
}
