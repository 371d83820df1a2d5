package aws

import (
	"context"
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

func init() {
	platform.Register("aws", openAgent)
	platform.RegisterBackend("aws", openBackend)
	platform.RegisterRights("aws", rights)
}

// openAgent is the agent's aws: the region (else the standard chain's),
// credentials from the standard chain (the instance role on a manager),
// checked before the agent starts.
func openAgent(ctx context.Context, s platform.AgentSettings) (platform.Opened, error) {
	if err := platform.Refuse("aws", map[string]string{"--project": s.Project, "--bucket": s.Bucket, "--compute-endpoint": s.ComputeEndpoint,
		"--storage-endpoint": s.StorageEndpoint, "--state-dir": s.StateDir}); err != nil {
		return platform.Opened{}, err
	}
	if s.Region != "" {
		if err := policy.ValidateAWSRegion(s.Region); err != nil {
			return platform.Opened{}, fmt.Errorf("--region: %w", err)
		}
	}
	m, err := NewMetrics(nil)
	if err != nil {
		return platform.Opened{}, err
	}
	clients, err := Connect(ctx, Config{Region: s.Region, UserAgent: s.UserAgent}, m)
	if err != nil {
		return platform.Opened{}, fmt.Errorf("--platform aws: %w", err)
	}
	if err := CheckCredentials(ctx, clients.Config); err != nil {
		return platform.Opened{}, fmt.Errorf("--platform aws: %w", err)
	}
	var groups map[string]string
	if s.Adopt != nil {
		// An adopted pool's group is the one the file names.
		groups = s.Adopt.Groups
	}
	cl, err := NewCluster(clients, s.Cluster, groups)
	if err != nil {
		return platform.Opened{}, err
	}
	opened := platform.Opened{Cluster: cl, Collectors: []prometheus.Collector{m.Retries, m.RateWait}}
	if s.Adopt != nil {
		if opened.Cluster, err = platform.Adopt(ctx, cl, s.Adopt, "SSM path "+ClusterPath(s.Cluster)); err != nil {
			return platform.Opened{}, err
		}
	}
	return opened, nil
}

// openBackend is the provider's aws: the aws block's region, credentials
// and endpoints, with the credentials checked here so that missing ones
// fail with the error an AWS provider user expects.
func openBackend(ctx context.Context, s platform.ProviderSettings) (platform.Backend, error) {
	if s.AWS == nil {
		return nil, errors.New("platform \"aws\" needs the provider's aws block: add `aws { region = \"...\" }` to the autarky provider configuration")
	}
	a := s.AWS
	c := Config{Region: a.Region, Profile: a.Profile, SharedConfigFiles: a.SharedConfigFiles,
		WebIdentity: a.WebIdentity, AssumeRole: a.AssumeRole, Endpoints: a.Endpoints, UserAgent: s.UserAgent}
	cfg, err := LoadConfig(ctx, c)
	if err == nil {
		err = CheckCredentials(ctx, cfg)
	}
	if err != nil {
		return nil, err
	}
	return NewPlatform(NewClients(cfg, c, nil), nil), nil
}
