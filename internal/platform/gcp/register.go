package gcp

import (
	"context"
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
)

func init() {
	platform.Register("gcp", openAgent)
	platform.RegisterBackend("gcp", openBackend)
	platform.RegisterRights("gcp", rights)
}

// openAgent is the agent's gcp: project (else the credentials'), region
// and bucket, Application Default Credentials (the VM's service account on
// a manager), checked before the agent starts.
func openAgent(ctx context.Context, s platform.AgentSettings) (platform.Opened, error) {
	if err := platform.Refuse("gcp", map[string]string{"--state-dir": s.StateDir}); err != nil {
		return platform.Opened{}, err
	}
	if s.Adopt != nil {
		return platform.Opened{}, fmt.Errorf("%s: adopting a cluster is supported on platforms local and aws, not gcp", s.Adopt.Source)
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
	clients, err := Connect(ctx, Config{Project: s.Project, Region: s.Region, Endpoint: s.ComputeEndpoint, UserAgent: s.UserAgent}, m)
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

// openBackend is the provider's gcp: the gcp block's project, region,
// bucket, credentials and endpoints, with the credentials checked here.
// The clients outlive the request that made them (their token source
// refreshes with the context it was made with), so they are made without
// its cancellation.
func openBackend(ctx context.Context, s platform.ProviderSettings) (platform.Backend, error) {
	g := s.GCP
	if g == nil {
		return nil, errors.New("platform \"gcp\" needs the provider's gcp block: add `gcp { region = \"...\", bucket = \"...\" }` to the autarky provider configuration")
	}
	bg := context.WithoutCancel(ctx)
	c, err := Connect(bg, Config{Project: g.Project, Region: g.Region, Endpoint: g.ComputeEndpoint,
		CredentialsJSON: []byte(g.CredentialsJSON), ImpersonateServiceAccount: g.ImpersonateServiceAccount, NoAuth: g.NoAuth, UserAgent: s.UserAgent}, nil)
	if err == nil {
		err = c.CheckCredentials(ctx)
	}
	if err != nil {
		return nil, err
	}
	st, err := c.StorageClient(bg, g.StorageEndpoint)
	if err != nil {
		return nil, err
	}
	return NewPlatform(c, st, g.Bucket, Boot{}, nil)
}
