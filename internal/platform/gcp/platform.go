package gcp

import (
	"context"
	"fmt"

	"cloud.google.com/go/storage"
	"google.golang.org/api/option"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/platform/group"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// Platform is what the provider does on Google Cloud (platform.Backend):
// the shared layer's provisioning (group.Platform) over regional Managed
// Instance Groups (Groups) and the cluster's store in a Cloud Storage
// bucket (Store). This file is all the gcp platform adds to the adapters:
// how they are put together.
type Platform struct {
	*group.Platform
	c       *Clients
	storage *storage.Client
	bucket  string
	boot    Boot
}

var _ platform.Backend = (*Platform)(nil)

// Boot is what the startup script needs beyond the descriptors: the
// endpoints the VMs reach (empty: Google's).
type Boot struct {
	MetadataEndpoint, StorageEndpoint, ComputeEndpoint string
}

// StorageClient makes a Cloud Storage client with the Compute Engine
// clients' credentials; endpoint "" is Google's, else the base URL of the
// JSON API ("https://storage.example/storage/v1/").
func (c *Clients) StorageClient(ctx context.Context, endpoint string) (*storage.Client, error) {
	opts := []option.ClientOption{option.WithoutAuthentication()}
	if c.tokens != nil {
		opts = []option.ClientOption{option.WithTokenSource(c.tokens)}
	}
	if endpoint != "" {
		opts = append(opts, option.WithEndpoint(endpoint))
	}
	if c.userAgent != "" {
		opts = append(opts, option.WithUserAgent(c.userAgent))
	}
	st, err := storage.NewClient(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("gcp: Cloud Storage client: %w", err)
	}
	return st, nil
}

// NewPlatform provisions with c in project c.Project and region c.Region,
// with every cluster's store in bucket (through st); progress receives what
// it does.
func NewPlatform(c *Clients, st *storage.Client, bucket string, boot Boot, progress platform.Progress) (*Platform, error) {
	if err := ValidateBucket(bucket); err != nil {
		return nil, fmt.Errorf("gcp.bucket: %w", err)
	}
	groups := newGroups(c, boot)
	gp := group.NewPlatform(group.Cloud{
		Platform: policy.PlatformGCP,
		Where:    fmt.Sprintf("Cloud Storage gs://%s/%s/ (project %s, region %s)", bucket, ObjectPrefix, c.Project, c.Region),
		Groups:   groups,
		Store:    func(cluster string) (*group.Store, error) { return openStore(st, bucket, cluster) },
	}, progress)
	return &Platform{Platform: gp, c: c, storage: st, bucket: bucket, boot: boot}, nil
}

// Settings are the project, region and bucket the platform fills into a
// cluster's gcp settings: the provider's, so that the descriptor tells
// the agent and the startup script where the cluster lives.
func (p *Platform) Settings(g policy.GCP) policy.GCP {
	g.Project, g.Region, g.Bucket = p.c.Project, p.c.Region, p.bucket
	return g
}

// Fill is Settings for a gcp cluster's descriptor (platform.Backend).
func (p *Platform) Fill(c policy.Cluster) policy.Cluster {
	if c.GCP != nil {
		g := p.Settings(*c.GCP)
		c.GCP = &g
	}
	return c
}

// Preflight checks that the bucket exists and cluster's root in it can be
// listed (one list call), so that a plan creating a cluster fails on a
// bucket it could never write.
func (p *Platform) Preflight(ctx context.Context, cluster string) error {
	s, err := NewStore(p.storage, p.bucket, cluster)
	if err == nil {
		err = s.Check(ctx)
	}
	if err != nil {
		return fmt.Errorf("gcp.bucket: %w", err)
	}
	return nil
}

// WithProgress is a copy of p whose progress goes to progress.
func (p *Platform) WithProgress(progress platform.Progress) platform.Backend {
	q, _ := NewPlatform(p.c, p.storage, p.bucket, p.boot, progress)
	q.Poll = p.Poll
	return q
}

// Cluster opens the agent's view of cluster name.
func (p *Platform) Cluster(name string) (*group.Cluster, error) {
	return NewCluster(p.c, p.storage, p.bucket, name)
}

// NewCluster opens cluster name for the agent: its store in bucket, its
// pools the groups of c's project and region.
func NewCluster(c *Clients, st *storage.Client, bucket, name string) (*group.Cluster, error) {
	s, err := openStore(st, bucket, name)
	if err != nil {
		return nil, err
	}
	return group.NewCluster(s, newGroups(c, Boot{}), nil)
}

// openStore is the shared store over the bucket, with the journal in one
// object whose generation is its revision (group.KVJournal).
func openStore(st *storage.Client, bucket, cluster string) (*group.Store, error) {
	kv, err := NewStore(st, bucket, cluster)
	if err != nil {
		return nil, err
	}
	return group.NewStore(kv, group.KVJournal(kv), cluster)
}

// newGroups is Groups whose templates boot with the startup script.
func newGroups(c *Clients, boot Boot) *Groups {
	g := NewGroups(c)
	g.Script = func(cl policy.Cluster, pool policy.Pool) (string, error) {
		s := StartupScript{Cluster: cl.Name, Pool: pool.Name, Role: pool.Role, Project: c.Project, Region: c.Region,
			ManagerGroup: g.Name(cl.Name, policy.ManagerPoolName), Labels: pool.Labels,
			MetadataEndpoint: boot.MetadataEndpoint, StorageEndpoint: boot.StorageEndpoint, ComputeEndpoint: boot.ComputeEndpoint}
		if cl.GCP != nil {
			s.Bucket = cl.GCP.Bucket
		}
		if hb, err := policy.ParseDuration(cl.HeartbeatPeriod); err == nil {
			s.HeartbeatPeriod = hb
		}
		if pool.Role == policy.RoleManager && cl.Agent != nil && cl.Agent.Enabled {
			s.Agent = &StartupAgent{URL: cl.Agent.BinaryURL, SHA256: cl.Agent.BinarySHA256,
				EvaluationInterval: cl.Agent.EvaluationInterval, DryRun: cl.Agent.DryRun}
		}
		return RenderStartupScript(s)
	}
	return g
}
