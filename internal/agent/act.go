package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/decide"
	"github.com/autarky/terraform-provider-autarky/internal/notify"
	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/swarm"
)

// execute journals an action and carries it out: a replacement starts at
// once; a removal runs beside the loop (resume), so a long drain never holds
// up the healing of another pool.
func (a *Agent) execute(ctx context.Context, o *observation, act decide.Action) error {
	if a.group != nil && act.InstanceID != "" && !listed(o, act.InstanceID) {
		// The group's own record no longer has the instance: it is
		// terminated already (a healed worker's), nothing to terminate.
		act.InstanceID = ""
	}
	if a.group != nil {
		act.Shrink = decide.GroupShrink(act)
	}
	e := Entry{Action: act, StartedAt: a.cfg.Now(), By: o.selfID, DrainTimeout: a.cfg.DrainTimeout}
	j, err := a.updateJournal(ctx, "start "+act.Key, func(j *Journal) { j.Entries = append(j.Entries, e) })
	if err != nil {
		return err
	}
	o.journal = j
	if act.Kind == decide.ReplaceNode {
		return a.replace(ctx, o, act)
	}
	a.resume(o)
	return nil
}

// replace starts the replacement instance and records it; the unit stays in
// flight until the decision core concludes it.
func (a *Agent) replace(ctx context.Context, o *observation, act decide.Action) error {
	drop := func(failed bool) error {
		now := a.cfg.Now()
		j, err := a.updateJournal(ctx, "drop "+act.Key, func(j *Journal) {
			j.remove(act.Key)
			if failed {
				b := j.fail(act.PoolID, now)
				a.log.Warn("replacement failed; backing off", "pool", act.PoolID, "failures", b.Failures, "next_after", decide.BackoffDelay(b.Failures).String())
			}
		})
		o.journal = j
		return err
	}
	pool, ok := o.pools[act.PoolID]
	if !ok {
		return drop(false)
	}
	var inst platform.Instance
	err := a.guarded(ctx, "start the replacement in "+act.PoolID, func(ctx context.Context) error {
		var err error
		inst, err = a.startReplacement(ctx, o, pool, act)
		return err
	})
	if errors.Is(err, errDeposed) {
		return err
	}
	if err != nil && platform.IsTransient(err) {
		// Not now (throttled, or the group is busy with its own work):
		// nothing started, no failure; the next evaluation tries again.
		if derr := drop(false); derr != nil {
			return derr
		}
		return fmt.Errorf("start replacement in %s: %w", act.PoolID, err)
	}
	a.metrics.replacements.WithLabelValues(act.PoolID, "started").Inc()
	if err != nil {
		// The platform cleaned up the instance that did not come up.
		a.metrics.replacements.WithLabelValues(act.PoolID, string(decide.OutcomeJoinFailed)).Inc()
		a.notifyAction(notify.Event{Name: "replacement_failed", Severity: notify.SeverityWarning, Pool: act.PoolID,
			Summary: fmt.Sprintf("a replacement for node %s of pool %s failed to start: healing backs off", act.NodeID, act.PoolID), Detail: err.Error()})
		if derr := drop(true); derr != nil {
			return derr
		}
		return fmt.Errorf("start replacement in %s: %w", act.PoolID, err)
	}
	a.log.Info("replacement started", "pool", act.PoolID, "instance", inst.ID, "for_node", act.NodeID, "for_instance", act.InstanceID)
	a.notifyAction(notify.Event{Name: "replacement_started", Pool: act.PoolID, Summary: fmt.Sprintf("node %s of pool %s failed: its replacement is starting", act.NodeID, act.PoolID), Detail: act.Reason})
	if inst.ID == "" {
		return nil // a group's launch: adoption records it once listed
	}
	j, err := a.updateJournal(ctx, "record the replacement of "+act.Key, func(j *Journal) {
		if i := j.find(act.Key); i >= 0 {
			j.Entries[i].Action.Replacement = inst.ID
		}
	})
	o.journal = j
	return err
}

// listed reports whether the platform listed instance id this evaluation.
func listed(o *observation, id string) bool {
	for _, in := range o.instances {
		if in.ID == id {
			return true
		}
	}
	return false
}

// startReplacement starts the instance that replaces act's subject. On a
// group (platform.GroupCluster) a worker whose instance still runs is
// terminated without shrinking, and the group launches the replacement;
// otherwise the pool grows by one (a manager's replacement joins before
// the dead one leaves, and a worker whose instance is gone is made up
// for). A group's new instance has no id yet: adoptReplacements records it
// once it is listed.
func (a *Agent) startReplacement(ctx context.Context, o *observation, pool policy.Pool, act decide.Action) (platform.Instance, error) {
	if a.group != nil && act.Role == policy.RoleWorker && act.InstanceID != "" {
		for _, in := range o.instances {
			if in.ID == act.InstanceID && in.Running {
				err := a.cluster.TerminateInstance(ctx, act.InstanceID)
				return platform.Instance{Cluster: in.Cluster, Pool: in.Pool, Role: in.Role}, err
			}
		}
	}
	return a.cluster.StartInstance(ctx, pool)
}

// demote turns manager n into a worker and waits until Raft has let it go.
func (a *Agent) demote(ctx context.Context, n swarm.Node) error {
	nodeID := n.ID
	if err := a.guarded(ctx, "demote node "+nodeID, func(ctx context.Context) error { return a.docker.Demote(ctx, nodeID) }); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return a.docker.WaitNodes(wctx, "demotion of "+nodeID, func(ns []swarm.Node) bool {
		for _, n := range ns {
			if n.ID == nodeID {
				return n.Role == policy.RoleWorker
			}
		}
		return true
	})
}

// adoptReplacements records, for each replacement in flight whose new
// instance has no id yet, the pool's instance that appeared since it
// started and no other unit claims. A replacement with no such instance
// waits when this running agent started it (a group's launch in progress);
// one that another leader, or this agent before a restart, started never
// launched, and is dropped.
func (a *Agent) adoptReplacements(ctx context.Context, o *observation) error {
	if len(o.journal.Entries) == 0 {
		return nil
	}
	claimed := map[string]bool{}
	for _, e := range o.journal.Entries {
		if e.Action.Replacement != "" {
			claimed[e.Action.Replacement] = true
		}
	}
	adopt := map[string]string{} // key -> adopted instance
	var drop []string
	for _, e := range o.journal.Entries {
		act := e.Action
		if act.Kind != decide.ReplaceNode || act.Replacement != "" {
			continue
		}
		adopted := ""
		for _, in := range o.instances {
			if in.Running && policy.PoolID(in.Cluster, in.Pool) == act.PoolID && !claimed[in.ID] &&
				!in.CreatedAt.Before(e.StartedAt.Add(-time.Second)) && in.ID != act.InstanceID {
				adopted = in.ID
				break
			}
		}
		switch {
		case adopted != "":
			claimed[adopted] = true
			adopt[act.Key] = adopted
			a.log.Info("adopting the replacement instance", "key", act.Key, "instance", adopted)
		case e.By != o.selfID || e.StartedAt.Before(a.startedAt):
			drop = append(drop, act.Key)
			a.log.Info("dropping a replacement that never started", "key", act.Key)
		}
	}
	if len(adopt) == 0 && len(drop) == 0 {
		return nil
	}
	j, err := a.updateJournal(ctx, "adopt replacements", func(j *Journal) {
		for key, id := range adopt {
			if i := j.find(key); i >= 0 {
				j.Entries[i].Action.Replacement = id
			}
		}
		for _, key := range drop {
			j.remove(key)
		}
	})
	if err != nil {
		return err
	}
	o.journal = j
	return nil
}
