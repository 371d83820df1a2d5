package aws

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
)

func init() { platform.Register("aws", openAgent) }

// openAgent is the agent's aws: the region (else the standard chain's),
// credentials from the standard chain (the instance role on a manager),
// checked before the agent starts.
func openAgent(ctx context.Context, s platform.AgentSettings) (platform.Opened, error) {
	if err := platform.Refuse("aws", map[string]string{"--project": s.Project, "--bucket": s.Bucket, "--compute-endpoint": s.ComputeEndpoint,
		"--storage-endpoint": s.StorageEndpoint, "--state-dir": s.StateDir}); err != nil {
		return platform.Opened{}, err
	}
	if s.Region != "" {
		if err := ValidateRegion(s.Region); err != nil {
			return platform.Opened{}, fmt.Errorf("--region: %w", err)
		}
	}
	m, err := NewMetrics(nil)
	if err != nil {
		return platform.Opened{}, err
	}
	clients, err := Connect(ctx, Config{Region: s.Region}, m)
	if err != nil {
		return platform.Opened{}, fmt.Errorf("--platform aws: %w", err)
	}
	if err := CheckCredentials(ctx, clients.Config); err != nil {
		return platform.Opened{}, fmt.Errorf("--platform aws: %w", err)
	}
	cl, err := NewCluster(clients, s.Cluster, nil)
	if err != nil {
		return platform.Opened{}, err
	}
	return platform.Opened{Cluster: cl, Collectors: []prometheus.Collector{m.Retries, m.RateWait}}, nil
}
