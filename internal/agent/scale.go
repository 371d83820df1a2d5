package agent

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/decide"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/swarm"
)

// unneededShare: a node whose running tasks reserve less than this share of
// its CPU and memory is not needed (its tasks fit elsewhere).
const unneededShare = 0.5

// settleWindow: a node that joined this recently and runs nothing yet is
// still being filled by the scheduler, so it counts as capacity on its way
// and the same pending tasks do not ask for another node.
const settleWindow = 10 * time.Second

// freeCapacity is what a settling node still has room for.
type freeCapacity struct{ cpu, mem int64 }

// placeOnSettling reserves room for a pending task on a node that is still
// being filled; true when one has room, so the task does not ask for a node.
func placeOnSettling(nodes []freeCapacity, r swarm.Resources) bool {
	for i := range nodes {
		if nodes[i].cpu >= r.NanoCPUs && nodes[i].mem >= r.MemoryBytes {
			nodes[i].cpu -= r.NanoCPUs
			nodes[i].mem -= r.MemoryBytes
			return true
		}
	}
	return false
}

// rebalanceEvery bounds how often one service is rebalanced.
const rebalanceEvery = 30 * time.Second

// LabelRebalance marks services the agent spreads onto new nodes after a
// scale-out; Swarm does not rebalance by itself (moby issue 24103).
const LabelRebalance = "autarky.rebalance"

// ScaleStatus is the last scaling decision of a pool, for /v1/status.
type ScaleStatus struct {
	From      int                  `json:"from"`
	To        int                  `json:"to"`
	Direction string               `json:"direction"`
	Code      string               `json:"code"`
	Message   string               `json:"message"`
	Checks    []decide.CheckResult `json:"checks"`
}

// scaling is what scaling reads in one evaluation besides the observation.
type scaling struct {
	policies map[string]policy.ScalingRules
	invalid  map[string]string
}

func (a *Agent) readScaling(ctx context.Context, o *observation) (*scaling, error) {
	ps, err := a.cluster.ScalingPolicies(ctx)
	if err != nil {
		return nil, err
	}
	sc := &scaling{policies: map[string]policy.ScalingRules{}, invalid: map[string]string{}}
	for _, p := range ps {
		if _, ok := o.pools[p.PoolID]; !ok {
			continue
		}
		rules, err := p.Rules()
		if err != nil {
			sc.invalid[p.PoolID] = err.Error()
			continue
		}
		sc.policies[p.PoolID] = rules
	}
	return sc, nil
}

// scaleSnapshot builds the scaling core's input from the observation.
func (a *Agent) scaleSnapshot(ctx context.Context, o *observation, sc *scaling, inFlight map[string]bool) decide.ScaleSnapshot {
	snap := decide.ScaleSnapshot{Now: o.now}
	ids := make([]string, 0, len(sc.policies))
	for id := range sc.policies {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	seenNodes := map[string]bool{}
	for _, id := range ids {
		rules := sc.policies[id]
		pool := o.pools[id]
		sp := decide.ScalePool{ID: id, Rules: rules}
		sp.MinSize, sp.MaxSize = rules.Bounds(int(pool.MinSize), int(pool.MaxSize))
		if t, ok := o.journal.LastScaleUp[id]; ok {
			sp.LastScaleUp = t
		}
		if t, ok := o.journal.LastScaleDown[id]; ok {
			sp.LastScaleDown = t
		}
		readyInstance := map[string]bool{}
		var settling []freeCapacity
		for _, n := range o.nodes {
			if nodePool(n, o.cluster.Name) != id {
				continue
			}
			inst := n.EngineLabels[policy.LabelInstance]
			if n.State == "ready" {
				readyInstance[inst] = true
			}
			if n.State != "ready" {
				continue
			}
			l := o.load[n.ID]
			node := decide.ScaleNode{
				ID: n.ID, InstanceID: inst, CreatedAt: n.CreatedAt, RunningTasks: l.Running,
				Reserved: decide.Resources(l.Reserved), Capacity: decide.Resources(n.Capacity),
				Draining: n.Availability == "drain" || inFlight[n.ID],
			}
			seenNodes[n.ID] = true
			if l.Running == 0 && o.now.Sub(n.CreatedAt) < settleWindow {
				settling = append(settling, freeCapacity{cpu: n.Capacity.NanoCPUs - l.Reserved.NanoCPUs, mem: n.Capacity.MemoryBytes - l.Reserved.MemoryBytes})
			}
			node.UnneededSince = a.trackUnneeded(n.ID, decide.Unneeded(node, unneededShare), o.now)
			sp.Nodes = append(sp.Nodes, node)
			if sp.NodeCapacity.NanoCPUs == 0 {
				sp.NodeCapacity = decide.Resources(n.Capacity)
			}
		}
		if sp.NodeCapacity.NanoCPUs == 0 {
			// A pool with no node yet: its nodes are like the cluster's
			// others on this platform (the same machine type).
			for _, n := range o.nodes {
				if n.State == "ready" && n.Capacity.NanoCPUs > 0 {
					sp.NodeCapacity = decide.Resources(n.Capacity)
					break
				}
			}
		}
		for _, in := range o.instances {
			if policy.PoolID(in.Cluster, in.Pool) != id || !in.Running {
				continue
			}
			sp.Current++
			if !readyInstance[in.ID] {
				sp.Pending++
			}
		}
		if rules.PendingTasks {
			sample := decide.CheckSample{Name: decide.CheckPendingTasks, Kind: decide.CheckPendingTasks}
			labels := map[string]string{}
			for k, v := range pool.Labels {
				labels[k] = v
			}
			engine := map[string]string{policy.LabelCluster: o.cluster.Name, policy.LabelPool: pool.Name}
			for k, v := range engine {
				labels[k] = v
			}
			for _, t := range o.pending {
				fitsNode := sp.NodeCapacity.NanoCPUs == 0 ||
					(t.Reservation.NanoCPUs <= sp.NodeCapacity.NanoCPUs && t.Reservation.MemoryBytes <= sp.NodeCapacity.MemoryBytes)
				if fitsNode && swarm.Fits(t.Constraints, policy.RoleWorker, labels, engine) && !placeOnSettling(settling, t.Reservation) {
					sample.PendingTasks = append(sample.PendingTasks, decide.PendingTask{NanoCPUs: t.Reservation.NanoCPUs, MemoryBytes: t.Reservation.MemoryBytes})
				}
			}
			sp.Checks = append(sp.Checks, sample)
		}
		for _, pr := range rules.Prometheus {
			sp.Checks = append(sp.Checks, a.prometheusSample(ctx, pr, o.now))
		}
		a.mu.Lock()
		for _, al := range rules.Alert {
			st := a.alerts[al.Name]
			sp.Checks = append(sp.Checks, decide.CheckSample{Name: al.Name, Kind: decide.CheckAlert, Step: al.Step,
				Firing: st.Firing && !st.Handled, ReceivedAt: st.ReceivedAt})
		}
		a.mu.Unlock()
		snap.Pools = append(snap.Pools, sp)
	}
	a.forgetUnneeded(seenNodes)
	return snap
}

// prometheusSample reads one check. The sample time is the newest raw
// sample behind the query, so a frozen exporter shows as stale even while
// Prometheus still answers with its last value.
func (a *Agent) prometheusSample(ctx context.Context, pr policy.PrometheusRule, now time.Time) decide.CheckSample {
	s := decide.CheckSample{Name: pr.Name, Kind: decide.CheckPrometheus, Target: pr.TargetValue, Upper: pr.Upper, Lower: pr.Lower, Step: pr.Step}
	m := a.prom.Query(ctx, pr.Address, pr.Query, now)
	s.Value, s.Err, s.Empty, s.SampleTime = m.Value, m.Err, m.Empty, m.Time
	if m.Err == "" && !m.Empty {
		if last, err := a.prom.LastSampleTime(ctx, pr.Address, pr.Query, now); err == nil && !last.IsZero() && last.Before(s.SampleTime) {
			s.SampleTime = last
		}
	}
	return s
}

func (a *Agent) trackUnneeded(nodeID string, unneeded bool, now time.Time) time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !unneeded {
		delete(a.unneeded, nodeID)
		return time.Time{}
	}
	if t, ok := a.unneeded[nodeID]; ok {
		return t
	}
	a.unneeded[nodeID] = now
	return now
}

func (a *Agent) forgetUnneeded(seen map[string]bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for id := range a.unneeded {
		if !seen[id] {
			delete(a.unneeded, id)
		}
	}
}

// evaluateScaling decides and, on the leader, acts for every pool under a
// scaling policy. Healing goes first: a pool with a healing action in
// flight does not scale in (they share one disruption budget).
func (a *Agent) evaluateScaling(ctx context.Context, o *observation) error {
	sc, err := a.readScaling(ctx, o)
	if err != nil {
		return err
	}
	a.reportInvalidScaling(o, sc)
	if len(sc.policies) == 0 {
		a.setScaleStatus(map[string]ScaleStatus{})
		return nil
	}
	inFlight := map[string]bool{}
	busyPool := map[string]bool{}
	for _, e := range o.journal.Entries {
		inFlight[e.Action.NodeID] = true
		busyPool[e.Action.PoolID] = true
	}
	snap := a.scaleSnapshot(ctx, o, sc, inFlight)
	plan := decide.Scale(snap)
	statuses := map[string]ScaleStatus{}
	for i, d := range plan.Decisions {
		sp := snap.Pools[i]
		statuses[d.PoolID] = ScaleStatus{From: d.From, To: d.To, Direction: string(d.Direction), Code: string(d.Code), Message: d.Message, Checks: d.PerCheck}
		for _, c := range d.PerCheck {
			stale := 0.0
			if !c.Trusted {
				stale = 1
			}
			a.metrics.checkStale.WithLabelValues(d.PoolID, c.Name).Set(stale)
		}
		a.metrics.scaleDecisions.WithLabelValues(d.PoolID, string(d.Direction), string(d.Code)).Inc()
		a.metrics.poolSize.WithLabelValues(d.PoolID).Set(float64(sp.Current))
		a.noteScale(o, d)
		if !o.leader || a.cfg.DryRun || !sp.Rules.Enabled || d.Direction == decide.ScaleHold {
			continue
		}
		if d.Direction == decide.ScaleDown && busyPool[d.PoolID] {
			a.addDecision(o.now, d.PoolID, "hold", "healing_in_flight", "a healing action is in flight in this pool: scale-in waits (one disruption budget)", false)
			continue
		}
		if err := a.executeScale(ctx, o, sp, d); err != nil {
			a.log.Error("scaling failed", "pool", d.PoolID, "error", err)
			a.addDecision(o.now, d.PoolID, "scale_"+string(d.Direction), "error", err.Error(), false)
		}
	}
	a.setScaleStatus(statuses)
	if o.leader && !a.cfg.DryRun {
		a.rebalance(ctx, o)
	}
	return nil
}

func (a *Agent) reportInvalidScaling(o *observation, sc *scaling) {
	for pool, msg := range sc.invalid {
		a.noteScale(o, decide.ScaleDecision{PoolID: pool, Direction: decide.ScaleHold, Code: decide.CodeInvalid, Message: "the scaling policy is invalid: " + msg})
	}
}

func (a *Agent) setScaleStatus(s map[string]ScaleStatus) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := range a.status.Pools {
		if st, ok := s[a.status.Pools[i].ID]; ok {
			st := st
			a.status.Pools[i].Scaling = &st
		}
	}
}

// noteScale logs and records a pool's scaling decision when it changes.
func (a *Agent) noteScale(o *observation, d decide.ScaleDecision) {
	if !a.changed("scale/"+d.PoolID, fmt.Sprintf("%s %s %d->%d: %s", d.Direction, d.Code, d.From, d.To, d.Message)) {
		return
	}
	kind := "scale_" + string(d.Direction)
	if d.Direction == decide.ScaleHold {
		kind = "scale_hold"
	}
	a.log.Info("scaling", "pool", d.PoolID, "direction", d.Direction, "from", d.From, "to", d.To, "code", d.Code, "message", d.Message, "dry_run", a.cfg.DryRun)
	a.addDecision(o.now, d.PoolID, kind, string(d.Code), d.Message, a.cfg.DryRun)
}
