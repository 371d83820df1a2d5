package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/decide"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// executeScale grows or shrinks a pool. The new size is recorded first, so
// healing never replaces a node scale-in removes on purpose.
func (a *Agent) executeScale(ctx context.Context, o *observation, sp decide.ScalePool, d decide.ScaleDecision) error {
	pool := o.pools[d.PoolID]
	if err := a.cluster.SetDesiredSize(ctx, pool.Name, int64(d.To)); err != nil {
		return err
	}
	if o.journal.LastScaleUp == nil {
		o.journal.LastScaleUp = map[string]time.Time{}
	}
	if o.journal.LastScaleDown == nil {
		o.journal.LastScaleDown = map[string]time.Time{}
	}
	switch d.Direction {
	case decide.ScaleUp:
		o.journal.LastScaleUp[d.PoolID] = o.now
		if err := a.save(ctx, o); err != nil {
			return err
		}
		if a.group != nil {
			// The group launches the instances; they join by their user data.
			a.log.Info("scaled out", "pool", d.PoolID, "desired", d.To)
		}
		for i := d.From; i < d.To && a.group == nil; i++ {
			inst, err := a.cluster.StartInstance(ctx, pool)
			if err != nil {
				return fmt.Errorf("scale out %s: %w", d.PoolID, err)
			}
			a.log.Info("scaled out", "pool", d.PoolID, "instance", inst.ID)
		}
		a.metrics.scaleActions.WithLabelValues(d.PoolID, "up").Add(float64(d.To - d.From))
		if d.Code == decide.CodeAlert {
			a.consumeAlerts(sp)
		}
		a.mu.Lock()
		a.rebalanceDue[d.PoolID] = true
		a.mu.Unlock()
	case decide.ScaleDown:
		o.journal.LastScaleDown[d.PoolID] = o.now
		for _, nodeID := range d.RemoveNodes {
			inst := ""
			for _, n := range sp.Nodes {
				if n.ID == nodeID {
					inst = n.InstanceID
				}
			}
			if a.group != nil && inst != "" {
				if err := a.group.CheckScaleIn(ctx, pool.Name, inst); err != nil {
					// Not this node, not now: nothing is drained; the
					// next evaluation decides again.
					a.addDecision(o.now, d.PoolID, "hold", "platform_busy", fmt.Sprintf("node %s is not scaled in now: %v", nodeID, err), false)
					continue
				}
			}
			act := decide.Action{Kind: decide.RemoveNode, Key: "scale_in/" + d.PoolID + "/node:" + nodeID, PoolID: d.PoolID, Role: policy.RoleWorker,
				NodeID: nodeID, InstanceID: inst, Drain: true, Shrink: true, Reason: "scale-in: " + d.Message}
			o.journal.Entries = append(o.journal.Entries, Entry{Action: act, StartedAt: a.cfg.Now(), By: o.selfID})
			if err := a.save(ctx, o); err != nil {
				return err
			}
			forced := !a.drain(ctx, nodeID, sp.Rules.DrainTimeout)
			if err := a.remove(ctx, decide.Action{Kind: decide.RemoveNode, NodeID: nodeID, InstanceID: inst, Shrink: true}); err != nil {
				return err
			}
			result := "drained"
			if forced {
				result = "forced"
				a.log.Warn("scale-in: drain_timeout reached, node removed with tasks still running (forced)", "pool", d.PoolID, "node", nodeID)
				a.addDecision(o.now, d.PoolID, "scale_down", "forced", fmt.Sprintf("node %s removed after drain_timeout %s with tasks still running", nodeID, sp.Rules.DrainTimeout), false)
			}
			a.metrics.scaleIns.WithLabelValues(d.PoolID, result).Inc()
			if err := a.finish(ctx, o, act); err != nil {
				return err
			}
		}
		a.metrics.scaleActions.WithLabelValues(d.PoolID, "down").Add(float64(len(d.RemoveNodes)))
	}
	return a.save(ctx, o)
}

func (a *Agent) consumeAlerts(sp decide.ScalePool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range sp.Checks {
		if c.Kind == decide.CheckAlert && c.Firing {
			st := a.alerts[c.Name]
			st.Handled = true
			a.alerts[c.Name] = st
		}
	}
}

// rebalance spreads services labelled autarky.rebalance=true onto a pool's
// new nodes once they are all Ready, one service per evaluation and each at
// most once per rebalanceEvery.
func (a *Agent) rebalance(ctx context.Context, o *observation) {
	a.mu.Lock()
	due := make([]string, 0, len(a.rebalanceDue))
	for p := range a.rebalanceDue {
		due = append(due, p)
	}
	a.mu.Unlock()
	for _, poolID := range due {
		ready := true
		for _, in := range o.instances {
			if policy.PoolID(in.Cluster, in.Pool) != poolID || !in.Running {
				continue
			}
			joined := false
			for _, n := range o.nodes {
				if n.EngineLabels[policy.LabelInstance] == in.ID && n.State == "ready" {
					joined = true
				}
			}
			ready = ready && joined
		}
		if !ready {
			continue
		}
		svcs, err := a.docker.LabelledServices(ctx, LabelRebalance, "true")
		if err != nil {
			a.log.Warn("rebalance: listing services failed", "error", err)
			return
		}
		a.mu.Lock()
		delete(a.rebalanceDue, poolID)
		a.mu.Unlock()
		for _, id := range svcs {
			a.mu.Lock()
			last := a.rebalanced[id]
			a.mu.Unlock()
			if time.Since(last) < rebalanceEvery {
				continue
			}
			if err := a.docker.RebalanceService(ctx, id); err != nil {
				a.log.Warn("rebalance failed", "service", id, "error", err)
				continue
			}
			a.mu.Lock()
			a.rebalanced[id] = time.Now()
			a.mu.Unlock()
			a.log.Info("rebalanced service onto new nodes", "service", id, "pool", poolID)
			a.addDecision(o.now, poolID, "rebalance", "rebalance", "service "+id+" rescheduled to spread onto the new nodes", false)
			return // one service per evaluation: a bounded rate
		}
	}
}
