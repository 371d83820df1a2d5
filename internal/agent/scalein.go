package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/decide"
	"github.com/autarky/terraform-provider-autarky/internal/notify"
	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// executeScale grows or shrinks a pool. Growth records the new size, then
// starts the instances (a group launches them itself). A scale-in first
// asks the platform which chosen nodes may go now, and only then records
// the lower size and journals their removal as one batch; the removals
// then run beside the loop (drain, terminate with shrink, remove), one at
// a time, and a termination that fails for good undoes the rest of the
// batch (undoScaleIn).
func (a *Agent) executeScale(ctx context.Context, o *observation, sp decide.ScalePool, d decide.ScaleDecision) error {
	pool := o.pools[d.PoolID]
	switch d.Direction {
	case decide.ScaleUp:
		if err := a.guarded(ctx, "set the desired size of "+d.PoolID, func(ctx context.Context) error {
			return a.cluster.SetDesiredSize(ctx, pool.Name, int64(d.To))
		}); err != nil {
			return err
		}
		j, err := a.updateJournal(ctx, "scale up "+d.PoolID, func(j *Journal) {
			if j.LastScaleUp == nil {
				j.LastScaleUp = map[string]time.Time{}
			}
			j.LastScaleUp[d.PoolID] = o.now
			if a.group != nil {
				// The group launches asynchronously and its describes lag:
				// the request counts as capacity until it is listed
				// (decide.ScaleRequest, settleProvisioning).
				if j.Requested == nil {
					j.Requested = map[string]decide.ScaleRequest{}
				}
				j.Requested[d.PoolID] = decide.ScaleRequest{Size: d.To, At: o.now}
			}
		})
		if err != nil {
			return err
		}
		o.journal = j
		if a.group != nil {
			// The group launches the instances; they join by their user data.
			a.log.Info("scaled out", "pool", d.PoolID, "desired", d.To)
		}
		for i := d.From; i < d.To && a.group == nil; i++ {
			var inst platform.Instance
			if err := a.guarded(ctx, "start an instance in "+d.PoolID, func(ctx context.Context) error {
				var err error
				inst, err = a.cluster.StartInstance(ctx, pool)
				return err
			}); err != nil {
				return fmt.Errorf("scale out %s: %w", d.PoolID, err)
			}
			a.log.Info("scaled out", "pool", d.PoolID, "instance", inst.ID)
		}
		a.metrics.scaleActions.WithLabelValues(d.PoolID, "up").Add(float64(d.To - d.From))
		a.notifyAction(notify.Event{Name: "pool_scaled_out", Pool: d.PoolID, Summary: fmt.Sprintf("pool %s grows from %d to %d nodes", d.PoolID, d.From, d.To), Detail: d.Message})
		if d.Code == decide.CodeAlert {
			a.consumeAlerts(sp)
		}
		a.mu.Lock()
		a.rebalanceDue[d.PoolID] = true
		a.mu.Unlock()
	case decide.ScaleDown:
		var acts []decide.Action
		for _, act := range decide.ScaleInActions(d, sp) {
			if a.group != nil && act.InstanceID != "" {
				if err := a.group.CheckScaleIn(ctx, pool.Name, act.InstanceID); err != nil {
					// Not this node, not now: nothing is drained and the
					// size stays; the next evaluation decides again.
					a.addDecision(o.now, d.PoolID, "hold", "platform_busy", fmt.Sprintf("node %s is not scaled in now: %v", act.NodeID, err), false)
					continue
				}
			}
			acts = append(acts, act)
		}
		if len(acts) == 0 {
			return nil
		}
		to := d.From - len(acts)
		if err := a.guarded(ctx, "set the desired size of "+d.PoolID, func(ctx context.Context) error {
			return a.cluster.SetDesiredSize(ctx, pool.Name, int64(to))
		}); err != nil {
			return err
		}
		batch := fmt.Sprintf("%s@%s", d.PoolID, o.now.UTC().Format(time.RFC3339Nano))
		j, err := a.updateJournal(ctx, "scale in "+d.PoolID, func(j *Journal) {
			if j.LastScaleDown == nil {
				j.LastScaleDown = map[string]time.Time{}
			}
			j.LastScaleDown[d.PoolID] = o.now
			for _, act := range acts {
				j.Entries = append(j.Entries, Entry{Action: act, StartedAt: o.now, By: o.selfID, Batch: batch, DrainTimeout: sp.Rules.DrainTimeout})
			}
		})
		if err != nil {
			return err
		}
		o.journal = j
		a.log.Info("scaling in", "pool", d.PoolID, "from", d.From, "to", to, "nodes", len(acts))
		a.metrics.scaleActions.WithLabelValues(d.PoolID, "down").Add(float64(len(acts)))
		a.notifyAction(notify.Event{Name: "pool_scaled_in", Pool: d.PoolID, Summary: fmt.Sprintf("pool %s shrinks from %d to %d nodes, draining each first", d.PoolID, d.From, to), Detail: d.Message})
		a.resume(o)
	}
	return nil
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
			if err := a.guarded(ctx, "rebalance service "+id, func(ctx context.Context) error { return a.docker.RebalanceService(ctx, id) }); err != nil {
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
