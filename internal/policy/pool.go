package policy

import (
	"fmt"
	"strings"
	"time"
)

// Who owns a pool's size.
const (
	// SizeOwnerTerraform: desired_size in the configuration is the truth.
	SizeOwnerTerraform = "terraform"
	// SizeOwnerAgent: a scaling policy targets the pool; the agent resizes it
	// and Terraform keeps the configured value only as the initial size.
	SizeOwnerAgent = "agent"
)

// DefaultWaitForCapacityTimeout bounds how long apply waits for Ready nodes.
const DefaultWaitForCapacityTimeout = 5 * time.Minute

// Pool describes one node pool as the provider declared it.
type Pool struct {
	Cluster                string            `json:"cluster"`
	Name                   string            `json:"name"`
	Role                   string            `json:"role"`
	MinSize                int64             `json:"min_size"`
	MaxSize                int64             `json:"max_size"`
	DesiredSize            int64             `json:"desired_size"`
	Labels                 map[string]string `json:"labels,omitempty"`
	WaitForCapacityTimeout string            `json:"wait_for_capacity_timeout"`
	SizeOwner              string            `json:"size_owner,omitempty"`
	// Deleting is set while the provider removes the pool, so the agent
	// leaves the pool alone instead of replacing the nodes going away.
	Deleting bool `json:"deleting,omitempty"`
	// AWS overrides the cluster's AWS settings for this pool (aws only).
	AWS *AWSPool `json:"aws,omitempty"`
	// GCP overrides the cluster's GCP settings for this pool (gcp only).
	GCP       *GCPPool  `json:"gcp,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// ID is the pool's id: "<cluster>/<pool>".
func (p Pool) ID() string { return PoolID(p.Cluster, p.Name) }

// PoolID joins a cluster and a pool name into a pool id.
func PoolID(cluster, pool string) string { return cluster + "/" + pool }

// SplitPoolID splits "<cluster>/<pool>" and validates both halves.
func SplitPoolID(id string) (cluster, pool string, err error) {
	c, p, ok := strings.Cut(id, "/")
	if !ok || ValidateName(c) != nil || ValidateName(p) != nil {
		return "", "", fmt.Errorf("node pool id %q is not of the form <cluster name>/<pool name>", id)
	}
	return c, p, nil
}

// ValidatePoolName refuses names that are not DNS labels and the name
// reserved for every cluster's manager pool.
func ValidatePoolName(name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	if name == ManagerPoolName {
		return fmt.Errorf("%q is reserved for the cluster's manager pool: choose another name", name)
	}
	return nil
}

// ValidateRole accepts the roles a declared node pool can have. Managers are
// not declared as pools: the cluster's manager_count owns them, so the Raft
// group keeps an odd size.
func ValidateRole(role string) error {
	if role != RoleWorker {
		return fmt.Errorf("%q is not allowed: use %q (managers belong to the cluster's manager pool, sized by manager_count)", role, RoleWorker)
	}
	return nil
}

// Validate checks every field of the descriptor.
func (p Pool) Validate() error {
	if err := ValidateName(p.Cluster); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if err := ValidateName(p.Name); err != nil {
		return fmt.Errorf("name: %w", err)
	}
	if err := ValidatePoolName(p.Name); err != nil {
		return fmt.Errorf("name: %w", err)
	}
	if err := ValidateRole(p.Role); err != nil {
		return fmt.Errorf("role: %w", err)
	}
	d := p.DesiredSize
	if err := ValidateSizes(p.MinSize, p.MaxSize, &d); err != nil {
		return err
	}
	if _, err := ParseDuration(p.WaitForCapacityTimeout); err != nil {
		return fmt.Errorf("wait_for_capacity_timeout: %w", err)
	}
	if p.GCP != nil {
		if err := p.GCP.Validate(); err != nil {
			return err
		}
	}
	if p.AWS != nil {
		return p.AWS.Validate()
	}
	return nil
}
