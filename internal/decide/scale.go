package decide

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// Check kinds, as CheckSample.Kind and CheckResult.Kind name them.
const (
	CheckPendingTasks = "pending_tasks"
	CheckPrometheus   = "prometheus"
	CheckAlert        = "alert"
)

// ScaleDirection says whether a pool grows, shrinks or keeps its size.
type ScaleDirection string

const (
	ScaleUp   ScaleDirection = "up"
	ScaleDown ScaleDirection = "down"
	ScaleHold ScaleDirection = "hold"
)

// ScaleCode is the machine-readable reason of a ScaleDecision.
type ScaleCode string

const (
	// The check that asked for the most capacity decided: pending tasks,
	// a Prometheus target or thresholds, or a firing alert. A scale-in
	// carries the code of the check that allowed the least shrinking.
	CodePendingTasks   ScaleCode = "pending_tasks"
	CodeTargetTracking ScaleCode = "target_tracking"
	CodeThreshold      ScaleCode = "threshold"
	CodeAlert          ScaleCode = "alert"
	// CodeCooldownUp: the pool grew less than cooldown_up ago.
	CodeCooldownUp ScaleCode = "cooldown_up"
	// CodeCooldownDown: the pool grew or shrank less than cooldown_down
	// ago, or instances it asked for are still starting.
	CodeCooldownDown ScaleCode = "cooldown_down"
	// CodeMaxSize and CodeMinSize: the checks ask to cross a bound, or the
	// pool is outside its bounds and is brought back (Forced).
	CodeMaxSize ScaleCode = "max_size"
	CodeMinSize ScaleCode = "min_size"
	// CodeStaleMetric and CodeNoData: a Prometheus check (or a check with
	// nothing to report) cannot be trusted, so the pool does not shrink.
	CodeStaleMetric ScaleCode = "stale_metric"
	CodeNoData      ScaleCode = "no_data"
	// CodeScaleInAfter: fewer nodes have been unneeded for scale_in_after
	// than the checks would remove.
	CodeScaleInAfter ScaleCode = "scale_in_after"
	// CodeDraining: a node with running tasks is draining; no second one
	// starts until it is done.
	CodeDraining ScaleCode = "draining"
	// CodeBackoff: instances the pool asked for did not become Ready nodes
	// within provision_timeout; the pool does not grow until its
	// provision backoff ends (provision.go).
	CodeBackoff ScaleCode = "backoff"
	// CodeUnschedulable: tasks are still pending although nodes the last
	// scale-out added are Ready, settled and empty, with room for them: the
	// pool's new nodes do not take them (their constraints or labels do not
	// match what the nodes joined with), so more such nodes would not
	// either. No node is asked for them until the pending set or the pool
	// changes (see runaway guard in Scale).
	CodeUnschedulable ScaleCode = "unschedulable"
	// CodeStabilization: the checks recommended a larger size within the
	// stabilisation window (cooldown_down): scale-in goes no lower than the
	// highest recommendation of that window.
	CodeStabilization ScaleCode = "stabilization_window"
	// CodeDisruptionBudget: the pool's disruption budget, max(1, 10 %) of
	// its nodes, is taken by nodes already being disrupted (draining, or
	// named by a healing or scale-in action in flight).
	CodeDisruptionBudget ScaleCode = "disruption_budget"
	// CodeWithinTarget: the checks are satisfied with the current size.
	CodeWithinTarget ScaleCode = "within_target"
	// CodeDisabled: the policy is disabled.
	CodeDisabled ScaleCode = "disabled"
	// CodeInvalid: the pool's bounds, counts or rules make no sense, or its
	// ID is repeated; the pool holds until it is fixed.
	CodeInvalid ScaleCode = "invalid"
)

// Resources are reserved or available CPU and memory, as Swarm counts them.
type Resources struct {
	NanoCPUs    int64
	MemoryBytes int64
}

// ScaleSnapshot is everything the agent observed for one scaling decision.
// Scale reads it and never modifies it.
type ScaleSnapshot struct {
	// Now is the decision time; tests pass a fake clock here.
	Now time.Time
	// Pools must have unique IDs; a repeated ID is reported as invalid.
	Pools []ScalePool
}

// ScalePool is one node pool under a scaling policy.
type ScalePool struct {
	ID string
	// MinSize and MaxSize are the effective bounds: the policy's within
	// the pool's (policy.ScalingRules.Bounds).
	MinSize, MaxSize int
	// Current counts the pool's running instances, including those started
	// and not joined yet, and those whose nodes are draining.
	Current int
	// Pending counts the instances asked for that are not Ready nodes yet.
	// Scale-out subtracts them, so the same work is never asked for twice,
	// and no scale-in happens while there are any.
	Pending int
	// TimedOut, Unlisted, Abandoned and ProvisionBackoff are the pool's
	// provisioning (provision.go, set by BuildScalePool): instances that
	// never registered within provision_timeout (not in Current, to be
	// terminated), instances asked for and not listed yet (in Current and
	// Pending), the part of a request given up, and the backoff record.
	TimedOut         []string
	Unlisted         int
	Abandoned        int
	ProvisionBackoff ProvisionBackoff

	Rules policy.ScalingRules
	// LastScaleUp and LastScaleDown are when the pool last grew and shrank;
	// zero when never.
	LastScaleUp, LastScaleDown time.Time
	// Nodes are the pool's Swarm nodes.
	Nodes []ScaleNode
	// NodeCapacity is what one new node of the pool offers, from an
	// existing node or the policy.
	NodeCapacity Resources
	// Checks holds one sample for every check of the policy. A configured
	// pending_tasks or Prometheus check without a sample counts as having
	// no data; a configured alert without a sample as not firing.
	Checks []CheckSample
	// InFlight holds the journal's actions in flight in the pool, healing
	// and scale-in alike: with the draining nodes they are what the
	// disruption budget counts (Disrupted).
	InFlight []Action
	// Recommendations are the sizes earlier decisions recommended
	// (ScaleDecision.Recommended), kept by the caller with Remember: a
	// scale-in goes no lower than the highest of those made within
	// cooldown_down, the stabilisation window. Nil when none are known.
	Recommendations []Recommendation
}

// Recommendation is the size one decision's checks recommended, and when.
type Recommendation struct {
	At   time.Time
	Size int
}

// ScaleNode is one Swarm node of a pool, as scale-in sees it.
type ScaleNode struct {
	ID         string
	InstanceID string
	// Role is the node's actual Swarm role, not its pool's: a node promoted
	// to manager by hand inside a worker pool is a manager, and managers are
	// never scale-in candidates (safety rule 5) nor removable capacity.
	Role      string
	CreatedAt time.Time
	// RunningTasks counts the tasks running on the node.
	RunningTasks int
	// Reserved is the sum of the running tasks' reservations; Capacity is
	// what the node offers.
	Reserved Resources
	Capacity Resources
	// Draining is true while the node drains: it is on its way out.
	Draining bool
	// UnneededSince is when the node was first judged unneeded (see
	// Unneeded and BuildScalePool) without a break since; zero while it is
	// needed, and always zero for a manager.
	UnneededSince time.Time
}

// PendingTask is a task Swarm cannot place for lack of resources, and that
// one node of the pool would fit; the caller leaves out the others.
type PendingTask struct {
	NanoCPUs    int64
	MemoryBytes int64
}

// CheckSample is one check's reading for this decision.
type CheckSample struct {
	Name string
	// Kind is CheckPendingTasks, CheckPrometheus or CheckAlert.
	Kind string

	// pending_tasks: the tasks waiting for room.
	PendingTasks []PendingTask

	// prometheus: the value and when it was sampled; Err is set when the
	// query failed or Prometheus was unreachable, Empty when the query
	// returned no series. Target, Upper, Lower and Step are the check's
	// settings, copied from the policy.
	Value        float64
	SampleTime   time.Time
	Err          string
	Empty        bool
	Target       *float64
	Upper, Lower *float64

	// prometheus thresholds and alert: the nodes to add (or remove).
	Step int

	// alert: whether the alert fires, and when the agent last heard of it.
	Firing     bool
	ReceivedAt time.Time
}

// CheckResult is what one check asks for.
type CheckResult struct {
	Name string
	Kind string
	// Desired is the size the check asks for, before bounds, steps and
	// cooldowns. An untrusted check asks for the current size.
	Desired int
	// Trusted is false for a Prometheus check whose sample failed, is
	// empty, NaN, ±Inf or stale: it neither grows nor shrinks the pool.
	Trusted bool
	Reason  string
}

// ScaleDecision is what one pool does, and why.
type ScaleDecision struct {
	PoolID string
	// From is the pool's size once its draining nodes are gone: Current
	// less the draining nodes. To is the size to reach; To == From holds.
	From, To  int
	Direction ScaleDirection
	Code      ScaleCode
	// Message explains the decision, and every hold, in one sentence.
	Message  string
	PerCheck []CheckResult
	// RemoveNodes are the nodes to drain and remove on scale-in, exactly
	// From - To of them, in the order the node selector prefers them.
	RemoveNodes []string
	// Forced is true when the pool is outside its bounds and is brought
	// back whatever the checks and cooldowns say (still by at most
	// max_step, and still draining at most one busy node at a time).
	Forced bool
	// Recommended is the size the trusted checks asked for, within the
	// bounds, before cooldowns, steps, the stabilisation window and the
	// disruption budget; From when no trusted check reported. The caller
	// keeps it (Remember) for the next decisions' stabilisation window.
	Recommended int
}

// ScalePlan holds one decision per pool of the snapshot, in its order.
type ScalePlan struct {
	Decisions []ScaleDecision
}

// Scale decides, for every pool, the size to grow or shrink to, and which
// nodes go. It keeps the safety rules of DESIGN.md:
//
//   - a decision never leaves [MinSize, MaxSize] and never steps more than
//     max_step; a pool already outside its bounds is brought back by at
//     most max_step per decision, whatever the checks and cooldowns say;
//   - every check proposes a size, and the one asking for the most
//     capacity wins, so the pool shrinks only when every trusted check
//     agrees; a Prometheus check whose sample failed, is empty, NaN, ±Inf
//     or older than max_sample_age is untrusted: it never grows or shrinks
//     the pool, and while one exists the pool does not shrink at all;
//   - no scale-up within cooldown_up of the last one, no scale-down within
//     cooldown_down of the last scale-down or scale-up, and none while
//     instances asked for are still starting;
//   - only nodes unneeded for scale_in_after and not draining are removed,
//     chosen by the node selector, and at most one node with running tasks
//     drains at a time in a pool;
//   - a manager (a node promoted by hand inside a worker pool) is never
//     removed, not even to bring a pool back under max_size;
//   - disruption budget: at most DisruptionBudget(Current,
//     max_disrupted_percent) of the pool's
//     nodes are disrupted at once, counting those already draining and
//     those named by actions in flight, healing and scale-in alike
//     (Disrupted); a scale-in, forced or not, removes no more than what is
//     left of it, and holds when nothing is;
//   - stabilisation window (anti-flapping): a scale-in goes no lower than
//     the highest size the checks recommended within cooldown_down
//     (Recommendations), so a load that swings around its target keeps
//     the size its peaks need instead of shrinking in every trough;
//   - runaway guard: tasks still pending while a node the last scale-out
//     added is Ready, settled (SettleWindow) and empty with room for them
//     ask for no node: the pool's new nodes do not take them, so more of
//     the same would not either ("unschedulable"). The guard lifts by
//     itself when the pool or the pending set changes: the node takes a
//     task, is gone, or the tasks no longer fit it.
//
// What the checks propose: pending_tasks asks for the nodes the pending
// tasks' reservations need, less the instances already starting;
// target tracking for ceil(ready nodes × value / target); thresholds for
// step more above upper and step fewer below lower; a firing alert for step
// more. A check with nothing to ask for (no pending task, an alert not
// firing, a value not above an upper threshold that has no lower one)
// allows the nodes unneeded for scale_in_after to go.
//
// Scale is deterministic: the same snapshot gives the same plan.
func Scale(s ScaleSnapshot) ScalePlan {
	plan := ScalePlan{Decisions: make([]ScaleDecision, 0, len(s.Pools))}
	seen := make(map[string]struct{}, len(s.Pools))
	sc := &scaler{now: s.Now}
	for i := range s.Pools {
		p := &s.Pools[i]
		if _, dup := seen[p.ID]; dup {
			from := max(0, p.Current-drainingNodes(p))
			plan.Decisions = append(plan.Decisions, ScaleDecision{PoolID: p.ID, From: from, To: from, Recommended: from,
				Direction: ScaleHold, Code: CodeInvalid,
				Message: "another pool of the snapshot has the same id; only the first is scaled"})
			continue
		}
		seen[p.ID] = struct{}{}
		plan.Decisions = append(plan.Decisions, sc.decide(p))
	}
	return plan
}

// DisruptionBudget is how many of a pool of size nodes may be disrupted
// (drained or removed) at once, healing and scale-in together, when percent
// of them may (max_disrupted_percent; 0 or less means
// policy.DefaultMaxDisruptedPercent, 10 %, Karpenter's default NodePool
// budget): max(1, ⌊size × percent / 100⌋). It rounds down, so the share is
// never exceeded once it allows one node, and one node at a time is the
// floor that lets any pool shrink and heal.
func DisruptionBudget(size, percent int) int {
	if percent <= 0 {
		percent = policy.DefaultMaxDisruptedPercent
	}
	return max(1, min(size, maxDesired)*min(percent, 100)/100)
}

// Disrupted counts the pool's units being disrupted: every action in flight
// in the pool (a scale-in removal, a healing replacement, a lone removal or
// termination), an action concluding a replacement in flight counting with
// that replacement, plus the draining nodes no action names (drained by
// hand, or on their way out after their action ended).
func Disrupted(p *ScalePool) int {
	n := 0
	keys := make(map[string]struct{}, len(p.InFlight))
	for i := range p.InFlight {
		keys[p.InFlight[i].Key] = struct{}{}
	}
	named := make(map[string]struct{}, len(p.InFlight))
	for i := range p.InFlight {
		a := &p.InFlight[i]
		if a.PoolID != "" && a.PoolID != p.ID {
			continue
		}
		if a.NodeID != "" {
			named[a.NodeID] = struct{}{}
		}
		if _, ok := keys[a.Completes]; ok && a.Completes != "" && a.Completes != a.Key {
			continue
		}
		n++
	}
	for i := range p.Nodes {
		if _, ok := named[p.Nodes[i].ID]; p.Nodes[i].Draining && !ok {
			n++
		}
	}
	return n
}

// ScaleInKeyPrefix starts the Key of every scale-in removal
// (ScaleInActions).
const ScaleInKeyPrefix = "scale_in/"

// IsScaleIn tells whether an action is a scale-in removal (ScaleInActions)
// rather than a healing action: Heal counts those in flight against the
// pool's disruption budget.
func IsScaleIn(a Action) bool {
	return a.Kind == RemoveNode && strings.HasPrefix(a.Key, ScaleInKeyPrefix)
}

// Remember returns the recommendations to pass to the pool's next
// decision: those of prev made within window before now, and d's. The
// result is a new slice; prev is not modified.
func Remember(prev []Recommendation, d ScaleDecision, now time.Time, window time.Duration) []Recommendation {
	return append(recent(prev, now, window), Recommendation{At: now, Size: d.Recommended})
}

// recent is a new slice of the recommendations of prev made within window
// before now, with room for one more.
func recent(prev []Recommendation, now time.Time, window time.Duration) []Recommendation {
	out := make([]Recommendation, 0, len(prev)+1)
	for _, r := range prev {
		if now.Sub(r.At) < window && !r.At.After(now) {
			out = append(out, r)
		}
	}
	return out
}

// Unneeded tells whether a node could go without its work missing the room:
// it runs no task, or its tasks reserve less than capacityShareThreshold
// (such as 0.5) of its CPU and of its memory. BuildScalePool sets a node's
// UnneededSince when this turns true and clears it when it turns false.
func Unneeded(n ScaleNode, capacityShareThreshold float64) bool {
	return n.RunningTasks <= 0 || ReservedShare(n) < capacityShareThreshold
}

// ReservedShare is the larger of the node's reserved CPU share and reserved
// memory share. A reservation on a node of unknown capacity counts as full.
func ReservedShare(n ScaleNode) float64 {
	return max(share(n.Reserved.NanoCPUs, n.Capacity.NanoCPUs), share(n.Reserved.MemoryBytes, n.Capacity.MemoryBytes))
}

func share(reserved, capacity int64) float64 {
	switch {
	case reserved <= 0:
		return 0
	case capacity <= 0:
		return 1
	}
	return float64(reserved) / float64(capacity)
}

// maxDesired caps what a check may ask for, so that absurd metric values
// cannot overflow; bounds cut it down anyway.
const maxDesired = 1 << 30

// scaler holds buffers reused across the pools of one evaluation.
type scaler struct {
	now   time.Time
	order []int32   // candidate node indexes
	share []float64 // per node, for least_busy
	meta  []checkMeta
	ids   map[string]int // node ID -> how often it appears in the pool
}

// checkMeta is what Scale knows about a CheckResult beyond its fields.
type checkMeta struct {
	code  ScaleCode // when the check wins; for an untrusted check, why not
	quiet bool      // asks for nothing: allows the unneeded nodes to go
}

// poolScale is the decision for one pool.
type poolScale struct {
	sc       *scaler
	p        *ScalePool
	now      time.Time
	d        ScaleDecision
	from     int
	lo, hi   int
	step     int
	busy     *ScaleNode // a draining node with running tasks, if any
	cands    []int32    // eligible nodes in the selector's order
	blocked  int        // eligible nodes the drain rule keeps for later
	eligible int        // how many of cands may go now (drain rule)
	// The disruption budget: how many nodes may be disrupted at once, and
	// how many are (Disrupted).
	budget, disrupted int
}

func drainingNodes(p *ScalePool) int {
	n := 0
	for i := range p.Nodes {
		if p.Nodes[i].Draining {
			n++
		}
	}
	return n
}

// managerNodes counts the pool's nodes that are managers and not draining.
func managerNodes(p *ScalePool) int {
	n := 0
	for i := range p.Nodes {
		if p.Nodes[i].Role == policy.RoleManager && !p.Nodes[i].Draining {
			n++
		}
	}
	return n
}

func (sc *scaler) decide(p *ScalePool) ScaleDecision {
	r := &poolScale{sc: sc, p: p, now: sc.now, lo: p.MinSize, hi: p.MaxSize, step: p.Rules.MaxStep}
	for i := range p.Nodes {
		if n := &p.Nodes[i]; n.Draining && n.RunningTasks > 0 && r.busy == nil {
			r.busy = n
		}
	}
	if r.busy == nil {
		r.busy = stoppingNode(p)
	}
	r.from = max(0, p.Current-drainingNodes(p))
	r.d = ScaleDecision{PoolID: p.ID, From: r.from, To: r.from, Direction: ScaleHold, Recommended: r.from}
	if !p.Rules.Enabled {
		return r.hold(CodeDisabled, "the scaling policy is disabled: the pool keeps its size")
	}
	if msg := invalidScalePool(p); msg != "" {
		return r.hold(CodeInvalid, msg)
	}

	r.budget, r.disrupted = DisruptionBudget(p.Current, p.Rules.MaxDisruptedPercent), Disrupted(p)
	r.candidates(false)
	r.eligible, r.blocked = r.count(len(r.cands))
	r.evaluateChecks()

	switch {
	case r.from < r.lo:
		if hold, ok := r.backoffHold(fmt.Sprintf("the pool has %d nodes, fewer than min_size %d", r.from, r.lo)); ok {
			return hold
		}
		to := min(r.lo, r.from+r.step)
		r.d.To, r.d.Direction, r.d.Code, r.d.Forced = to, ScaleUp, CodeMinSize, true
		r.d.Message = fmt.Sprintf("the pool has %d nodes, fewer than min_size %d: grow to %d whatever the checks and cooldowns say%s",
			r.from, r.lo, to, r.stepNote(to < r.lo))
		return r.d
	case r.from > r.hi:
		return r.forceDown()
	}
	return r.decideByChecks()
}

// invalidScalePool refuses pools whose bounds, counts or rules make any
// decision meaningless; the agent and the provider validate them, so this
// only catches a broken store or a bug, and then holding is the safe answer.
func invalidScalePool(p *ScalePool) string {
	r := &p.Rules
	switch {
	case p.MinSize < 0 || p.MaxSize < p.MinSize:
		return fmt.Sprintf("bounds [%d, %d] are not a size range", p.MinSize, p.MaxSize)
	case p.Current < 0 || p.Pending < 0:
		return fmt.Sprintf("current size %d or pending count %d is negative", p.Current, p.Pending)
	case r.MaxStep < policy.MinMaxStep:
		return fmt.Sprintf("max_step %d is below %d: the scaling rules were not validated", r.MaxStep, policy.MinMaxStep)
	case r.CooldownUp < 0 || r.CooldownDown < 0 || r.ScaleInAfter < 0 || r.MaxSampleAge < 0 ||
		(r.MaxSampleAge == 0 && r.EvaluationInterval <= 0):
		return "a duration of the scaling rules is negative or missing: the rules were not validated"
	case !slices.Contains(policy.NodeSelectors, r.NodeSelector):
		return fmt.Sprintf("node_selector %q is unknown: the scaling rules were not validated", r.NodeSelector)
	}
	return ""
}

// candidates collects the nodes that may go, in the node selector's order:
// not draining, not managers and, unless forced, unneeded for at least
// scale_in_after. A node whose ID the snapshot lists twice is never a
// candidate: which of the two the agent would remove is anybody's guess.
func (r *poolScale) candidates(forced bool) {
	nodes := r.p.Nodes
	r.cands = r.sc.order[:0]
	for i := range nodes {
		n := &nodes[i]
		if n.Draining || n.ID == "" || n.Role == policy.RoleManager {
			continue
		}
		if !forced && (n.UnneededSince.IsZero() || r.now.Sub(n.UnneededSince) < r.p.Rules.ScaleInAfter) {
			continue
		}
		r.cands = append(r.cands, int32(i))
	}
	r.sc.order = r.cands
	if len(r.cands) == 0 {
		return
	}
	// Count how often each candidate's ID appears among all the nodes.
	if r.sc.ids == nil {
		r.sc.ids = make(map[string]int, len(nodes))
	}
	ids := r.sc.ids
	clear(ids)
	for _, i := range r.cands {
		ids[nodes[i].ID] = 0
	}
	dups := false
	for i := range nodes {
		if c, ok := ids[nodes[i].ID]; ok {
			ids[nodes[i].ID] = c + 1
			dups = dups || c > 0
		}
	}
	if dups {
		r.cands = slices.DeleteFunc(r.cands, func(i int32) bool { return ids[nodes[i].ID] > 1 })
	}
	newestFirst := func(a, b *ScaleNode) int {
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), strings.Compare(a.ID, b.ID))
	}
	switch r.p.Rules.NodeSelector {
	case policy.NodeSelectorLeastBusy:
		if cap(r.sc.share) < len(nodes) {
			r.sc.share = make([]float64, len(nodes))
		}
		sh := r.sc.share[:len(nodes)]
		for _, i := range r.cands {
			sh[i] = ReservedShare(nodes[i])
		}
		slices.SortFunc(r.cands, func(i, j int32) int {
			a, b := &nodes[i], &nodes[j]
			return cmp.Or(cmp.Compare(sh[i], sh[j]), cmp.Compare(a.RunningTasks, b.RunningTasks), newestFirst(a, b))
		})
	case policy.NodeSelectorOldest:
		slices.SortFunc(r.cands, func(i, j int32) int {
			a, b := &nodes[i], &nodes[j]
			return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
		})
	case policy.NodeSelectorNewest:
		slices.SortFunc(r.cands, func(i, j int32) int { return newestFirst(&nodes[i], &nodes[j]) })
	default: // empty_first
		slices.SortFunc(r.cands, func(i, j int32) int {
			a, b := &nodes[i], &nodes[j]
			return cmp.Or(cmp.Compare(a.RunningTasks, b.RunningTasks), newestFirst(a, b))
		})
	}
}

// count tells how many of the first candidates pick(want) would take, and
// how many it would pass over for the drain rule.
func (r *poolScale) count(want int) (n, blocked int) {
	tookBusy := r.busy != nil
	for _, i := range r.cands {
		if n == want {
			break
		}
		if r.p.Nodes[i].RunningTasks > 0 {
			if tookBusy {
				blocked++
				continue
			}
			tookBusy = true
		}
		n++
	}
	return n, blocked
}

// pick chooses up to want nodes in the selector's order. Only one node with
// running tasks drains at a time in a pool: none while one already does.
func (r *poolScale) pick(want int) []string {
	var out []string
	tookBusy := r.busy != nil
	for _, i := range r.cands {
		if len(out) == want {
			break
		}
		n := &r.p.Nodes[i]
		if n.RunningTasks > 0 {
			if tookBusy {
				continue
			}
			tookBusy = true
		}
		out = append(out, n.ID)
	}
	return out
}

// evaluateChecks fills PerCheck: one result per sample, then one for every
// configured check that reported no sample.
func (r *poolScale) evaluateChecks() {
	p := r.p
	r.sc.meta = r.sc.meta[:0]
	r.d.PerCheck = make([]CheckResult, 0, len(p.Checks)+1)
	for i := range p.Checks {
		res, m := r.evaluate(&p.Checks[i])
		r.d.PerCheck = append(r.d.PerCheck, res)
		r.sc.meta = append(r.sc.meta, m)
	}
	has := func(kind, name string) bool {
		for i := range p.Checks {
			if c := &p.Checks[i]; c.Kind == kind && (name == "" || c.Name == name) {
				return true
			}
		}
		return false
	}
	missing := func(kind, name string) {
		r.d.PerCheck = append(r.d.PerCheck, CheckResult{Name: name, Kind: kind, Desired: r.from,
			Reason: "the check is configured but reported no sample"})
		r.sc.meta = append(r.sc.meta, checkMeta{code: CodeNoData})
	}
	if p.Rules.PendingTasks && !has(CheckPendingTasks, "") {
		missing(CheckPendingTasks, CheckPendingTasks)
	}
	for _, c := range p.Rules.Prometheus {
		if !has(CheckPrometheus, c.Name) {
			missing(CheckPrometheus, c.Name)
		}
	}
	for _, c := range p.Rules.Alert {
		if !has(CheckAlert, c.Name) {
			res, m := r.evaluate(&CheckSample{Name: c.Name, Kind: CheckAlert, Step: c.Step})
			r.d.PerCheck = append(r.d.PerCheck, res)
			r.sc.meta = append(r.sc.meta, m)
		}
	}
}

// evaluate turns one sample into the size its check asks for.
func (r *poolScale) evaluate(c *CheckSample) (CheckResult, checkMeta) {
	res := CheckResult{Name: c.Name, Kind: c.Kind, Desired: r.from, Trusted: true}
	var m checkMeta
	step := max(c.Step, 1)
	grow := func(n int) int { return r.from + max(0, n-r.p.Pending) }
	quiet := func(code ScaleCode, why string) {
		m.code, m.quiet = code, true
		res.Desired = r.from - r.eligible
		res.Reason = why + r.unneededNote()
	}
	untrusted := func(code ScaleCode, why string) {
		res.Trusted, res.Desired, res.Reason = false, r.from, why
		m.code = code
	}
	switch c.Kind {
	case CheckPendingTasks:
		if len(c.PendingTasks) == 0 {
			quiet(CodePendingTasks, "no task is pending")
			break
		}
		m.code = CodePendingTasks
		tasks, idle, refused := r.placeable(c.PendingTasks)
		if len(tasks) == 0 {
			m.code = CodeUnschedulable
			res.Reason = fmt.Sprintf("%s still wait although node %s, added by the last scale-out %s ago, has been Ready and empty for %s with room for them: the pool's new nodes do not take them (constraints or labels), so no node is asked for them",
				plural(refused, "pending task"), idle.ID, r.since(r.p.LastScaleUp), r.since(idle.CreatedAt))
			break
		}
		need, sum := nodesFor(tasks, r.p.NodeCapacity)
		res.Desired = grow(need)
		res.Reason = fmt.Sprintf("%s reserving %s need %s of %s each, %s already starting",
			plural(len(tasks), "pending task"), fmtResources(sum), plural(need, "new node"),
			fmtResources(r.p.NodeCapacity), plural(r.p.Pending, "instance"))
		if refused > 0 {
			res.Reason += fmt.Sprintf("; %s more wait although node %s, added by the last scale-out, is Ready and empty with room for them, so they ask for no node",
				plural(refused, "pending task"), idle.ID)
		}
	case CheckPrometheus:
		if code, why := r.distrust(c); code != "" {
			untrusted(code, why)
			break
		}
		v := c.Value
		switch {
		case c.Target != nil:
			t := *c.Target
			if !(t > 0) || math.IsInf(t, 0) {
				untrusted(CodeNoData, fmt.Sprintf("target_value %v is not a positive number", t))
				break
			}
			m.code = CodeTargetTracking
			ready := max(0, r.from-r.p.Pending)
			res.Desired = ceilSize(float64(ready) * v / t)
			if ready == 0 && v > 0 {
				res.Desired = max(res.Desired, r.lo, 1)
			}
			res.Reason = fmt.Sprintf("value %s against target_value %s over %d ready nodes", fmtFloat(v), fmtFloat(t), ready)
		case c.Upper != nil || c.Lower != nil:
			if (c.Upper != nil && !isFinite(*c.Upper)) || (c.Lower != nil && !isFinite(*c.Lower)) {
				untrusted(CodeNoData, "a threshold is not a finite number")
				break
			}
			m.code = CodeThreshold
			switch {
			case c.Upper != nil && v > *c.Upper:
				res.Desired = grow(step)
				res.Reason = fmt.Sprintf("value %s is above upper %s: %s more, %s already starting",
					fmtFloat(v), fmtFloat(*c.Upper), plural(step, "node"), plural(r.p.Pending, "instance"))
			case c.Lower != nil && v < *c.Lower:
				res.Desired = r.from - step
				res.Reason = fmt.Sprintf("value %s is below lower %s: %s fewer", fmtFloat(v), fmtFloat(*c.Lower), plural(step, "node"))
			case c.Upper != nil && c.Lower != nil:
				res.Reason = fmt.Sprintf("value %s is within [%s, %s]", fmtFloat(v), fmtFloat(*c.Lower), fmtFloat(*c.Upper))
			case c.Upper != nil:
				quiet(CodeThreshold, fmt.Sprintf("value %s is not above upper %s", fmtFloat(v), fmtFloat(*c.Upper)))
			default:
				res.Reason = fmt.Sprintf("value %s is not below lower %s", fmtFloat(v), fmtFloat(*c.Lower))
			}
		default:
			untrusted(CodeNoData, "the check has neither target_value nor upper or lower")
		}
	case CheckAlert:
		if !c.Firing {
			quiet(CodeAlert, "the alert is not firing")
			break
		}
		m.code = CodeAlert
		res.Desired = grow(step)
		res.Reason = fmt.Sprintf("the alert is firing: %s more, %s already starting", plural(step, "node"), plural(r.p.Pending, "instance"))
		if !c.ReceivedAt.IsZero() {
			res.Reason = fmt.Sprintf("the alert is firing (last heard %s ago): %s more, %s already starting",
				r.since(c.ReceivedAt), plural(step, "node"), plural(r.p.Pending, "instance"))
		}
	default:
		untrusted(CodeNoData, fmt.Sprintf("check kind %q is unknown", c.Kind))
	}
	res.Desired = min(max(res.Desired, 0), maxDesired)
	return res, m
}

// placeable is the runaway guard of the pending_tasks check. It returns
// the pending tasks that may ask for nodes, and the count of those that may
// not with the idle node that shows why.
//
// A node the last scale-out added (joined at or after LastScaleUp) that is
// a Ready worker, not draining, settled (joined at least SettleWindow ago)
// and has nothing assigned is room the scheduler has had time to use. A
// pending task that fits it and still waits does not fit the pool's new
// nodes as they really join — a constraint or label that MatchesPool,
// computed from the pool's declared labels, cannot see — so asking for
// more such nodes would grow the pool every cooldown_up up to max_size
// (RELIABILITY.md R7, F1). The guard needs no memory: it lifts as soon as
// the node takes a task, leaves, or new tasks that do not fit it pend.
// Only nodes of the last scale-out are judged, so older nodes joined with
// outdated labels never stop a scale-out that would bring the new ones.
func (r *poolScale) placeable(tasks []PendingTask) ([]PendingTask, *ScaleNode, int) {
	last := r.p.LastScaleUp
	if last.IsZero() {
		return tasks, nil, 0
	}
	var idle []*ScaleNode
	for i := range r.p.Nodes {
		n := &r.p.Nodes[i]
		if n.Role != policy.RoleManager && !n.Draining && n.RunningTasks == 0 && n.Reserved == (Resources{}) &&
			!n.CreatedAt.Before(last) && r.now.Sub(n.CreatedAt) >= SettleWindow {
			idle = append(idle, n)
		}
	}
	if len(idle) == 0 {
		return tasks, nil, 0
	}
	var out []PendingTask
	var shown *ScaleNode
	refused := 0
	for _, t := range tasks {
		var fits *ScaleNode
		for _, n := range idle {
			if fitsNode(Resources(t), n.Capacity) {
				fits = n
				break
			}
		}
		if fits == nil {
			out = append(out, t)
			continue
		}
		if shown == nil {
			shown = fits
		}
		refused++
	}
	return out, shown, refused
}

// distrust says why a Prometheus sample cannot be trusted; "" when it can.
func (r *poolScale) distrust(c *CheckSample) (ScaleCode, string) {
	maxAge := r.p.Rules.MaxSampleAge
	if maxAge <= 0 {
		maxAge = 2 * r.p.Rules.EvaluationInterval
	}
	return distrustSample(c, r.now, maxAge)
}

// distrustSample says why a Prometheus sample cannot be trusted at now,
// when samples older than maxAge are stale; "" when it can. Node pools
// and services judge their samples by this one rule.
func distrustSample(c *CheckSample, now time.Time, maxAge time.Duration) (ScaleCode, string) {
	since := func(t time.Time) time.Duration { return now.Sub(t).Round(time.Second) }
	switch {
	case c.Err != "":
		return CodeNoData, "the query failed: " + c.Err
	case c.Empty:
		return CodeNoData, "the query returned no series"
	case !isFinite(c.Value):
		return CodeNoData, fmt.Sprintf("the query returned %v", c.Value)
	case c.SampleTime.IsZero():
		return CodeNoData, "the sample has no time"
	case now.Sub(c.SampleTime) > maxAge:
		return CodeStaleMetric, fmt.Sprintf("the newest sample is %s old, more than max_sample_age %s", since(c.SampleTime), maxAge)
	}
	return "", ""
}

// decideByChecks decides a pool within its bounds from its checks.
func (r *poolScale) decideByChecks() ScaleDecision {
	res, meta := r.d.PerCheck, r.sc.meta
	best, lowest, distrusted := -1, -1, -1
	for i := range res {
		switch {
		case !res[i].Trusted:
			if distrusted < 0 {
				distrusted = i
			}
		case best < 0:
			best, lowest = i, i
		default:
			if res[i].Desired > res[best].Desired {
				best = i
			}
			if res[i].Desired < res[lowest].Desired {
				lowest = i
			}
		}
	}
	if best < 0 {
		if distrusted < 0 {
			return r.hold(CodeNoData, fmt.Sprintf("no check reported: hold at %d nodes", r.from))
		}
		return r.hold(meta[distrusted].code, fmt.Sprintf("%s, and no other check reports: hold at %d nodes",
			r.describe(distrusted), r.from))
	}
	want := res[best].Desired
	wins := r.describe(best)
	r.d.Recommended = min(max(want, r.lo), r.hi)
	switch {
	case want > r.from:
		if r.from >= r.hi {
			return r.hold(CodeMaxSize, fmt.Sprintf("%s, so it asks for %s, but the pool is at max_size %d: hold", wins, plural(want, "node"), r.hi))
		}
		if hold, ok := r.backoffHold(fmt.Sprintf("%s, so it asks for %s", wins, plural(want, "node"))); ok {
			return hold
		}
		if last := r.p.LastScaleUp; r.cooling(last, r.p.Rules.CooldownUp) {
			return r.hold(CodeCooldownUp, fmt.Sprintf("%s, so it asks for %s, but the pool grew %s ago, within cooldown_up %s: hold at %d",
				wins, plural(want, "node"), r.since(last), r.p.Rules.CooldownUp, r.from))
		}
		to := min(want, r.hi, r.from+r.step)
		note := r.stepNote(to < min(want, r.hi))
		if want > r.hi {
			note += fmt.Sprintf(", capped at max_size %d", r.hi)
		}
		r.d.To, r.d.Direction, r.d.Code = to, ScaleUp, meta[best].code
		r.d.Message = fmt.Sprintf("%s, so it asks for %s: grow from %d to %d%s", wins, plural(want, "node"), r.from, to, note)
		return r.d
	case want < r.from:
		allowed := fmt.Sprintf("every trusted check allows %s (%s)", plural(want, "node"), wins)
		if r.from <= r.lo {
			return r.hold(CodeMinSize, fmt.Sprintf("%s, but the pool is at min_size %d: hold", allowed, r.lo))
		}
		if distrusted >= 0 {
			return r.hold(meta[distrusted].code, fmt.Sprintf("%s, but %s: hold at %d nodes, never shrink on it",
				allowed, r.describe(distrusted), r.from))
		}
		if hold, ok := r.scaleInHold(allowed); ok {
			return hold
		}
		stable, at := r.stabilized()
		if stable >= r.from {
			return r.hold(CodeStabilization, fmt.Sprintf("%s, but the checks recommended %s %s ago, within the stabilisation window (cooldown_down %s): scale in no lower than the window's highest recommendation: hold at %d",
				allowed, plural(stable, "node"), r.since(at), r.p.Rules.CooldownDown, r.from))
		}
		room := r.budget - r.disrupted
		if room <= 0 {
			return r.hold(CodeDisruptionBudget, fmt.Sprintf("%s, but %s: hold at %d", allowed, r.budgetNote(), r.from))
		}
		target := max(want, r.lo, stable)
		goal := min(r.from-target, r.step, room)
		remove := r.pick(goal)
		if len(remove) == 0 {
			return r.nodesHold(allowed)
		}
		to := r.from - len(remove)
		r.d.To, r.d.Direction, r.d.Code, r.d.RemoveNodes = to, ScaleDown, meta[best].code, remove
		var note string
		switch {
		case len(remove) < goal:
			r.d.Code = CodeScaleInAfter
			note = r.shortNote(len(remove))
		case meta[best].quiet && res[lowest].Desired < want:
			// The checks would shrink further; the unneeded nodes limit it.
			r.d.Code = CodeScaleInAfter
			note = fmt.Sprintf(", as %s asks for %d and no more nodes have been unneeded for scale_in_after %s%s",
				r.describe(lowest), res[lowest].Desired, r.p.Rules.ScaleInAfter, r.drainNote())
		case want < r.lo && to == r.lo:
			note = fmt.Sprintf(", stopping at min_size %d", r.lo)
		case len(remove) == room && room < min(r.from-target, r.step):
			r.d.Code = CodeDisruptionBudget
			note = ", limited by the disruption budget: " + r.budgetNote()
		case target == stable && stable > max(want, r.lo):
			r.d.Code = CodeStabilization
			note = fmt.Sprintf(", the highest size the checks recommended within the stabilisation window (cooldown_down %s)", r.p.Rules.CooldownDown)
		default:
			note = r.stepNote(len(remove) < r.from-target)
		}
		r.d.Message = fmt.Sprintf("%s: shrink from %d to %d%s, removing %s", allowed, r.from, to, note, listIDs(remove))
		return r.d
	}
	// want == r.from
	if distrusted >= 0 {
		return r.hold(meta[distrusted].code, fmt.Sprintf("the trusted checks are satisfied at %d nodes (%s), but %s: hold",
			r.from, wins, r.describe(distrusted)))
	}
	if low := res[lowest].Desired; low < r.from && r.allQuietAt(r.from) {
		allowed := fmt.Sprintf("%s, so it asks for %s", r.describe(lowest), plural(low, "node"))
		if r.from <= r.lo {
			return r.hold(CodeMinSize, fmt.Sprintf("%s, but the pool is at min_size %d: hold", allowed, r.lo))
		}
		return r.nodesHold(allowed)
	}
	for i := range res {
		if res[i].Trusted && res[i].Desired == want && meta[i].code == CodeUnschedulable {
			return r.hold(CodeUnschedulable, fmt.Sprintf("%s: hold at %d until the pool or the pending tasks change", r.describe(i), r.from))
		}
	}
	return r.hold(CodeWithinTarget, fmt.Sprintf("the checks are satisfied at %d nodes (%s): hold", r.from, wins))
}

// scaleInHold applies the holds on any scale-in: instances still starting
// and the two cooldowns.
func (r *poolScale) scaleInHold(allowed string) (ScaleDecision, bool) {
	rules := &r.p.Rules
	switch {
	case r.p.Pending > 0:
		return r.hold(CodeCooldownDown, fmt.Sprintf("%s, but instances asked for are still starting (%d): no scale-in until they have joined",
			allowed, r.p.Pending)), true
	case r.cooling(r.p.LastScaleDown, rules.CooldownDown):
		return r.hold(CodeCooldownDown, fmt.Sprintf("%s, but the pool shrank %s ago, within cooldown_down %s: hold at %d",
			allowed, r.since(r.p.LastScaleDown), rules.CooldownDown, r.from)), true
	case r.cooling(r.p.LastScaleUp, rules.CooldownDown):
		return r.hold(CodeCooldownDown, fmt.Sprintf("%s, but the pool grew %s ago, within cooldown_down %s: hold at %d",
			allowed, r.since(r.p.LastScaleUp), rules.CooldownDown, r.from)), true
	}
	return ScaleDecision{}, false
}

// stabilized is the highest size recommended within the stabilisation
// window (cooldown_down) before now, and when; 0 and the zero time when
// none was.
func (r *poolScale) stabilized() (int, time.Time) {
	size, at := 0, time.Time{}
	for _, rec := range r.p.Recommendations {
		if age := r.now.Sub(rec.At); age >= 0 && age < r.p.Rules.CooldownDown && rec.Size > size {
			size, at = rec.Size, rec.At
		}
	}
	return size, at
}

// budgetNote says how the disruption budget stands.
func (r *poolScale) budgetNote() string {
	pct := r.p.Rules.MaxDisruptedPercent
	if pct <= 0 {
		pct = policy.DefaultMaxDisruptedPercent
	}
	return fmt.Sprintf("%s of the pool's %d are being disrupted (draining, or in flight for healing or scale-in) and its disruption budget is %d (max(1, max_disrupted_percent %d %%))",
		plural(r.disrupted, "node"), r.p.Current, r.budget, pct)
}

// stoppingNode is a node of the pool whose removal is in flight and that
// Swarm still lists as Ready, though with no running task: the agent reads
// tasks by desired state, and the tasks of a draining node are told to
// stop before they have stopped (one ignoring SIGTERM runs for its whole
// grace period), so such a node may still be busy. It counts as the busy
// drain, so no second busy node drains beside it; empty nodes still go.
// A node drained by hand with no action in flight does not count: it may
// stay drained for good. Nil when there is none.
func stoppingNode(p *ScalePool) *ScaleNode {
	if len(p.InFlight) == 0 {
		return nil
	}
	removing := make(map[string]bool, len(p.InFlight))
	for i := range p.InFlight {
		if a := &p.InFlight[i]; a.Kind == RemoveNode && a.NodeID != "" {
			removing[a.NodeID] = true
		}
	}
	for i := range p.Nodes {
		if n := &p.Nodes[i]; n.Draining && removing[n.ID] {
			return n
		}
	}
	return nil
}

// busyNote names the busy drain, with its count of running tasks when
// counted.
func (r *poolScale) busyNote(counted bool) string {
	switch {
	case r.busy.RunningTasks > 0 && counted:
		return fmt.Sprintf("node %s is draining with %d running tasks", r.busy.ID, r.busy.RunningTasks)
	case r.busy.RunningTasks > 0:
		return fmt.Sprintf("node %s is draining with running tasks", r.busy.ID)
	}
	return fmt.Sprintf("node %s is being removed and its tasks may still be stopping", r.busy.ID)
}

// nodesHold explains a scale-in that no node is eligible for.
func (r *poolScale) nodesHold(allowed string) ScaleDecision {
	if r.blocked > 0 && r.busy != nil {
		return r.hold(CodeDraining, fmt.Sprintf("%s, but %s: no other busy node drains until it is done: hold at %d",
			allowed, r.busyNote(true), r.from))
	}
	return r.hold(CodeScaleInAfter, fmt.Sprintf("%s, but no node has been unneeded for scale_in_after %s: hold at %d",
		allowed, r.p.Rules.ScaleInAfter, r.from))
}

// allQuietAt: every trusted check asking for n nodes only allows the
// unneeded nodes to go, so those nodes are what keeps the size.
func (r *poolScale) allQuietAt(n int) bool {
	for i, res := range r.d.PerCheck {
		if res.Trusted && res.Desired == n && !r.sc.meta[i].quiet {
			return false
		}
	}
	return true
}

// forceDown brings a pool above max_size back by at most max_step, choosing
// among all nodes that are not draining, unneeded or not.
func (r *poolScale) forceDown() ScaleDecision {
	r.candidates(true)
	r.eligible, r.blocked = r.count(len(r.cands))
	over := fmt.Sprintf("the pool has %d nodes, more than max_size %d", r.from, r.hi)
	room := r.budget - r.disrupted
	if room <= 0 {
		return r.hold(CodeDisruptionBudget, fmt.Sprintf("%s, but %s: hold", over, r.budgetNote()))
	}
	goal := min(r.from-r.hi, r.step, room)
	remove := r.pick(goal)
	if len(remove) == 0 {
		if r.blocked > 0 && r.busy != nil {
			return r.hold(CodeDraining, fmt.Sprintf("%s, but %s: no other busy node drains until it is done",
				over, r.busyNote(true)))
		}
		if managers := managerNodes(r.p); managers > 0 {
			return r.hold(CodeMaxSize, fmt.Sprintf("%s, but no node can go: every node is draining already or is a manager (%s, never scaled in)",
				over, plural(managers, "manager")))
		}
		return r.hold(CodeMaxSize, fmt.Sprintf("%s, but no node can go: every node is draining already", over))
	}
	to := r.from - len(remove)
	r.d.To, r.d.Direction, r.d.Code, r.d.Forced, r.d.RemoveNodes = to, ScaleDown, CodeMaxSize, true, remove
	note := r.stepNote(len(remove) < r.from-r.hi && len(remove) == r.step)
	if len(remove) == room && room < min(r.from-r.hi, r.step) {
		note = ", limited by the disruption budget: " + r.budgetNote()
	}
	if len(remove) < goal {
		note = ", one busy node at a time"
		if r.busy != nil {
			note = fmt.Sprintf(", only empty nodes while %s", r.busyNote(false))
		}
	}
	r.d.Message = fmt.Sprintf("%s: shrink to %d whatever the checks and cooldowns say%s, removing %s", over, to, note, listIDs(remove))
	return r.d
}

func (r *poolScale) hold(code ScaleCode, msg string) ScaleDecision {
	r.d.To, r.d.Direction, r.d.Code, r.d.Message, r.d.RemoveNodes = r.from, ScaleHold, code, msg, nil
	return r.d
}

// describe names check i and says what it sees.
func (r *poolScale) describe(i int) string {
	c := r.d.PerCheck[i]
	if c.Kind == CheckPendingTasks && (c.Name == "" || c.Name == CheckPendingTasks) {
		return fmt.Sprintf("check pending_tasks: %s", c.Reason)
	}
	if !c.Trusted {
		return fmt.Sprintf("%s check %q is not trusted: %s", c.Kind, c.Name, c.Reason)
	}
	return fmt.Sprintf("%s check %q: %s", c.Kind, c.Name, c.Reason)
}

func (r *poolScale) unneededNote() string {
	if r.eligible == 0 {
		return ""
	}
	return fmt.Sprintf(", so the %s unneeded for scale_in_after %s may go", plural(r.eligible, "node"), r.p.Rules.ScaleInAfter)
}

// shortNote says why only n nodes go.
func (r *poolScale) shortNote(n int) string {
	switch {
	case r.blocked > 0 && r.busy != nil:
		return fmt.Sprintf(", as only %s can go now: %s, so only empty nodes go", plural(n, "node"), r.busyNote(false))
	case r.blocked > 0:
		return fmt.Sprintf(", as only %s can go now: one busy node drains at a time", plural(n, "node"))
	}
	return fmt.Sprintf(", as only %s unneeded for scale_in_after %s", plural(n, "node"), r.p.Rules.ScaleInAfter)
}

func (r *poolScale) drainNote() string {
	if r.blocked > 0 && r.busy != nil {
		return fmt.Sprintf(" (%s, so only empty nodes go)", r.busyNote(false))
	}
	if r.blocked > 0 {
		return " (one busy node drains at a time)"
	}
	return ""
}

func (r *poolScale) stepNote(limited bool) string { return maxStepNote(limited, r.step) }

// cooling tells whether less than d has passed since last; a last time in
// the future counts as cooling.
func (r *poolScale) cooling(last time.Time, d time.Duration) bool { return coolingAt(r.now, last, d) }

func (r *poolScale) since(t time.Time) time.Duration { return r.now.Sub(t).Round(time.Second) }

// nodesFor is how many new nodes of capacity c the tasks need: the sum of
// their reservations over one node's, in whichever of CPU and memory needs
// more, and at least one. Negative reservations count as zero; a dimension
// of unknown capacity is left out.
func nodesFor(tasks []PendingTask, c Resources) (int, Resources) {
	var sum Resources
	for _, t := range tasks {
		sum.NanoCPUs = satAdd(sum.NanoCPUs, max(t.NanoCPUs, 0))
		sum.MemoryBytes = satAdd(sum.MemoryBytes, max(t.MemoryBytes, 0))
	}
	need := int64(1)
	if c.NanoCPUs > 0 {
		need = max(need, ceilDiv(sum.NanoCPUs, c.NanoCPUs))
	}
	if c.MemoryBytes > 0 {
		need = max(need, ceilDiv(sum.MemoryBytes, c.MemoryBytes))
	}
	return int(min(need, maxDesired)), sum
}

func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// ceilDiv divides a >= 0 by b > 0, rounding up.
func ceilDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 {
		q++
	}
	return q
}

// ceilSize rounds a proposed size up, forgiving float noise such as
// 10 × 0.7 / 0.7 = 10.000000000000002, and caps it at maxDesired.
func ceilSize(x float64) int {
	switch {
	case math.IsNaN(x) || x <= 0:
		return 0
	case x >= maxDesired:
		return maxDesired
	}
	return int(math.Ceil(x * (1 - 1e-12)))
}

// plural counts: "1 node", "2 nodes".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func isFinite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func fmtFloat(v float64) string { return fmt.Sprintf("%.4g", v) }

func fmtResources(r Resources) string {
	return fmt.Sprintf("%s CPUs and %d MiB", fmtFloat(float64(r.NanoCPUs)/1e9), r.MemoryBytes>>20)
}

// listIDs lists at most maxListed IDs, to keep a message one line.
func listIDs(ids []string) string {
	if len(ids) <= maxListed {
		return strings.Join(ids, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(ids[:maxListed], ", "), len(ids)-maxListed)
}
