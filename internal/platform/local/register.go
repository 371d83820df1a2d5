package local

import (
	"context"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
)

func init() { platform.Register("local", openAgent) }

// openAgent is the agent's local: the provider's state dir.
func openAgent(_ context.Context, s platform.AgentSettings) (platform.Opened, error) {
	if err := platform.Refuse("local", map[string]string{"--region": s.Region, "--project": s.Project, "--bucket": s.Bucket,
		"--compute-endpoint": s.ComputeEndpoint, "--storage-endpoint": s.StorageEndpoint}); err != nil {
		return platform.Opened{}, err
	}
	p, err := New(StateDirFrom(s.StateDir), s.Progress, Options{})
	if err != nil {
		return platform.Opened{}, err
	}
	return platform.Opened{Cluster: p.Cluster(s.Cluster)}, nil
}
