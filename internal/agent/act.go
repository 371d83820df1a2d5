package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/decide"
	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/swarm"
)

// Journal is the agent's record of actions started and not finished, kept in
// the store so that any agent that becomes leader, or this one after a
// crash, finishes them instead of repeating them.
type Journal struct {
	Entries []Entry                   `json:"entries"`
	Backoff map[string]decide.Backoff `json:"backoff,omitempty"`
	// LastScaleUp and LastScaleDown keep the cooldowns across leaders.
	LastScaleUp   map[string]time.Time `json:"last_scale_up,omitempty"`
	LastScaleDown map[string]time.Time `json:"last_scale_down,omitempty"`
}

// Entry is one action in flight.
type Entry struct {
	Action    decide.Action `json:"action"`
	StartedAt time.Time     `json:"started_at"`
	// By is the node id of the agent that started it.
	By string `json:"by"`
}

func (j *Journal) find(key string) int {
	for i, e := range j.Entries {
		if e.Action.Key == key {
			return i
		}
	}
	return -1
}

func (j *Journal) remove(key string) {
	if i := j.find(key); i >= 0 {
		j.Entries = append(j.Entries[:i], j.Entries[i+1:]...)
	}
}

func (a *Agent) save(ctx context.Context, o *observation) error {
	if _, err := a.cluster.SaveJournal(ctx, &o.journal, ""); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// execute journals an action, carries it out and finishes it.
func (a *Agent) execute(ctx context.Context, o *observation, act decide.Action) error {
	if a.group != nil && act.InstanceID != "" && !listed(o, act.InstanceID) {
		// The group's own record no longer has the instance: it is
		// terminated already (a healed worker's), nothing to terminate.
		act.InstanceID = ""
	}
	if a.group != nil && act.Kind != decide.ReplaceNode && act.InstanceID != "" {
		// On a group: a manager's termination undoes the surge its
		// replacement started with, and a failed replacement gives its
		// capacity back until the next attempt; a healed worker's instance
		// was terminated without shrinking, and is gone already.
		act.Shrink = act.Role == policy.RoleManager ||
			act.Outcome == decide.OutcomeJoinFailed || act.Outcome == decide.OutcomeReplacementFailed
	}
	o.journal.Entries = append(o.journal.Entries, Entry{Action: act, StartedAt: a.cfg.Now(), By: o.selfID})
	if err := a.save(ctx, o); err != nil {
		return err
	}
	if act.Kind == decide.ReplaceNode {
		return a.replace(ctx, o, act)
	}
	if err := a.remove(ctx, act); err != nil {
		// Stays journaled: the next evaluation finishes it.
		return err
	}
	return a.finish(ctx, o, act)
}

// replace starts the replacement instance and records it; the unit stays in
// flight until the decision core concludes it.
func (a *Agent) replace(ctx context.Context, o *observation, act decide.Action) error {
	pool, ok := o.pools[act.PoolID]
	if !ok {
		o.journal.remove(act.Key)
		return a.save(ctx, o)
	}
	inst, err := a.startReplacement(ctx, o, pool, act)
	if err != nil && platform.IsTransient(err) {
		// Not now (throttled, or the group is busy with its own work):
		// nothing started, no failure; the next evaluation tries again.
		o.journal.remove(act.Key)
		if serr := a.save(ctx, o); serr != nil {
			return serr
		}
		return fmt.Errorf("start replacement in %s: %w", act.PoolID, err)
	}
	a.metrics.replacements.WithLabelValues(act.PoolID, "started").Inc()
	if err != nil {
		// The platform cleaned up the instance that did not come up.
		o.journal.remove(act.Key)
		a.fail(o, act.PoolID)
		a.metrics.replacements.WithLabelValues(act.PoolID, string(decide.OutcomeJoinFailed)).Inc()
		if serr := a.save(ctx, o); serr != nil {
			return serr
		}
		return fmt.Errorf("start replacement in %s: %w", act.PoolID, err)
	}
	if i := o.journal.find(act.Key); i >= 0 {
		o.journal.Entries[i].Action.Replacement = inst.ID
	}
	a.log.Info("replacement started", "pool", act.PoolID, "instance", inst.ID, "for_node", act.NodeID, "for_instance", act.InstanceID)
	return a.save(ctx, o)
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

// remove carries out a removal or termination. Every step is idempotent, so
// a journaled one is safely carried out again after a crash.
func (a *Agent) remove(ctx context.Context, act decide.Action) error {
	if act.Kind == decide.RemoveNode && act.NodeID != "" {
		if act.Drain && !a.drain(ctx, act.NodeID, a.cfg.DrainTimeout) {
			a.log.Warn("drain timeout reached: removing the node with tasks still running (forced)", "node", act.NodeID, "drain_timeout", a.cfg.DrainTimeout)
		}
		if act.Demote {
			if err := a.demote(ctx, act.NodeID); err != nil {
				return err
			}
		}
		if err := a.docker.Remove(ctx, act.NodeID, true); err != nil {
			return err
		}
	}
	if act.InstanceID != "" {
		terminate := a.cluster.TerminateInstance
		if act.Shrink && a.group != nil {
			terminate = a.group.TerminateAndShrink
		}
		if err := terminate(ctx, act.InstanceID); err != nil {
			return fmt.Errorf("terminate instance %s: %w", act.InstanceID, err)
		}
	}
	a.log.Info("removed", "kind", act.Kind, "pool", act.PoolID, "node", act.NodeID, "instance", act.InstanceID)
	return nil
}

// drain moves a node's tasks elsewhere and waits until none still runs
// there; false when timeout came first (or the drain could not start).
func (a *Agent) drain(ctx context.Context, nodeID string, timeout time.Duration) bool {
	if err := a.docker.SetAvailability(ctx, nodeID, "drain"); err != nil {
		a.log.Warn("drain failed", "node", nodeID, "error", err)
		return false
	}
	deadline := time.Now().Add(timeout)
	for {
		n, err := a.docker.TasksStillRunning(ctx, nodeID)
		if err == nil && n == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// demote turns a manager into a worker and waits until Raft has let it go.
func (a *Agent) demote(ctx context.Context, nodeID string) error {
	n, found, err := a.docker.Node(ctx, nodeID)
	if err != nil {
		return err
	}
	if !found || n.Role != policy.RoleManager {
		return nil
	}
	if err := a.docker.Demote(ctx, nodeID); err != nil {
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

// finish drops an action, and the unit it concludes, from the journal.
func (a *Agent) finish(ctx context.Context, o *observation, act decide.Action) error {
	o.journal.remove(act.Key)
	if act.Completes != "" {
		o.journal.remove(act.Completes)
		switch act.Outcome {
		case decide.OutcomeReplaced:
			delete(o.journal.Backoff, act.PoolID)
		case decide.OutcomeJoinFailed, decide.OutcomeReplacementFailed:
			a.fail(o, act.PoolID)
		}
		if act.Outcome != "" {
			a.metrics.replacements.WithLabelValues(act.PoolID, string(act.Outcome)).Inc()
		}
	}
	return a.save(ctx, o)
}

func (a *Agent) fail(o *observation, pool string) {
	if o.journal.Backoff == nil {
		o.journal.Backoff = map[string]decide.Backoff{}
	}
	b := o.journal.Backoff[pool]
	b.Failures++
	b.LastFailure = a.cfg.Now()
	o.journal.Backoff[pool] = b
	a.log.Warn("replacement failed; backing off", "pool", pool, "failures", b.Failures, "next_after", decide.BackoffDelay(b.Failures).String())
}

// recover finishes what is in flight: removals are carried out again (they
// are idempotent), and a replacement whose new instance has no id yet
// adopts it once it is listed (adoptReplacements).
func (a *Agent) recover(ctx context.Context, o *observation) error {
	if len(o.journal.Entries) == 0 {
		return nil
	}
	entries := append([]Entry(nil), o.journal.Entries...)
	for _, e := range entries {
		act := e.Action
		switch {
		case act.Kind != decide.ReplaceNode:
			a.log.Info("finishing an action found in the journal", "kind", act.Kind, "key", act.Key)
			if err := a.remove(ctx, act); err != nil {
				return fmt.Errorf("finish %s: %w", act.Key, err)
			}
			if err := a.finish(ctx, o, act); err != nil {
				return err
			}
		}
	}
	return a.adoptReplacements(ctx, o)
}

// adoptReplacements records, for each replacement in flight whose new
// instance has no id yet, the pool's instance that appeared since it
// started and no other unit claims. A replacement with no such instance
// waits when this running agent started it (a group's launch in progress);
// one that another leader, or this agent before a restart, started never
// launched, and is dropped.
func (a *Agent) adoptReplacements(ctx context.Context, o *observation) error {
	claimed := map[string]bool{}
	for _, e := range o.journal.Entries {
		if e.Action.Replacement != "" {
			claimed[e.Action.Replacement] = true
		}
	}
	changed := false
	for _, e := range append([]Entry(nil), o.journal.Entries...) {
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
		i := o.journal.find(act.Key)
		switch {
		case adopted != "":
			claimed[adopted] = true
			o.journal.Entries[i].Action.Replacement = adopted
			a.log.Info("adopting the replacement instance", "key", act.Key, "instance", adopted)
		case e.By != o.selfID || e.StartedAt.Before(a.startedAt):
			o.journal.remove(act.Key)
			a.log.Info("dropping a replacement that never started", "key", act.Key)
		default:
			continue
		}
		changed = true
	}
	if !changed {
		return nil
	}
	return a.save(ctx, o)
}
