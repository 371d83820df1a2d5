package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

func (p *Platform) scalingFile(cluster, pool string) string {
	return filepath.Join(p.clusterDir(cluster), "scaling", pool+".json")
}

// PutScalingPolicy writes a worker pool's scaling policy for the agent and
// hands the pool's size to the agent.
func (p *Platform) PutScalingPolicy(_ context.Context, s policy.Scaling) error {
	if err := s.Validate(); err != nil {
		return err
	}
	cluster, pool, err := policy.SplitPoolID(s.PoolID)
	if err != nil {
		return err
	}
	if err := p.poolExists(cluster, pool); err != nil {
		return err
	}
	if err := writeJSON(p.scalingFile(cluster, pool), s); err != nil {
		return err
	}
	return p.setSizeOwner(cluster, pool, policy.SizeOwnerAgent)
}

// GetScalingPolicy reads a pool's scaling policy; platform.ErrNotFound when
// there is none.
func (p *Platform) GetScalingPolicy(_ context.Context, poolID string) (policy.Scaling, error) {
	var s policy.Scaling
	cluster, pool, err := policy.SplitPoolID(poolID)
	if err != nil {
		return s, err
	}
	if err := readJSON(p.scalingFile(cluster, pool), &s); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return s, fmt.Errorf("scaling policy for %s: %w", poolID, platform.ErrNotFound)
		}
		return s, err
	}
	return s, nil
}

// DeleteScalingPolicy removes a pool's scaling policy and gives its size
// back to Terraform.
func (p *Platform) DeleteScalingPolicy(_ context.Context, poolID string) error {
	cluster, pool, err := policy.SplitPoolID(poolID)
	if err != nil {
		return err
	}
	if err := os.Remove(p.scalingFile(cluster, pool)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := p.setSizeOwner(cluster, pool, policy.SizeOwnerTerraform); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func (p *Platform) setSizeOwner(cluster, pool, owner string) error {
	unlock, err := p.lock(cluster)
	if err != nil {
		return err
	}
	defer unlock()
	var d policy.Pool
	if err := readJSON(p.poolFile(cluster, pool), &d); err != nil {
		return err
	}
	d.SizeOwner = owner
	return writeJSON(p.poolFile(cluster, pool), d)
}

// ScalingPolicies reads every scaling policy of the cluster.
func (c *Cluster) ScalingPolicies(context.Context) ([]policy.Scaling, error) {
	return readDir[policy.Scaling](filepath.Join(c.p.clusterDir(c.name), "scaling"))
}

// SetDesiredSize records the size the agent gave a pool, within its bounds.
func (c *Cluster) SetDesiredSize(_ context.Context, pool string, size int64) error {
	unlock, err := c.p.lock(c.name)
	if err != nil {
		return err
	}
	defer unlock()
	var d policy.Pool
	if err := readJSON(c.p.poolFile(c.name, pool), &d); err != nil {
		return err
	}
	if size < d.MinSize || size > d.MaxSize {
		return fmt.Errorf("size %d of pool %s is outside [%d, %d]", size, d.ID(), d.MinSize, d.MaxSize)
	}
	d.DesiredSize = size
	return writeJSON(c.p.poolFile(c.name, pool), d)
}

func (p *Platform) serviceFile(cluster, service string) string {
	return filepath.Join(p.clusterDir(cluster), "services", service+".json")
}

// PutServiceScalingPolicy writes a service's scaling policy for the agent.
// The cluster must exist; the service need not yet (a stack may come after
// its policy).
func (p *Platform) PutServiceScalingPolicy(ctx context.Context, s policy.ServiceScaling) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if _, err := p.Cluster(s.ClusterID).Descriptor(ctx); err != nil {
		return err
	}
	return writeJSON(p.serviceFile(s.ClusterID, s.Service), s)
}

// GetServiceScalingPolicy reads a service scaling policy by its id;
// platform.ErrNotFound when there is none.
func (p *Platform) GetServiceScalingPolicy(_ context.Context, id string) (policy.ServiceScaling, error) {
	var s policy.ServiceScaling
	cluster, service, err := policy.SplitServiceScalingID(id)
	if err != nil {
		return s, err
	}
	if err := readJSON(p.serviceFile(cluster, service), &s); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return s, fmt.Errorf("service scaling policy for %s: %w", id, platform.ErrNotFound)
		}
		return s, err
	}
	return s, nil
}

// DeleteServiceScalingPolicy removes a service scaling policy; one that is
// gone is not an error. The service keeps its replicas.
func (p *Platform) DeleteServiceScalingPolicy(_ context.Context, id string) error {
	cluster, service, err := policy.SplitServiceScalingID(id)
	if err != nil {
		return err
	}
	if err := os.Remove(p.serviceFile(cluster, service)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// ServiceScalingPolicies reads every service scaling policy of the cluster.
func (c *Cluster) ServiceScalingPolicies(context.Context) ([]policy.ServiceScaling, error) {
	return readDir[policy.ServiceScaling](filepath.Join(c.p.clusterDir(c.name), "services"))
}

// notifyWebhookFile holds the webhook URL a cluster's agents notify, put
// there by an operator (mode 0600, owned by root); the agents read it when
// they start without one of their own.
func (c *Cluster) notifyWebhookFile() string {
	return filepath.Join(c.p.clusterDir(c.name), "agent", "notify-webhook")
}

// NotifyWebhook reads the webhook URL the agents notify; "" when there is
// none. The URL is a secret: never returned in an error.
func (c *Cluster) NotifyWebhook(context.Context) (string, error) {
	b, err := os.ReadFile(c.notifyWebhookFile())
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("notify webhook %s: %w", c.notifyWebhookFile(), err)
	}
	return string(b), nil
}

// NotifyWebhookWhere says where NotifyWebhook reads, for messages.
func (c *Cluster) NotifyWebhookWhere() string { return c.notifyWebhookFile() }
