package local

import (
	"context"
	"fmt"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// Guests are nodes of a local cluster's swarm that stand for instances of
// another platform. A test harness that plays a cloud's user data
// (cloud-init) on this machine starts one guest for every instance the
// cloud (or its emulator) runs: a real dockerd that joins the swarm with
// the engine label autarky.instance set to the cloud's instance id, so an
// agent on that platform maps the node to its instance exactly as it does
// in the cloud. The guest lives in the local cluster's state like any
// node, and DeleteCluster removes it too.

// StartGuest starts a guest node for instanceID of pool and joins it to
// the local cluster's swarm in pool's role, with the engine labels a
// cloud's user data gives it (no node labels: see joinUnlabelled). It returns
// once the node is Ready; a guest that does not join is removed again.
func (p *Platform) StartGuest(ctx context.Context, cluster string, pool policy.Pool, instanceID string) (platform.Instance, error) {
	mgr, err := p.manager(ctx, cluster)
	if err != nil {
		return platform.Instance{}, err
	}
	defer mgr.Close()
	f, err := p.startInstanceWith(ctx, cluster, pool.Name, pool.Role,
		map[string]string{policy.LabelCluster: pool.Cluster, policy.LabelInstance: instanceID})
	if err != nil {
		return f.Instance, err
	}
	// A worker on a cloud cannot label its own node (only managers can):
	// the guest joins with its engine labels alone, and the agent labels it.
	if err := p.joinUnlabelled(ctx, mgr, &f, pool); err != nil {
		tail := logTail(f.Dir, 5)
		_ = p.removeInstance(context.Background(), f)
		return f.Instance, fmt.Errorf("guest %s for %s: %w\ndockerd log:\n%s", f.ID, instanceID, err, tail)
	}
	return f.Instance, nil
}

// RemoveGuest stops a guest node (by its local instance id) and deletes
// its directory, as a terminated instance goes away; one already gone is
// not an error.
func (p *Platform) RemoveGuest(ctx context.Context, cluster, id string) error {
	insts, err := p.instances(cluster, "")
	if err != nil {
		return err
	}
	for _, f := range insts {
		if f.ID == id {
			return p.removeInstance(ctx, f)
		}
	}
	return nil
}
