package aws

import (
	"fmt"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/platform/group"
)

var _ platform.Backend = (*Platform)(nil)

// Platform is what the provider does on AWS (platform.Backend): the
// shared layer's provisioning (group.Platform) over launch templates and
// Auto Scaling Groups (asgGroups) and the SSM store. Every pool, the
// managers included, is one launch template and one group named
// GroupName(cluster, pool).
type Platform struct {
	*group.Platform
	clients *Clients
}

// NewPlatform provisions with c; progress receives what it does.
func NewPlatform(c *Clients, progress platform.Progress) *Platform {
	groups := newASGGroups(c)
	gp := group.NewPlatform(group.Cloud{
		Platform: "aws",
		Where:    fmt.Sprintf("SSM Parameter Store (%s, region %s)", PathPrefix, c.Config.Region),
		Groups:   groups,
		Store: func(cluster string) (*group.Store, error) {
			s, err := NewStore(c.SSM, cluster)
			if err != nil {
				return nil, err
			}
			return s.Store, nil
		},
	}, progress)
	groups.plat = gp
	return &Platform{Platform: gp, clients: c}
}

// Cluster opens the agent's view of cluster name.
func (p *Platform) Cluster(name string) (*Cluster, error) { return NewCluster(p.clients, name, nil) }

// WithProgress is a copy of p whose progress goes to progress.
func (p *Platform) WithProgress(progress platform.Progress) platform.Backend {
	q := NewPlatform(p.clients, progress)
	q.Poll = p.Poll
	return q
}
