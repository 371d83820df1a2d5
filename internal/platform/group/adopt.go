package group

import (
	"context"
	"fmt"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// GrowTo raises pool's group's desired size to size when it is below,
// once the cloud is not busy with the group: what SetDesiredSize does for
// a pool whose descriptor is not in the store but in the agent's
// configuration file (platform.Adopt), which has checked size against
// the pool's bounds. The group's own maximum (less the surge room) still
// caps it.
func (c *Cluster) GrowTo(ctx context.Context, pool string, size int) error {
	g, err := c.Group(ctx, pool, true)
	if err != nil {
		return err
	}
	if size <= g.Desired {
		return nil
	}
	if g.Bounded && size > g.Max-Surge {
		return fmt.Errorf("node pool %s: size %d is above what %s %s allows (%d, its maximum less %d for a replacement's surge): raise the group's maximum or lower max_size", policy.PoolID(c.name, pool), size, c.groups.Kind(), g.Name, g.Max-Surge, Surge)
	}
	if err := g.busy(Grow, ""); err != nil {
		return err
	}
	return c.groups.Resize(ctx, g.Name, size)
}

// AdoptedGroups describes the groups of pools that exist, in one
// description: their desired capacity is what an agent adopting them
// starts from (platform.Adopt), since the last leader's sizes are in the
// groups, not in a store; check-config shows them all. A pool whose group
// does not exist has its group's name only.
func (c *Cluster) AdoptedGroups(ctx context.Context, pools []string) (map[string]platform.AdoptedGroup, error) {
	names := make([]string, 0, len(pools))
	for _, pool := range pools {
		names = append(names, c.GroupOf(pool))
	}
	found, err := c.groups.Describe(ctx, names, false)
	if err != nil {
		return nil, err
	}
	out := map[string]platform.AdoptedGroup{}
	for _, pool := range pools {
		a := platform.AdoptedGroup{Kind: c.groups.Kind(), Name: c.GroupOf(pool)}
		if g, ok := found[a.Name]; ok {
			a.Exists, a.Desired, a.Bounded, a.Min, a.Max = true, g.Desired, g.Bounded, g.Min, g.Max
		}
		out[pool] = a
	}
	return out, nil
}
