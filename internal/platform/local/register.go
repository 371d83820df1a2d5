package local

import (
	"context"
	"os"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

func init() {
	platform.Register("local", openAgent)
	platform.RegisterBackend("local", openBackend)
}

// openAgent is the agent's local: the provider's state dir, and the
// launcher named by AUTARKY_LOCAL_LAUNCHER for an agent in a container.
func openAgent(ctx context.Context, s platform.AgentSettings) (platform.Opened, error) {
	if err := platform.Refuse("local", map[string]string{"--region": s.Region, "--project": s.Project, "--bucket": s.Bucket,
		"--compute-endpoint": s.ComputeEndpoint, "--storage-endpoint": s.StorageEndpoint}); err != nil {
		return platform.Opened{}, err
	}
	p, err := New(policy.StateDirFrom(s.StateDir), s.Progress, Options{Launcher: os.Getenv(LauncherEnv)})
	if err != nil {
		return platform.Opened{}, err
	}
	if s.Adopt != nil {
		return openAdopted(ctx, p, s)
	}
	return platform.Opened{Cluster: p.Cluster(s.Cluster)}, nil
}

// openBackend is the provider's local: the local block's state dir (else
// AUTARKY_STATE_DIR, else the default) and workload binary.
func openBackend(_ context.Context, s platform.ProviderSettings) (platform.Backend, error) {
	return New(policy.StateDirFrom(s.Local.StateDir), nil, Options{WorkloadBinary: s.Local.WorkloadBinary})
}

// Name is "local" (platform.Backend).
func (p *Platform) Name() string { return policy.PlatformLocal }

// WithProgress is a copy of p whose progress goes to progress.
func (p *Platform) WithProgress(progress platform.Progress) platform.Backend {
	q := *p
	if progress == nil {
		progress = platform.NoProgress
	}
	q.progress = progress
	return &q
}

// Fill leaves c as it is: the local platform's settings are not the
// cluster's.
func (p *Platform) Fill(c policy.Cluster) policy.Cluster { return c }

// Preflight checks nothing beyond New's checks of the state dir.
func (p *Platform) Preflight(context.Context, string) error { return nil }
