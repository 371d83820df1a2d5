package agent

import (
	"context"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// labelNodes gives every node of the cluster the Swarm node labels its
// pool declares, beside autarky.cluster, autarky.pool and
// autarky.instance taken from its engine labels. On a cloud a joining
// worker cannot label its own node (only managers can), so the leader's
// agent does it; labels set by hand are kept. Placement constraints such
// as node.labels.tier==web then hold for nodes the cloud launched. It
// runs for every cluster whose platform does not label nodes as it joins
// them (platform.JoinLabeller): the clouds', and an adopted cluster's on
// every platform, whose engines were started by hand.
func (a *Agent) labelNodes(ctx context.Context, o *observation) {
	for _, n := range o.nodes {
		if n.EngineLabels[policy.LabelCluster] != o.cluster.Name {
			continue
		}
		pool, ok := o.pools[policy.PoolID(o.cluster.Name, n.EngineLabels[policy.LabelPool])]
		if !ok {
			continue
		}
		want := map[string]string{}
		for k, v := range pool.Labels {
			want[k] = v
		}
		for _, k := range []string{policy.LabelCluster, policy.LabelPool, policy.LabelInstance} {
			want[k] = n.EngineLabels[k]
		}
		missing := false
		for k, v := range want {
			if got, ok := n.Labels[k]; !ok || got != v {
				missing = true
			}
		}
		if !missing {
			continue
		}
		for k, v := range n.Labels {
			if _, ours := want[k]; !ours {
				want[k] = v
			}
		}
		if err := a.guarded(ctx, "label node "+n.ID, func(ctx context.Context) error { return a.docker.SetLabels(ctx, n.ID, want) }); err != nil {
			a.log.Warn("labelling node failed", "node", n.ID, "error", err)
			continue
		}
		a.log.Info("labelled node with its pool's labels", "node", n.ID, "pool", pool.ID())
	}
}
