package gcp

import (
	"context"
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
)

func init() { platform.Register("gcp", openAgent) }

// openAgent is the agent's gcp: project (else the credentials'), region
// and bucket, Application Default Credentials (the VM's service account on
// a manager), checked before the agent starts.
func openAgent(ctx context.Context, s platform.AgentSettings) (platform.Opened, error) {
	if err := platform.Refuse("gcp", map[string]string{"--state-dir": s.StateDir}); err != nil {
		return platform.Opened{}, err
	}
	if s.Bucket == "" {
		return platform.Opened{}, errors.New("--bucket is required with --platform gcp: the Cloud Storage bucket of the cluster's store")
	}
	if err := ValidateBucket(s.Bucket); err != nil {
		return platform.Opened{}, fmt.Errorf("--bucket: %w", err)
	}
	m, err := NewMetrics(nil)
	if err != nil {
		return platform.Opened{}, err
	}
	clients, err := Connect(ctx, Config{Project: s.Project, Region: s.Region, Endpoint: s.ComputeEndpoint}, m)
	if err != nil {
		return platform.Opened{}, fmt.Errorf("--platform gcp: %w", err)
	}
	if err := clients.CheckCredentials(ctx); err != nil {
		return platform.Opened{}, fmt.Errorf("--platform gcp: %w", err)
	}
	st, err := clients.StorageClient(ctx, s.StorageEndpoint)
	if err != nil {
		return platform.Opened{}, fmt.Errorf("--platform gcp: %w", err)
	}
	cl, err := NewCluster(clients, st, s.Bucket, s.Cluster)
	if err != nil {
		return platform.Opened{}, err
	}
	return platform.Opened{Cluster: cl, Collectors: []prometheus.Collector{m.Retries}}, nil
}
