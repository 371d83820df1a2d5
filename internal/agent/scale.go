package agent

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/decide"
	"github.com/autarky/terraform-provider-autarky/internal/notify"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/swarm"
)

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

// scaling is what scaling reads in one evaluation besides the observation:
// the pools' scaling policies and the readings of their checks.
type scaling struct {
	policies map[string]policy.ScalingRules
	invalid  map[string]string
	// samples holds, by pool, the readings of the policy's Prometheus and
	// alert checks in the policy's order (readChecks).
	samples map[string][]decide.CheckSample
}

func (a *Agent) readScaling(ctx context.Context, o *observation) (*scaling, error) {
	ps, err := a.cluster.ScalingPolicies(ctx)
	if err != nil {
		return nil, err
	}
	a.noteAlertNames(ps)
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

// readChecks reads the Prometheus and alert checks of every pool under a
// scaling policy into sc.samples. It runs before the snapshot is built, so
// that building it does no I/O: every rule is the decision core's.
func (a *Agent) readChecks(ctx context.Context, o *observation, sc *scaling) {
	sc.samples = make(map[string][]decide.CheckSample, len(sc.policies))
	for _, id := range sortedPools(sc.policies) {
		rules := sc.policies[id]
		samples := make([]decide.CheckSample, 0, len(rules.Prometheus)+len(rules.Alert))
		for _, pr := range rules.Prometheus {
			samples = append(samples, a.prometheusSample(ctx, pr, rules.MaxSampleAge, o.now))
		}
		a.mu.Lock()
		for _, al := range rules.Alert {
			// A notification a scaling step was taken for asks no more.
			st := a.alerts[al.Name]
			samples = append(samples, decide.CheckSample{Name: al.Name, Kind: decide.CheckAlert, Step: al.Step,
				Firing: st.Firing && !st.Handled, ReceivedAt: st.ReceivedAt})
		}
		a.mu.Unlock()
		sc.samples[id] = samples
	}
}

// prometheusSample reads one check (metrics.Client.Check). The sample time
// is the oldest of the newest raw sample times of the series the query
// reads, so a frozen exporter behind an aggregation (avg(rate(x[1m])),
// which Prometheus keeps answering for a minute) shows as stale within
// maxAge; a freshness check that fails sets Err, so the decision core
// holds the pool rather than trusting a value of unknown age.
func (a *Agent) prometheusSample(ctx context.Context, pr policy.PrometheusRule, maxAge time.Duration, now time.Time) decide.CheckSample {
	s := decide.CheckSample{Name: pr.Name, Kind: decide.CheckPrometheus, Target: pr.TargetValue, Upper: pr.Upper, Lower: pr.Lower, Step: pr.Step}
	m := a.prom.Check(ctx, pr.Address, pr.Query, now, maxAge)
	s.Value, s.Err, s.Empty, s.SampleTime = m.Value, m.Err, m.Empty, m.Time
	return s
}

func sortedPools(policies map[string]policy.ScalingRules) []string {
	ids := make([]string, 0, len(policies))
	for id := range policies {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// scaleSnapshot builds the scaling core's input from the observation and
// the checks read before (readChecks), through decide.BuildScaleSnapshot,
// which holds every rule. It does no I/O; it only sorts what was observed
// by pool, and matches the pending tasks' constraints against each pool's
// labels (swarm.Fits). It keeps the unneeded-since clocks for the next
// evaluation, and exports each pool's provision backoff.
func (a *Agent) scaleSnapshot(o *observation, sc *scaling, inFlight map[string]bool) decide.ScaleSnapshot {
	obs := decide.ScaleObservation{Now: o.now}
	// Instances an action in flight names are that action's to judge
	// (a replacement's join_timeout), not provision_timeout's.
	instInFlight := map[string]bool{}
	for _, e := range o.journal.Entries {
		instInFlight[e.Action.InstanceID] = true
		instInFlight[e.Action.Replacement] = true
	}
	delete(instInFlight, "")
	var clusterCapacity decide.Resources
	for _, n := range o.nodes {
		if n.State == decide.NodeReady && n.Capacity.NanoCPUs > 0 {
			clusterCapacity = decide.Resources(n.Capacity)
			break
		}
	}
	// The nodes and instances by pool, in the listings' order, sorted
	// once: matching every node against every pool made this grow with
	// pools x nodes (50 x 5,000: a fifth of an evaluation's CPU).
	nodesOf, instancesOf := map[string][]int{}, map[string][]int{}
	for i, n := range o.nodes {
		id := nodePool(n, o.cluster.Name)
		nodesOf[id] = append(nodesOf[id], i)
	}
	for i, in := range o.instances {
		id := policy.PoolID(in.Cluster, in.Pool)
		instancesOf[id] = append(instancesOf[id], i)
	}
	for _, id := range sortedPools(sc.policies) {
		pool := o.pools[id]
		po := decide.PoolObservation{ID: id, Rules: sc.policies[id], PoolMinSize: int(pool.MinSize), PoolMaxSize: int(pool.MaxSize),
			LastScaleUp: o.journal.LastScaleUp[id], LastScaleDown: o.journal.LastScaleDown[id],
			Samples: sc.samples[id], ClusterNodeCapacity: clusterCapacity,
			ProvisionBackoff: o.journal.ProvisionBackoff[id], Requested: o.journal.Requested[id]}
		for _, i := range nodesOf[id] {
			n := o.nodes[i]
			l := o.load[n.ID]
			po.Nodes = append(po.Nodes, decide.ObservedNode{ID: n.ID, InstanceID: n.EngineLabels[policy.LabelInstance],
				State: n.State, Role: n.Role, Availability: n.Availability, InFlight: inFlight[n.ID], CreatedAt: n.CreatedAt,
				Capacity: decide.Resources(n.Capacity), Reserved: decide.Resources(l.Reserved), RunningTasks: l.Running})
		}
		for _, i := range instancesOf[id] {
			in := o.instances[i]
			po.Instances = append(po.Instances, decide.ObservedInstance{ID: in.ID, Running: in.Running,
				LaunchedAt: in.CreatedAt, InFlight: instInFlight[in.ID]})
		}
		if po.Rules.PendingTasks {
			// A new node of the pool is a worker with the pool's labels
			// and the engine labels Autarky starts it with.
			engine := map[string]string{policy.LabelCluster: o.cluster.Name, policy.LabelPool: pool.Name}
			labels := make(map[string]string, len(pool.Labels)+len(engine))
			maps.Copy(labels, pool.Labels)
			maps.Copy(labels, engine)
			for _, t := range o.pending {
				po.PendingTasks = append(po.PendingTasks, decide.ObservedTask{Reservation: decide.Resources(t.Reservation),
					MatchesPool: swarm.Fits(t.Constraints, policy.RoleWorker, labels, engine)})
			}
		}
		obs.Pools = append(obs.Pools, po)
	}
	a.mu.Lock()
	obs.UnneededSince = maps.Clone(a.unneeded)
	a.mu.Unlock()
	snap, unneeded := decide.BuildScaleSnapshot(obs)
	if o.incomplete != "" {
		// Nodes look idle on a listing that lacks tasks: their unneeded
		// clocks restart, so a scale-in needs scale_in_after of complete
		// views again.
		unneeded = map[string]time.Time{}
	}
	a.mu.Lock()
	a.unneeded = unneeded
	a.mu.Unlock()
	for _, p := range snap.Pools {
		left := 0.0
		if until := p.ProvisionBackoff.Until(o.now); !until.IsZero() {
			left = until.Sub(o.now).Seconds()
		}
		a.metrics.scaleBackoff.WithLabelValues(p.ID).Set(left)
	}
	return snap
}

// observeScaling reads the scaling policies and every check they name
// (Prometheus queries, alert state) into the observation.
func (a *Agent) observeScaling(ctx context.Context, o *observation) error {
	sc, err := a.readScaling(ctx, o)
	if err != nil {
		return err
	}
	a.readChecks(ctx, o, sc)
	o.scaling = sc
	return nil
}

// scaleRound is one evaluation's scaling decision.
type scaleRound struct {
	snap decide.ScaleSnapshot
	plan decide.ScalePlan
}

// decideScaling decides for every pool under a scaling policy, and reports
// the decisions. Pure but for the unneeded clocks it keeps.
func (a *Agent) decideScaling(o *observation) scaleRound {
	sc := o.scaling
	a.reportInvalidScaling(o, sc)
	r := scaleRound{}
	if len(sc.policies) == 0 {
		a.setScaleStatus(map[string]ScaleStatus{})
		return r
	}
	inFlight := map[string]bool{}
	acts := map[string][]decide.Action{}
	for _, e := range o.journal.Entries {
		inFlight[e.Action.NodeID] = true
		acts[e.Action.PoolID] = append(acts[e.Action.PoolID], e.Action)
	}
	r.snap = a.scaleSnapshot(o, sc, inFlight)
	a.mu.Lock()
	for i := range r.snap.Pools {
		// The disruption budget counts every action in flight in the
		// pool, healing and scale-in alike; the stabilisation window
		// reads the recommendations of the decisions before.
		p := &r.snap.Pools[i]
		p.InFlight, p.Recommendations = acts[p.ID], a.recommended[p.ID]
	}
	a.mu.Unlock()
	r.plan = decide.Scale(r.snap)
	if o.incomplete != "" {
		holdScaleIn(&r.plan, o.incomplete)
	}
	a.remember(r)
	statuses := map[string]ScaleStatus{}
	for i, d := range r.plan.Decisions {
		sp := r.snap.Pools[i]
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
	}
	a.setScaleStatus(statuses)
	return r
}

// recommendations are, by pool, the scaling recommendations within the
// pool's stabilisation window (Agent.recommended).
type recommendations = map[string][]decide.Recommendation

// remember keeps each pool's recommendations within its stabilisation
// window (cooldown_down) for the next decisions, in memory: every agent
// keeps them, leader or not, so a new leader has them; after a restart the
// window starts empty, and the restart's own holds (the unneeded clocks
// start again) cover it. Pools no longer under a policy are forgotten.
func (a *Agent) remember(r scaleRound) {
	next := make(recommendations, len(r.plan.Decisions))
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, d := range r.plan.Decisions {
		next[d.PoolID] = decide.Remember(a.recommended[d.PoolID], d, r.snap.Now, r.snap.Pools[i].Rules.CooldownDown)
	}
	a.recommended = next
}

// actScaling carries out the scaling decisions on the leader. A scale-in
// is bounded by the pool's disruption budget in the decision core (actions
// in flight, healing and scale-in, count against it), so a pool with an
// action in flight may still shrink within what is left of it.
func (a *Agent) actScaling(ctx context.Context, o *observation, r scaleRound) error {
	for i, d := range r.plan.Decisions {
		sp := r.snap.Pools[i]
		if sp.Rules.Enabled {
			if err := a.settleProvisioning(ctx, o, sp); err != nil {
				if fenced(err) {
					return err
				}
				a.log.Error("settling a provision timeout failed", "pool", sp.ID, "error", err)
				a.addDecision(o.now, sp.ID, "provision_timeout", "error", err.Error(), false)
			}
		}
		if !sp.Rules.Enabled || d.Direction == decide.ScaleHold {
			continue
		}
		if err := a.executeScale(ctx, o, sp, d); err != nil {
			if fenced(err) {
				return err
			}
			a.log.Error("scaling failed", "pool", d.PoolID, "error", err)
			a.addDecision(o.now, d.PoolID, "scale_"+string(d.Direction), "error", err.Error(), false)
			a.notifyAction(notify.Event{Name: "scale_failed", Severity: notify.SeverityWarning, Pool: d.PoolID,
				Summary: fmt.Sprintf("pool %s could not scale %s from %d to %d", d.PoolID, d.Direction, d.From, d.To), Detail: err.Error()})
		}
	}
	a.rebalance(ctx, o)
	return nil
}

// codeViewIncomplete: a scale-in held because the task listing lacks tasks.
const codeViewIncomplete decide.ScaleCode = "view_incomplete"

// holdScaleIn turns every scale-in of the plan into a hold, and marks every
// hold: the view it was decided on lacks tasks (swarm.TaskView.Incomplete),
// so the nodes it would remove may well be busy. Scale-outs stand:
// missing tasks never make a pool look short.
func holdScaleIn(p *decide.ScalePlan, why string) {
	for i := range p.Decisions {
		d := &p.Decisions[i]
		switch d.Direction {
		case decide.ScaleDown:
			d.Message = fmt.Sprintf("would scale in to %d, but %s: nothing is scaled in until the listing is complete again and the nodes have been unneeded for scale_in_after since", d.To, why)
			d.Direction, d.Code, d.To, d.RemoveNodes = decide.ScaleHold, codeViewIncomplete, d.From, nil
		case decide.ScaleHold:
			d.Message = fmt.Sprintf("%s; besides, %s: the nodes' unneeded clocks restart and nothing is scaled in", d.Message, why)
			d.Code = codeViewIncomplete
		}
	}
}

func (a *Agent) reportInvalidScaling(o *observation, sc *scaling) {
	for pool, msg := range sc.invalid {
		a.noteScale(o, decide.ScaleDecision{PoolID: pool, Direction: decide.ScaleHold, Code: decide.CodeInvalid, Message: "the scaling policy is invalid: " + msg})
	}
}

func (a *Agent) setScaleStatus(s map[string]ScaleStatus) {
	a.metrics.forgetScaling(s)
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
