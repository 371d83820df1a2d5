package agent

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/autarky/terraform-provider-autarky/internal/decide"
	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/swarm"
)

// observation is one evaluation's view of the world.
type observation struct {
	now     time.Time
	selfID  string
	leader  bool
	nodes   []swarm.Node
	pending []swarm.PendingTask       // tasks the scheduler could not place
	load    map[string]swarm.TaskLoad // by node: running tasks and their reservations
	// incomplete says why the task listing is not the whole truth (see
	// swarm.TaskView); nothing is scaled in on such a view.
	incomplete string
	cluster    policy.Cluster
	pools      map[string]policy.Pool // by pool id, managers included
	poolOrder  []string
	healing    map[string]policy.Healing
	instances  []platform.Instance
	journal    Journal
	scaling    *scaling

	// services are every Swarm service, for service scaling (service.go).
	services []swarm.Service
}

// quorumLost reports errors a manager answers with when Raft has no leader.
func quorumLost(err error) bool {
	s := err.Error()
	return strings.Contains(s, "does not have a leader") || strings.Contains(s, "no leader") ||
		strings.Contains(s, "too few managers are online")
}

// evaluate is one pass: observe everything (Swarm, the store, the journal,
// the platform), decide in the pure core, then act. Removals run beside the
// loop (resume), so acting never holds the next evaluation up.
func (a *Agent) evaluate(ctx context.Context) error {
	o := observation{now: a.cfg.Now()}
	var err error
	// The engine's node id only changes if it leaves and rejoins; it is
	// asked for again when the node list no longer holds it.
	a.mu.Lock()
	o.selfID = a.selfID
	a.mu.Unlock()
	if o.selfID == "" {
		if o.selfID, err = a.docker.LocalNodeID(ctx); err != nil {
			return a.observeFailed(fmt.Errorf("own manager %s: %w", a.cfg.DockerHost, err))
		}
		a.mu.Lock()
		a.selfID = o.selfID
		a.mu.Unlock()
	}
	o.nodes, err = a.docker.Nodes(ctx)
	if err != nil {
		if quorumLost(err) {
			return a.quorumLost(o, err)
		}
		return a.observeFailed(err)
	}
	listed := false
	for _, n := range o.nodes {
		if n.ID == o.selfID {
			listed = true
			o.leader = n.Leader
		}
	}
	if !listed {
		a.mu.Lock()
		a.selfID = ""
		a.mu.Unlock()
	}
	a.mu.Lock()
	gained := o.leader && !a.led
	a.led = o.leader
	a.mu.Unlock()
	if r, ok := a.cluster.(platform.Relearner); ok && gained {
		// What it kept in memory may have been changed by the previous
		// leader's agent (platform.Adopt: an adopted pool's size).
		r.Relearn()
	}
	tv, err := a.docker.Tasks(ctx)
	if err != nil {
		return a.observeFailed(err)
	}
	o.pending, o.load, o.incomplete, o.services = tv.Pending, tv.Load, tv.Incomplete, tv.Services
	if err := a.readStore(ctx, &o); err != nil {
		return a.observeFailed(err)
	}
	if err := a.readJournal(ctx, &o); err != nil {
		return a.observeFailed(err)
	}
	if err := a.observeScaling(ctx, &o); err != nil {
		return a.observeFailed(err)
	}
	a.probeLeaderAgent(ctx, &o)
	acting := o.leader && !a.cfg.DryRun
	if acting {
		// Reconcile the journal with the platform's listing: a replacement
		// whose group launched an instance adopts it (or, started by a
		// previous leader and never launched, is dropped).
		if err := a.adoptReplacements(ctx, &o); err != nil {
			return a.stopActing(err)
		}
	}

	// Decide, in the pure core.
	snap := a.snapshot(&o)
	plan := decide.Heal(snap)
	a.scheduleWake(snap, o.journal)
	a.report(&o, snap, plan)
	scale := a.decideScaling(&o) // after report: it adds to the pools' status
	services := a.decideServices(ctx, &o)
	if !acting {
		return nil
	}
	// Replicas first: they start in moments and need no node action;
	// those that do not fit pend, and the pools grow for them.
	if err := a.actServices(ctx, &o, services); err != nil {
		return a.stopActing(err)
	}

	// Act. Removals in flight go on beside the loop (resume); healing
	// comes first, and scaling acts only on a round healing left alone.
	a.resume(&o)
	if _, platformLabels := a.cluster.(platform.JoinLabeller); !platformLabels {
		a.labelNodes(ctx, &o)
	}
	if err := a.rotateJoinTokens(ctx, &o); err != nil {
		return a.stopActing(err)
	}
	for _, act := range plan.Actions {
		if err := a.execute(ctx, &o, act); err != nil {
			if fenced(err) {
				return a.stopActing(err)
			}
			if platform.IsTransient(err) {
				a.log.Info("waiting: the platform said not now", "kind", act.Kind, "pool", act.PoolID, "reason", err)
				a.addDecision(o.now, act.PoolID, string(act.Kind), "wait", err.Error(), false)
				continue
			}
			a.log.Error("action failed", "kind", act.Kind, "pool", act.PoolID, "node", act.NodeID, "instance", act.InstanceID, "error", err)
			a.addDecision(o.now, act.PoolID, string(act.Kind), "error", err.Error(), false)
		}
	}
	if len(plan.Actions) > 0 {
		// Scaling decides on what healing left: the next round.
		return nil
	}
	if err := a.actScaling(ctx, &o, scale); err != nil {
		return a.stopActing(err)
	}
	return nil
}

// stopActing ends a round's acting when the agent no longer leads (or
// another agent wrote the journal): not an evaluation failure.
func (a *Agent) stopActing(err error) error {
	if fenced(err) {
		a.log.Warn("no longer the leader: this evaluation stops acting", "reason", err)
		return nil
	}
	return err
}

func (a *Agent) observeFailed(err error) error {
	a.metrics.leader.Set(0)
	a.mu.Lock()
	a.status.Leader = false
	a.status.LastEvaluation = a.cfg.Now()
	a.mu.Unlock()
	return err
}

// quorumLost holds everything, loudly. Autarky never forces a new cluster.
func (a *Agent) quorumLost(o observation, err error) error {
	a.metrics.leader.Set(0)
	a.metrics.quorum.Set(0)
	msg := "the managers have lost Raft quorum: no action at all; bring a majority of managers back (Autarky never uses --force-new-cluster)"
	a.log.Error("QUORUM LOST", "detail", err.Error(), "what_to_do", msg)
	a.mu.Lock()
	a.status.Leader = false
	a.status.NodeID = o.selfID
	a.status.Quorum = QuorumStatus{}
	a.status.LastEvaluation = o.now
	a.status.Error = "quorum lost: " + err.Error()
	a.mu.Unlock()
	a.addDecision(o.now, policy.PoolID(a.cluster.Name(), policy.ManagerPoolName), "hold", string(decide.ReasonQuorum), msg, a.cfg.DryRun)
	return nil
}

func (a *Agent) readStore(ctx context.Context, o *observation) error {
	var err error
	if o.cluster, err = a.cluster.Descriptor(ctx); err != nil {
		return err
	}
	pools, err := a.cluster.Pools(ctx)
	if err != nil {
		return err
	}
	mp := policy.Pool{Cluster: o.cluster.Name, Name: policy.ManagerPoolName, Role: policy.RoleManager,
		MinSize: o.cluster.ManagerCount, MaxSize: o.cluster.ManagerCount, DesiredSize: o.cluster.ManagerCount}
	o.pools = map[string]policy.Pool{mp.ID(): mp}
	o.poolOrder = []string{mp.ID()}
	for _, p := range pools {
		if p.Deleting {
			continue
		}
		o.pools[p.ID()] = p
		o.poolOrder = append(o.poolOrder, p.ID())
	}
	hs, err := a.cluster.HealingPolicies(ctx)
	if err != nil {
		return err
	}
	o.healing = map[string]policy.Healing{}
	for _, h := range hs {
		o.healing[h.PoolID] = h
	}
	o.instances, err = a.cluster.Instances(ctx)
	return err
}

// nodePool maps a swarm node to its pool id by the labels its engine was
// started with; nodes Autarky did not start belong to no pool.
func nodePool(n swarm.Node, cluster string) string {
	if n.EngineLabels[policy.LabelCluster] != cluster || n.EngineLabels[policy.LabelPool] == "" {
		return ""
	}
	return policy.PoolID(cluster, n.EngineLabels[policy.LabelPool])
}

// snapshot turns the observation into the decision core's input.
func (a *Agent) snapshot(o *observation) decide.Snapshot {
	s := decide.Snapshot{Now: o.now, Backoff: o.journal.Backoff, InstancesAuthoritative: a.group != nil}
	for _, id := range o.poolOrder {
		p := o.pools[id]
		ps := decide.PoolState{ID: id, Role: p.Role, MinSize: int(p.MinSize), MaxSize: int(p.MaxSize), DesiredSize: int(p.DesiredSize)}
		if h, ok := o.healing[id]; ok {
			if rules, err := h.Rules(); err == nil {
				ps.Rules, ps.HasPolicy = rules, true
			} else {
				a.log.Warn("ignoring invalid healing policy", "pool", id, "error", err)
			}
		}
		if o.scaling != nil {
			// Healing shares the scaling policy's disruption budget.
			ps.MaxDisruptedPercent = o.scaling.policies[id].MaxDisruptedPercent
		}
		s.Pools = append(s.Pools, ps)
	}
	nodeOfInstance := map[string]string{}
	seen := map[string]bool{}
	for _, n := range o.nodes {
		if n.Hostname == "" && len(n.EngineLabels) == 0 && n.State != "ready" {
			// A node that has just joined and not yet described itself
			// cannot be attributed to a pool; judging it would count a
			// joining replacement as a failure.
			continue
		}
		poolID := nodePool(n, o.cluster.Name)
		if _, ok := o.pools[poolID]; !ok {
			poolID = ""
		}
		inst := n.EngineLabels[policy.LabelInstance]
		if inst != "" {
			nodeOfInstance[inst] = n.ID
		}
		seen[n.ID] = true
		st := a.trackState(n, o.now)
		s.Nodes = append(s.Nodes, decide.Node{
			ID: n.ID, PoolID: poolID, InstanceID: inst, Role: n.Role, State: n.State, Availability: n.Availability,
			ManagerReachability: n.Reachability, Leader: n.Leader, CreatedAt: n.CreatedAt, StateSince: st,
			RunningTasks: o.load[n.ID].Running,
		})
		if n.Role == policy.RoleManager {
			s.Quorum.Managers++
			if n.Reachability == "reachable" {
				s.Quorum.Reachable++
			}
			if n.Leader {
				s.Quorum.LeaderPresent = true
			}
		}
	}
	a.forget(seen)
	for _, in := range o.instances {
		poolID := policy.PoolID(in.Cluster, in.Pool)
		if _, ok := o.pools[poolID]; !ok {
			continue
		}
		s.Instances = append(s.Instances, decide.Instance{ID: in.ID, PoolID: poolID, CreatedAt: in.CreatedAt, Running: in.Running, NodeID: nodeOfInstance[in.ID]})
	}
	for _, e := range o.journal.Entries {
		s.InFlight = append(s.InFlight, e.Action)
	}
	return s
}

// trackState returns since when the node has been in its current state.
// A node first seen in a state counts from Swarm's last update of it, so a
// new leader does not restart every clock.
func (a *Agent) trackState(n swarm.Node, now time.Time) time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	prev, ok := a.seen[n.ID]
	if ok && prev.state == n.State {
		return prev.since
	}
	since := now
	if !ok && !n.UpdatedAt.IsZero() && n.UpdatedAt.Before(now) {
		since = n.UpdatedAt
	}
	a.seen[n.ID] = seenState{state: n.State, since: since}
	return since
}

func (a *Agent) forget(seen map[string]bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for id := range a.seen {
		if !seen[id] {
			delete(a.seen, id)
		}
	}
}

// report publishes the plan: status, metrics, and a log line whenever a
// pool's reason changes.
func (a *Agent) report(o *observation, s decide.Snapshot, plan decide.Plan) {
	leader := 0.0
	if o.leader {
		leader = 1
	}
	a.metrics.leader.Set(leader)
	if s.Quorum.Held() {
		a.metrics.quorum.Set(1)
	} else {
		a.metrics.quorum.Set(0)
	}
	// Counted first, then set, and the gone pairs deleted: a Reset would
	// let a scrape in between see no nodes at all.
	counts := map[[2]string]int{}
	hostname := make(map[string]string, len(o.nodes))
	for _, n := range o.nodes {
		hostname[n.ID] = n.Hostname
	}
	byPool := map[string][]NodeStatus{}
	for _, n := range s.Nodes {
		pool := n.PoolID
		if pool == "" {
			pool = "none"
		}
		counts[[2]string{pool, n.State}]++
		byPool[n.PoolID] = append(byPool[n.PoolID], NodeStatus{
			ID: n.ID, Hostname: hostname[n.ID], Instance: n.InstanceID, Role: n.Role, State: n.State, Since: n.StateSince,
			Availability: n.Availability, Reachability: n.ManagerReachability, Leader: n.Leader, Tasks: n.RunningTasks,
		})
	}
	for k, n := range counts {
		a.metrics.nodes.WithLabelValues(k[0], k[1]).Set(float64(n))
	}
	keepOnly(a.metrics.nodes, func(l prometheus.Labels) bool { return counts[[2]string{l["pool"], l["state"]}] > 0 })
	stuck := map[string][]string{}
	for _, e := range o.journal.Entries {
		if e.LastError != "" {
			stuck[e.Action.PoolID] = append(stuck[e.Action.PoolID], fmt.Sprintf("%s failed %d time(s), next attempt at %s: %s",
				e.Action.Key, e.Attempts, e.NextAttempt.UTC().Format(time.RFC3339), e.LastError))
		}
	}
	var pools []PoolStatus
	for i, r := range plan.Reasons {
		ps := s.Pools[i]
		a.metrics.decisions.WithLabelValues(r.PoolID, string(r.Code)).Inc()
		open := 0.0
		if r.Code == decide.ReasonCircuitBreaker {
			open = 1
		}
		a.metrics.breaker.WithLabelValues(r.PoolID).Set(open)
		pools = append(pools, PoolStatus{ID: r.PoolID, Role: ps.Role, MinSize: ps.MinSize, MaxSize: ps.MaxSize, Desired: ps.DesiredSize,
			Healing: ps.HasPolicy, Reason: string(r.Code), Message: r.Message, Nodes: byPool[r.PoolID], Stuck: stuck[r.PoolID]})
		a.noteReason(o, r)
	}
	would := map[string]bool{}
	for _, act := range plan.Actions {
		switch {
		case o.leader && !a.cfg.DryRun:
			a.log.Info("acting", "kind", act.Kind, "pool", act.PoolID, "node", act.NodeID, "instance", act.InstanceID, "reason", act.Reason)
			a.addDecision(o.now, act.PoolID, string(act.Kind), "act", act.Reason, false)
		case a.cfg.DryRun:
			// Reported once while it stays the plan, not every evaluation.
			would[act.Key] = true
			if !a.would[act.Key] {
				a.log.Info("dry-run: would act", "kind", act.Kind, "pool", act.PoolID, "node", act.NodeID, "instance", act.InstanceID, "reason", act.Reason)
				a.addDecision(o.now, act.PoolID, string(act.Kind), "dry_run", act.Reason, true)
			}
		}
	}
	a.would = would
	var inflight []string
	var actions []ActionStatus
	for _, e := range o.journal.Entries {
		inflight = append(inflight, e.Action.Key)
		actions = append(actions, ActionStatus{Key: e.Action.Key, Pool: e.Action.PoolID, StartedAt: e.StartedAt, DrainStartedAt: e.DrainStartedAt,
			Attempts: e.Attempts, NextAttempt: e.NextAttempt, LastError: e.LastError})
	}
	sort.Strings(inflight)
	a.recordPools(o.now, pools)
	a.metrics.forgetPools(pools)
	a.mu.Lock()
	a.status.NodeID = o.selfID
	a.status.Leader = o.leader
	a.status.Quorum = QuorumStatus{Managers: s.Quorum.Managers, Reachable: s.Quorum.Reachable, Leader: s.Quorum.LeaderPresent, Held: s.Quorum.Held()}
	a.status.Pools = pools
	a.status.InFlight = inflight
	a.status.Actions = actions
	a.status.LastEvaluation = o.now
	a.status.Error = ""
	a.mu.Unlock()
}

// noteReason logs and records a pool's reason when it changes.
func (a *Agent) noteReason(o *observation, r decide.Reason) {
	if !a.changed("heal/"+r.PoolID, string(r.Code)+": "+r.Message) {
		return
	}
	switch r.Code {
	case decide.ReasonQuorum, decide.ReasonCircuitBreaker:
		a.log.Error("holding", "pool", r.PoolID, "reason", r.Code, "message", r.Message)
	case decide.ReasonHealthy, decide.ReasonDisabled:
		a.log.Debug("pool", "pool", r.PoolID, "reason", r.Code, "message", r.Message)
	default:
		a.log.Info("pool", "pool", r.PoolID, "reason", r.Code, "message", r.Message)
	}
	kind := "hold"
	if r.Code == decide.ReasonHealing {
		kind = "heal"
	}
	a.addDecision(o.now, r.PoolID, kind, string(r.Code), r.Message, a.cfg.DryRun)
}

// changed records what a pool's decision says now and reports whether it
// differs from the last time, so logs and decisions note changes only.
func (a *Agent) changed(topic, now string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.reasons[topic] == now {
		return false
	}
	a.reasons[topic] = now
	return true
}

func (a *Agent) addDecision(t time.Time, pool, kind, code, msg string, dry bool) {
	a.appendDecision(Decision{Time: t, Pool: pool, Kind: kind, Code: code, Message: msg, DryRun: dry})
}

// appendDecision keeps d among the last maxDecisions decisions.
func (a *Agent) appendDecision(d Decision) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.status.Decisions = append(a.status.Decisions, d)
	if n := len(a.status.Decisions); n > maxDecisions {
		a.status.Decisions = a.status.Decisions[n-maxDecisions:]
	}
}

// scheduleWake notes the earliest moment a rule's clock runs out (a node's
// unhealthy_after, a pool's backoff), so the loop evaluates right then
// instead of at the next tick: the difference is the agent's reaction time.
func (a *Agent) scheduleWake(s decide.Snapshot, j Journal) {
	var next time.Time
	consider := func(t time.Time) {
		if t.After(s.Now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, e := range j.Entries {
		consider(e.NextAttempt)
	}
	rules := map[string]decide.PoolState{}
	for _, p := range s.Pools {
		if p.HasPolicy && p.Rules.Enabled {
			rules[p.ID] = p
			if b, ok := s.Backoff[p.ID]; ok && b.Failures > 0 {
				consider(b.LastFailure.Add(decide.BackoffDelay(b.Failures)))
			}
		}
	}
	for _, n := range s.Nodes {
		p, ok := rules[n.PoolID]
		if !ok || n.State == decide.NodeReady || n.StateSince.IsZero() {
			continue
		}
		consider(n.StateSince.Add(p.Rules.UnhealthyAfter))
	}
	a.mu.Lock()
	if a.recheck && a.nextWake.After(s.Now) && (next.IsZero() || a.nextWake.Before(next)) {
		next = a.nextWake
	}
	a.recheck = false
	a.nextWake = next
	a.mu.Unlock()
}

// untilWake is how long to sleep before the scheduled wake, or the interval.
func (a *Agent) untilWake() time.Duration {
	a.mu.Lock()
	next := a.nextWake
	a.mu.Unlock()
	d := a.cfg.EvaluationInterval
	if !next.IsZero() {
		if w := next.Sub(a.cfg.Now()) + 10*time.Millisecond; w < d {
			d = max(w, 10*time.Millisecond)
		}
	}
	return d
}
