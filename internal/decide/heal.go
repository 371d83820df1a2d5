package decide

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// Heal decides which failed nodes and never-joined instances to replace, and
// which replacements in flight to conclude. It holds a pool, and says why,
// whenever a safety rule of DESIGN.md says so:
//
//   - a pool without an enabled healing policy is left alone ("disabled");
//   - a manager pool is left alone while the managers have no quorum or no
//     leader ("quorum"); at most one manager action is planned in the whole
//     plan; while a manager replacement is in flight the only manager action
//     is the one concluding it, and while a manager removal or termination
//     is in flight there is none;
//   - no manager action leaves fewer reachable managers than a quorum of
//     the Raft membership it makes, counting a joining manager as not
//     reachable until it is ("quorum", with the numbers). So a failed
//     manager the leader does not reach leaves first (a RemoveNode with
//     Refill) and its pool is refilled after; see managerOrder;
//   - when more than max_unhealthy_percent of the pool or of the cluster is
//     unhealthy (and more than one node), healing stops ("circuit_breaker");
//   - at most max_concurrent_replacements replacements run per pool
//     ("budget"), and none during join-failure backoff ("backoff");
//   - while scale-in removals are in flight in a pool, no replacement
//     starts there once those removals and the replacements in flight or
//     planned fill the pool's disruption budget, DisruptionBudget(running
//     instances, MaxDisruptedPercent) ("budget"): healing and scale-in
//     share one budget, and Scale counts healing's actions against it in
//     turn (ScalePool.InFlight). Without a scale-in in flight healing is
//     bounded by max_concurrent_replacements alone: a failed node is
//     disrupted already, and replacing it is what ends that;
//   - a replacement comes first and its subject goes only once it is Ready,
//     so the pool keeps its size: the new instance is one above it for as
//     long as the unit runs (failed managers excepted, above). A
//     replacement that adds capacity for good (the failed node's instance
//     is already gone, or a manager left first) is planned only while the
//     pool is below its desired size, which lies within [min, max];
//   - no two actions touch the same node or instance, no action repeats one
//     in flight, and the Raft leader is never touched.
//
// A failed node is one Swarm has called down, unknown or disconnected for at
// least unhealthy_after, and that is at least min_node_age old. A stuck
// instance is one that runs without joining the Swarm for join_timeout after
// it was created; it is replaced like a node, and terminated once its
// replacement is Ready.
//
// Heal is deterministic: the same snapshot gives the same plan.
func Heal(s Snapshot) Plan {
	h := newHealer(&s)
	h.plan.Reasons = make([]Reason, 0, len(s.Pools))
	for i := range s.Pools {
		p := &s.Pools[i]
		if h.poolPos[p.ID] != i {
			h.plan.Reasons = append(h.plan.Reasons, Reason{PoolID: p.ID, Code: ReasonInvalid,
				Message: "another pool of the snapshot has the same id; only the first is healed"})
			continue
		}
		h.plan.Reasons = append(h.plan.Reasons, h.healPool(p, i))
	}
	return h.plan
}

// healer holds the indexes of one evaluation. Every lookup is a map access
// or a slice index rather than a scan, and the two ID maps are the only
// per-node maps: Heal must stay fast on clusters of thousands of nodes.
type healer struct {
	s    *Snapshot
	plan Plan

	nodeIdx map[string]int32 // Snapshot.Nodes index by node ID
	instIdx map[string]int32 // Snapshot.Instances index by instance ID
	// A node and an instance are linked when either names the other and
	// both are in the snapshot; each side's own field wins a disagreement.
	nodeInst []int32 // per node: its instance, or -1
	instNode []int32 // per instance: its node, or -1

	poolPos   map[string]int // first position of each pool ID in Snapshot.Pools
	poolNodes [][]int32      // per pool position: its nodes
	poolInsts [][]int32      // per pool position: its instances

	// The journal.
	inFlightKeys map[string]struct{}
	poolReplaces map[string][]*Action // in-flight replace_node, by pool
	scaleIns     map[string]int       // in-flight scale-in removals, by pool
	concluding   map[string]struct{}  // replace keys whose concluding action is in flight

	// Nodes and instances an in-flight action already handles: they are
	// never judged as new failures.
	claimedNode []bool
	claimedInst []bool
	// Node and instance IDs an action of this plan touches.
	actedNodes     map[string]struct{}
	actedInstances map[string]struct{}

	unhealthy     int   // in the cluster
	poolUnhealthy []int // per pool position

	managerBusy      bool // a manager removal or termination is in flight
	managerReplacing bool // a manager replacement is in flight
	managerActed     bool // this plan holds a manager action
}

func newHealer(s *Snapshot) *healer {
	h := &healer{
		s:              s,
		nodeIdx:        make(map[string]int32, len(s.Nodes)),
		instIdx:        make(map[string]int32, len(s.Instances)),
		nodeInst:       make([]int32, len(s.Nodes)),
		instNode:       make([]int32, len(s.Instances)),
		poolPos:        make(map[string]int, len(s.Pools)),
		inFlightKeys:   make(map[string]struct{}, len(s.InFlight)),
		poolReplaces:   make(map[string][]*Action),
		scaleIns:       make(map[string]int),
		concluding:     make(map[string]struct{}),
		claimedNode:    make([]bool, len(s.Nodes)),
		claimedInst:    make([]bool, len(s.Instances)),
		actedNodes:     make(map[string]struct{}),
		actedInstances: make(map[string]struct{}),
		poolUnhealthy:  make([]int, len(s.Pools)),
	}
	for i := range s.Pools {
		if _, dup := h.poolPos[s.Pools[i].ID]; !dup {
			h.poolPos[s.Pools[i].ID] = i
		}
	}
	for i := range s.Nodes {
		h.nodeIdx[s.Nodes[i].ID] = int32(i)
		h.nodeInst[i] = -1
	}
	for j := range s.Instances {
		h.instIdx[s.Instances[j].ID] = int32(j)
		h.instNode[j] = -1
	}
	for j := range s.Instances {
		if i, ok := h.nodeIdx[s.Instances[j].NodeID]; ok && s.Instances[j].NodeID != "" {
			h.instNode[j] = i
			h.nodeInst[i] = int32(j)
		}
	}
	for i := range s.Nodes {
		id := s.Nodes[i].InstanceID
		if j := h.nodeInst[i]; j >= 0 && s.Instances[j].ID == id {
			continue // both sides agree, the usual case: no lookup needed
		}
		if j, ok := h.instIdx[id]; ok && id != "" {
			h.nodeInst[i] = j
			if h.instNode[j] < 0 {
				h.instNode[j] = int32(i)
			}
		}
	}
	h.poolNodes = h.group(len(s.Nodes), func(i int) string { return s.Nodes[i].PoolID })
	h.poolInsts = h.group(len(s.Instances), func(j int) string { return s.Instances[j].PoolID })

	replacements := make(map[int32]struct{}) // nodes of in-flight replacements
	for i := range s.InFlight {
		a := &s.InFlight[i]
		_, dup := h.inFlightKeys[a.Key]
		h.inFlightKeys[a.Key] = struct{}{}
		h.claim(a.NodeID, a.InstanceID)
		manager := a.Role == policy.RoleManager || h.roleOf(a.PoolID) == policy.RoleManager
		if IsScaleIn(*a) && !dup {
			h.scaleIns[a.PoolID]++
		}
		if a.Kind == ReplaceNode {
			// A key names one unit: a repeated journal entry must not get
			// a second conclusion or count twice against the budget.
			if !dup {
				h.poolReplaces[a.PoolID] = append(h.poolReplaces[a.PoolID], a)
			}
			// The replacement belongs to its unit: it is judged there, not
			// as a failure of its own.
			if j, ok := h.instIdx[a.Replacement]; ok && a.Replacement != "" {
				h.claimedInst[j] = true
				if n := h.instNode[j]; n >= 0 {
					h.claimedNode[n] = true
					replacements[n] = struct{}{}
				}
			}
			if manager {
				h.managerReplacing = true
			}
			continue
		}
		if a.Completes != "" {
			h.concluding[a.Completes] = struct{}{}
		}
		if manager {
			h.managerBusy = true
		}
	}
	// The breaker counts unhealthy nodes, but not the replacements healing
	// itself started: one still joining is no sign of a partition, and one
	// that failed is undone by its unit.
	for i := range s.Nodes {
		n := &s.Nodes[i]
		if _, ok := replacements[int32(i)]; ok || !unhealthy(n) {
			continue
		}
		h.unhealthy++
		if pos, ok := h.poolPos[n.PoolID]; ok {
			h.poolUnhealthy[pos]++
		}
	}
	return h
}

// group lists the indexes 0..n-1 by the position of their pool, in order,
// in one allocation; members of unknown pools are left out.
func (h *healer) group(n int, poolOf func(int) string) [][]int32 {
	pos := make([]int32, n)
	counts := make([]int, len(h.s.Pools))
	// Members usually come pool by pool: reuse the last lookup.
	lastID, last := "", int32(-1)
	for i := range n {
		id := poolOf(i)
		if id != lastID || i == 0 {
			lastID, last = id, -1
			if p, ok := h.poolPos[id]; ok {
				last = int32(p)
			}
		}
		pos[i] = last
		if last >= 0 {
			counts[last]++
		}
	}
	flat := make([]int32, 0, n)
	groups := make([][]int32, len(h.s.Pools))
	for p, c := range counts {
		groups[p] = flat[len(flat) : len(flat) : len(flat)+c]
		flat = flat[:len(flat)+c]
	}
	for i, p := range pos {
		if p >= 0 {
			groups[p] = append(groups[p], int32(i))
		}
	}
	return groups
}

func (h *healer) roleOf(poolID string) string {
	if pos, ok := h.poolPos[poolID]; ok {
		return h.s.Pools[pos].Role
	}
	return ""
}

func (h *healer) claim(nodeID, instanceID string) {
	if i, ok := h.nodeIdx[nodeID]; ok && nodeID != "" {
		h.claimedNode[i] = true
	}
	if j, ok := h.instIdx[instanceID]; ok && instanceID != "" {
		h.claimedInst[j] = true
	}
}

func (h *healer) node(id string) *Node {
	if i, ok := h.nodeIdx[id]; ok && id != "" {
		return &h.s.Nodes[i]
	}
	return nil
}

func (h *healer) instance(id string) *Instance {
	if j, ok := h.instIdx[id]; ok && id != "" {
		return &h.s.Instances[j]
	}
	return nil
}

// nodeForInstance finds the node an instance joined as.
func (h *healer) nodeForInstance(instanceID string) *Node {
	if j, ok := h.instIdx[instanceID]; ok && instanceID != "" && h.instNode[j] >= 0 {
		return &h.s.Nodes[h.instNode[j]]
	}
	return nil
}

// instanceForNode finds the instance behind a node.
func (h *healer) instanceForNode(nodeID string) *Instance {
	if i, ok := h.nodeIdx[nodeID]; ok && nodeID != "" && h.nodeInst[i] >= 0 {
		return &h.s.Instances[h.nodeInst[i]]
	}
	return nil
}

// subjectInstance finds the instance an action's subject runs on, if known.
func (h *healer) subjectInstance(a *Action) *Instance {
	if in := h.instance(a.InstanceID); in != nil {
		return in
	}
	return h.instanceForNode(a.NodeID)
}

// unhealthy counts toward the circuit breaker: any node Swarm does not call
// ready, and any manager the leader cannot reach.
func unhealthy(n *Node) bool {
	return n.State != NodeReady || n.ManagerReachability == Unreachable
}

// tripped is the circuit breaker: more than pct percent of all are
// unhealthy. One unhealthy node never trips it, or a pool of fewer than
// 100/pct nodes (three managers, at the default 20%) could never be healed.
func tripped(bad, all, pct int) bool {
	return bad > 1 && bad*100 > pct*all
}

func (h *healer) healPool(p *PoolState, pos int) Reason {
	switch {
	case !p.HasPolicy:
		return Reason{PoolID: p.ID, Code: ReasonDisabled, Message: "no healing policy targets this pool"}
	case !p.Rules.Enabled:
		return Reason{PoolID: p.ID, Code: ReasonDisabled, Message: "the healing policy is disabled"}
	}
	if msg := invalidPool(p); msg != "" {
		return Reason{PoolID: p.ID, Code: ReasonInvalid, Message: msg}
	}
	if p.Role == policy.RoleManager && !h.s.Quorum.Held() {
		q := h.s.Quorum
		msg := fmt.Sprintf("%d of %d managers are reachable, a quorum needs %d: no manager changes until it is back", q.Reachable, q.Managers, q.Managers/2+1)
		if !q.LeaderPresent {
			msg = "the managers have no leader: no manager changes until one is elected"
		}
		return Reason{PoolID: p.ID, Code: ReasonQuorum, Message: msg}
	}
	pct := p.Rules.MaxUnhealthyPercent
	if bad, all := h.poolUnhealthy[pos], len(h.poolNodes[pos]); tripped(bad, all, pct) {
		return Reason{PoolID: p.ID, Code: ReasonCircuitBreaker, Message: fmt.Sprintf(
			"%d of %d nodes of the pool are unhealthy, more than max_unhealthy_percent (%d%%): healing stops, as this looks like a partition or a broken monitor rather than dead nodes",
			bad, all, pct)}
	}
	if tripped(h.unhealthy, len(h.s.Nodes), pct) {
		return Reason{PoolID: p.ID, Code: ReasonCircuitBreaker, Message: fmt.Sprintf(
			"%d of %d nodes of the cluster are unhealthy, more than max_unhealthy_percent (%d%%): healing stops, as this looks like a partition or a broken monitor rather than dead nodes",
			h.unhealthy, len(h.s.Nodes), pct)}
	}
	r := h.newPoolRun(p, pos)
	r.continueReplacements()
	r.startReplacements()
	return r.reason()
}

// invalidPool refuses pools whose role, bounds or rules would make any
// decision meaningless; the provider validates them, so this only catches a
// broken store or a bug, and then holding is the safe answer.
func invalidPool(p *PoolState) string {
	switch {
	case p.Role != policy.RoleWorker && p.Role != policy.RoleManager:
		return fmt.Sprintf("role %q is neither %q nor %q", p.Role, policy.RoleWorker, policy.RoleManager)
	case p.MinSize < 0 || p.MaxSize < p.MinSize:
		return fmt.Sprintf("bounds [%d, %d] are not a size range", p.MinSize, p.MaxSize)
	case p.Rules.JoinTimeout <= 0 || p.Rules.UnhealthyAfter < 0 || p.Rules.MinNodeAge < 0 ||
		p.Rules.MaxUnhealthyPercent < 1 || p.Rules.MaxConcurrentReplacements < 1:
		return fmt.Sprintf("healing rules %+v were not validated", p.Rules)
	}
	return ""
}

// holdKind orders the reasons a pool can hold for, most telling first: the
// one shown when a pool does nothing.
type holdKind int

const (
	holdQuorum holdKind = iota
	holdBackoff
	holdBudget
	holdInFlight
	holdMinNodeAge
	holdWaiting
	numHolds
)

var holdCodes = [numHolds]ReasonCode{ReasonQuorum, ReasonBackoff, ReasonBudget, ReasonInFlight, ReasonMinNodeAge, ReasonWaiting}

type hold struct {
	n     int
	first string
}

// poolRun is the decision for one pool.
type poolRun struct {
	h       *healer
	p       *PoolState
	pos     int // in Snapshot.Pools
	now     time.Time
	manager bool

	// eff is the pool's size as healing sees it: running instances, less
	// the temporary extra instance of each unit in progress. A replacement
	// that adds capacity for good may bring it up to target, never beyond.
	eff, target int
	// replacing counts replacements in flight and planned, for the budget.
	replacing int
	// running counts the pool's running instances: the size the
	// disruption budget is a share of.
	running int

	did   []string
	holds [numHolds]hold
}

func (h *healer) newPoolRun(p *PoolState, pos int) *poolRun {
	r := &poolRun{h: h, p: p, pos: pos, now: h.s.Now, manager: p.Role == policy.RoleManager,
		target: min(max(p.DesiredSize, p.MinSize), p.MaxSize)}
	for _, j := range h.poolInsts[pos] {
		if h.s.Instances[j].Running {
			r.eff++
		}
	}
	r.running = r.eff
	for _, a := range h.poolReplaces[p.ID] {
		rep := h.instance(a.Replacement)
		subj := h.subjectInstance(a)
		if a.Replacement != "" && rep != nil && rep.Running && rep.PoolID == p.ID &&
			subj != nil && subj.Running && subj.PoolID == p.ID && subj != rep {
			r.eff--
		}
	}
	return r
}

func (r *poolRun) hold(k holdKind, format string, args ...any) {
	if r.holds[k].n == 0 {
		r.holds[k].first = fmt.Sprintf(format, args...)
	}
	r.holds[k].n++
}

// continueReplacements moves each unit in flight on: conclude it when its
// replacement is Ready, undo the replacement when that failed, else wait.
func (r *poolRun) continueReplacements() {
	for _, a := range r.h.poolReplaces[r.p.ID] {
		r.replacing++
		if _, ok := r.h.concluding[a.Key]; ok {
			r.hold(holdInFlight, "the replacement of %s is being concluded", subjectName(a))
			continue
		}
		if c, ok := r.conclusion(a); ok {
			r.emit(c, false)
		}
	}
}

// conclusion decides the next step of an in-flight unit; false means wait
// (the hold is recorded).
func (r *poolRun) conclusion(a *Action) (Action, bool) {
	h := r.h
	subj := subjectName(a)
	if a.NodeID == "" && a.InstanceID == "" {
		r.hold(holdInFlight, "in-flight replacement %s names no node or instance", a.Key)
		return Action{}, false
	}
	if a.Replacement == "" {
		r.hold(holdInFlight, "waiting for the journal to record the instance replacing %s", subj)
		return Action{}, false
	}
	rep := h.instance(a.Replacement)
	repNode := h.nodeForInstance(a.Replacement)
	switch {
	case repNode != nil && r.ready(repNode):
		return r.concludeSuccess(a, repNode), true
	case repNode != nil:
		if r.judge(repNode) != failed {
			r.hold(holdInFlight, "replacement node %s for %s is %s, not ready yet", repNode.ID, subj, stateName(repNode))
			return Action{}, false
		}
		return Action{
			Kind: RemoveNode, NodeID: repNode.ID, InstanceID: a.Replacement, Completes: a.Key,
			Outcome: OutcomeReplacementFailed, Drain: repNode.RunningTasks > 0, Demote: r.manager,
			Reason: fmt.Sprintf("replacement node %s for %s has been %s for %s: remove it; %s will be replaced again",
				repNode.ID, subj, repNode.State, r.since(repNode.StateSince), subj),
		}, true
	case rep == nil:
		r.hold(holdInFlight, "waiting for replacement instance %s of %s to appear", a.Replacement, subj)
		return Action{}, false
	case !rep.Running:
		return Action{
			Kind: TerminateInstance, InstanceID: rep.ID, Completes: a.Key, Outcome: OutcomeJoinFailed,
			Reason: fmt.Sprintf("replacement instance %s for %s is gone before joining: clean it up; %s will be replaced again after backoff",
				rep.ID, subj, subj),
		}, true
	case r.joinTimedOut(rep):
		return Action{
			Kind: TerminateInstance, InstanceID: rep.ID, Completes: a.Key, Outcome: OutcomeJoinFailed,
			Reason: fmt.Sprintf("replacement instance %s for %s has not joined %s after it was created (join_timeout %s): terminate it; %s will be replaced again after backoff",
				rep.ID, subj, r.since(rep.CreatedAt), r.p.Rules.JoinTimeout, subj),
		}, true
	default:
		r.hold(holdInFlight, "replacement instance %s for %s is joining (%s of join_timeout %s)",
			rep.ID, subj, r.since(rep.CreatedAt), r.p.Rules.JoinTimeout)
		return Action{}, false
	}
}

// concludeSuccess removes the subject of a unit whose replacement is Ready.
// The subject may be gone already (removed by hand, or its instance
// vanished); the concluding action is still planned, as removal is
// idempotent and it is what finishes the unit in the journal.
func (r *poolRun) concludeSuccess(a *Action, repNode *Node) Action {
	h := r.h
	verb := "remove"
	if r.manager {
		verb = "demote and remove"
	}
	if a.NodeID != "" {
		c := Action{Kind: RemoveNode, NodeID: a.NodeID, InstanceID: a.InstanceID, Completes: a.Key,
			Outcome: OutcomeReplaced, Demote: r.manager,
			Reason: fmt.Sprintf("replacement node %s is ready: %s node %s", repNode.ID, verb, a.NodeID)}
		if n := h.node(a.NodeID); n != nil {
			c.Drain = n.RunningTasks > 0
			if in := h.instanceForNode(n.ID); in != nil {
				c.InstanceID = in.ID
			}
		}
		return c
	}
	// The stuck instance may have joined late: then it is a node to remove.
	if n := h.nodeForInstance(a.InstanceID); n != nil {
		return Action{Kind: RemoveNode, NodeID: n.ID, InstanceID: a.InstanceID, Completes: a.Key,
			Outcome: OutcomeReplaced, Drain: n.RunningTasks > 0, Demote: r.manager,
			Reason: fmt.Sprintf("replacement node %s is ready: %s node %s, which joined late on instance %s", repNode.ID, verb, n.ID, a.InstanceID)}
	}
	what := "which never joined"
	if in := h.instance(a.InstanceID); in != nil && !in.Running {
		what = "which no longer runs"
	}
	return Action{Kind: TerminateInstance, InstanceID: a.InstanceID, Completes: a.Key, Outcome: OutcomeReplaced,
		Reason: fmt.Sprintf("replacement node %s is ready: terminate instance %s, %s", repNode.ID, a.InstanceID, what)}
}

// startReplacements starts units for new failures, oldest failure first,
// then for stuck instances, then, in a manager pool, refills the places of
// managers that left first.
func (r *poolRun) startReplacements() {
	h := r.h
	var nodes []*Node
	for _, i := range h.poolNodes[r.pos] {
		if h.claimedNode[i] || (h.nodeInst[i] >= 0 && h.claimedInst[h.nodeInst[i]]) {
			continue
		}
		n := &h.s.Nodes[i]
		switch r.judge(n) {
		case failed:
			nodes = append(nodes, n)
		case waiting:
			if n.StateSince.IsZero() {
				r.hold(holdWaiting, "node %s is %s, for how long is not observed yet", n.ID, n.State)
				break
			}
			r.hold(holdWaiting, "node %s has been %s for %s, less than unhealthy_after (%s)",
				n.ID, n.State, r.since(n.StateSince), r.p.Rules.UnhealthyAfter)
		case young:
			r.hold(holdMinNodeAge, "node %s is %s but younger than min_node_age (%s)", n.ID, n.State, r.p.Rules.MinNodeAge)
		case strange:
			r.hold(holdWaiting, "node %s is in state %q, which healing does not judge", n.ID, n.State)
		}
	}
	var stuck []*Instance
	for _, j := range h.poolInsts[r.pos] {
		if in := &h.s.Instances[j]; in.Running && !h.claimedInst[j] && h.instNode[j] < 0 && r.joinTimedOut(in) {
			stuck = append(stuck, in)
		}
	}
	// A manager that left before its replacement (Refill) left its
	// instance behind on a platform whose groups do not refill themselves:
	// listed, not running, with no node. Its pool is refilled through it.
	// A record younger than unhealthy_after is not judged: it may be an
	// instance being launched, whose process has not started yet.
	var left []*Instance
	if r.manager && !h.s.InstancesAuthoritative {
		for _, j := range h.poolInsts[r.pos] {
			in := &h.s.Instances[j]
			if !in.Running && !h.claimedInst[j] && h.instNode[j] < 0 &&
				!in.CreatedAt.IsZero() && r.now.Sub(in.CreatedAt) >= r.p.Rules.UnhealthyAfter {
				left = append(left, in)
			}
		}
	}
	slices.SortFunc(nodes, func(a, b *Node) int {
		return cmp.Or(a.StateSince.Compare(b.StateSince), strings.Compare(a.ID, b.ID))
	})
	byAge := func(a, b *Instance) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	}
	slices.SortFunc(stuck, byAge)
	slices.SortFunc(left, byAge)

	for _, n := range nodes {
		in := h.instanceForNode(n.ID)
		instanceID := n.InstanceID
		if in != nil {
			instanceID = in.ID
		}
		// The node's instance still counts toward the pool's size: the
		// replacement is one above it until the node is removed.
		neutral := in != nil && in.Running && in.PoolID == r.p.ID
		if !neutral && r.eff >= r.target {
			// The instance is gone and the pool is at its desired size
			// anyway (the platform replaced it, or the pool shrank):
			// only the dead Swarm node is left to clean up.
			r.emit(Action{Kind: RemoveNode, NodeID: n.ID, InstanceID: instanceID,
				Drain: n.RunningTasks > 0, Demote: r.manager,
				Reason: fmt.Sprintf("node %s has been %s for %s and its instance is gone, while the pool already has its desired %d instances: remove the node",
					n.ID, n.State, r.since(n.StateSince), r.target)}, true)
			continue
		}
		if r.manager && r.removeFirst(n, instanceID) {
			continue
		}
		if !r.mayReplace() {
			continue
		}
		if r.emit(Action{Kind: ReplaceNode, NodeID: n.ID, InstanceID: instanceID,
			Reason: fmt.Sprintf("node %s has been %s for %s (unhealthy_after %s): start a replacement, then remove the node once it is ready",
				n.ID, n.State, r.since(n.StateSince), r.p.Rules.UnhealthyAfter)}, true) {
			r.replacing++
			if !neutral {
				r.eff++
			}
		}
	}
	for _, in := range stuck {
		if !r.mayReplace() {
			continue
		}
		if r.emit(Action{Kind: ReplaceNode, InstanceID: in.ID,
			Reason: fmt.Sprintf("instance %s has not joined the swarm %s after it was created (join_timeout %s): start a replacement, then terminate it once the replacement is ready",
				in.ID, r.since(in.CreatedAt), r.p.Rules.JoinTimeout)}, true) {
			r.replacing++
		}
	}
	for _, in := range left {
		if r.eff >= r.target || !r.mayReplace() {
			continue
		}
		if r.emit(Action{Kind: ReplaceNode, InstanceID: in.ID,
			Reason: fmt.Sprintf("the pool has %d of its desired %d instances and instance %s no longer runs nor has a node (its manager left first): start a replacement, then terminate the instance once the replacement is ready",
				r.eff, r.target, in.ID)}, true) {
			r.replacing++
			r.eff++
		}
	}
}

// removeFirst plans the departure of failed manager n ahead of its
// replacement when managerOrder says so, or holds when no order keeps
// quorum; false leaves n to the usual replacement, which joins first.
func (r *poolRun) removeFirst(n *Node, instanceID string) bool {
	if n.Leader {
		// A leader that Swarm calls failed is a contradiction in the
		// snapshot; the leader is never replaced or removed.
		r.hold(holdInFlight, "node %s leads the Raft group: it is never replaced or removed", n.ID)
		return true
	}
	q := r.h.s.Quorum
	member, _ := raftCounts(n)
	switch order, why := managerOrder(q, n); order {
	case joinFirst:
		return false
	case neitherOrder:
		r.hold(holdQuorum, "%s", why)
		return true
	}
	a := Action{Kind: RemoveNode, NodeID: n.ID, Drain: n.RunningTasks > 0, Demote: true, Refill: true,
		Reason: fmt.Sprintf("node %s has been %s for %s and the leader does not reach it: demote and remove it before its replacement joins, then refill the pool (%d members, %d reachable: the %d left after it need %d, while %d with a joining replacement would need %d)",
			n.ID, n.State, r.since(n.StateSince), q.Managers, q.Reachable, q.Managers-member, quorumOf(q.Managers-member), q.Managers+1, quorumOf(q.Managers+1))}
	if r.h.s.InstancesAuthoritative {
		// The group launches the replacement once the instance is
		// terminated; elsewhere the instance stays for the refill.
		a.InstanceID = instanceID
	}
	r.emit(a, true)
	return true
}

// order is the sequence in which a failed manager and its replacement
// change the Raft membership.
type order int

const (
	joinFirst    order = iota // the replacement joins, then the subject leaves
	removeFirst               // the subject leaves, then the pool is refilled
	neitherOrder              // no order keeps quorum: hold
)

// managerOrder decides in which order failed manager n and its replacement
// change the Raft group, so that the managers keep a quorum after every
// step, even if the step after it never comes.
//
// Let N be the Raft members (Quorum.Managers, reachable or not), L the
// members the leader reaches (Quorum.Reachable) and q(n) = ⌊n/2⌋+1 the
// votes a group of n members needs. Heal gets here only while quorum
// holds: L ≥ q(N).
//
// Join first. The replacement is a member (N+1) as soon as it joins, but
// it votes only once it has caught up with the log, and it may never (it
// crashes, it cannot reach the others): until then only L are live. Safe
// only if L ≥ q(N+1).
//
// Remove first (demote, then node rm). Swarm removes a member only if the
// reachable members other than it are a quorum of the smaller group
// (swarmkit's raft CanRemoveMember: reachable-after ≥ ⌊(N-1)/2⌋+1). A
// member the leader does not reach is not among the L, so: safe if
// L ≥ q(N-1), which always holds when quorum does, as q(N-1) ≤ q(N). The
// refill that follows is a join into N-1 members: safe if L ≥ q(N), the
// quorum that holds now. Removing a member the leader reaches costs its
// vote: safe if L-1 ≥ q(N-1).
//
// Since q(N+1) = q(N-1)+1 for every N, the margin (how many more live
// members may fail) is always one less while a replacement joins first,
// L-q(N+1), than after an unreached member left first, L-q(N-1), and the
// refill's join has the margin of today, L-q(N):
//
//	N  L   join first         remove first, then refill
//	3  2   needs 3: unsafe    needs 2, margin 0; refill needs 2, margin 0
//	5  4   needs 4, margin 0  needs 3, margin 1; refill needs 3, margin 1
//	5  3   needs 4: unsafe    needs 3, margin 0; refill needs 3, margin 0
//	7  6   needs 5, margin 1  needs 4, margin 2; refill needs 4, margin 2
//	7  4   needs 5: unsafe    needs 4, margin 0; refill needs 4, margin 0
//	3  1   no quorum (needs 2): Heal holds before it gets here; 2 of 3
//	       dead is the same
//	2  2   (a group of 3 after a removal) refill needs 2: safe
//	1  1   the one member leads: never touched; a join into it needs 2
//
// So a failed manager the leader does not reach always leaves first, 5
// members with 1 dead included: join first would be safe there, but with
// no margin left while the newcomer catches up. A member that is
// unreachable but maybe alive (partitioned, hung) is handled the same: it
// is not among the L either way, and if it comes back during a join-first
// window the margin is L+1-q(N+1) = L-q(N-1), only a tie with removing it
// first; once removed it cannot vote again (Swarm refuses a removed
// member's messages). A failed manager the leader still reaches (Swarm
// calls it down, Raft does not) is a live vote: both orders need
// L ≥ q(N+1) then (L-1 ≥ q(N-1) is the same condition), and it joins
// first, keeping the vote until its replacement has one. When that does
// not hold either, neither order is safe and Heal holds. A failed node of
// a manager pool that is no Raft member (demoted already) counts in
// neither N nor L: it leaves first, as it costs nothing.
func managerOrder(q Quorum, n *Node) (order, string) {
	member, live := raftCounts(n)
	switch {
	case live == 0 && removeSafe(q, n):
		return removeFirst, ""
	case live == 1 && joinSafe(q):
		return joinFirst, ""
	}
	return neitherOrder, fmt.Sprintf("would violate quorum: %d members, %d reachable; replacing node %s, which the leader reaches, needs %d reachable, whether its replacement joins first (%d members) or it leaves first (%d reachable of %d members after)",
		q.Managers, q.Reachable, n.ID, quorumOf(q.Managers+1), q.Managers+1, q.Reachable-live, q.Managers-member)
}

// joinSafe: a manager that joins, and never catches up, leaves a quorum of
// the group it makes.
func joinSafe(q Quorum) bool {
	return q.Reachable >= quorumOf(q.Managers+1)
}

// removeSafe: the reachable managers other than n are a quorum of the
// group without n (swarmkit's CanRemoveMember).
func removeSafe(q Quorum, n *Node) bool {
	member, live := raftCounts(n)
	return q.Reachable-live >= quorumOf(q.Managers-member)
}

// raftCounts says whether n counts in Quorum.Managers (a manager) and in
// Quorum.Reachable (a manager the leader reaches), as 0 or 1.
func raftCounts(n *Node) (member, live int) {
	if n.Role != policy.RoleManager {
		return 0, 0
	}
	if n.ManagerReachability == Reachable {
		return 1, 1
	}
	return 1, 0
}

// mayReplace applies the limits on starting a replacement: one manager
// change at a time, a quorum that survives the manager's join, backoff
// after join failures and the pool's concurrency budget.
func (r *poolRun) mayReplace() bool {
	if r.manager && (r.h.managerBusy || r.h.managerReplacing) {
		r.hold(holdInFlight, "a manager change is in flight: one at a time")
		return false
	}
	if q := r.h.s.Quorum; r.manager && !joinSafe(q) {
		r.hold(holdQuorum, "would violate quorum: %d members, %d reachable; a manager joining makes %d members, which need %d reachable should it never catch up",
			q.Managers, q.Reachable, q.Managers+1, quorumOf(q.Managers+1))
		return false
	}
	if until := r.h.s.Backoff[r.p.ID].until(); r.now.Before(until) {
		b := r.h.s.Backoff[r.p.ID]
		r.hold(holdBackoff, "%d failed replacements in a row: no new one before %s (in %s)",
			b.Failures, until.UTC().Format(time.RFC3339), until.Sub(r.now).Round(time.Second))
		return false
	}
	if limit := r.p.Rules.MaxConcurrentReplacements; r.replacing >= limit {
		r.hold(holdBudget, "%d replacements in flight or planned, max_concurrent_replacements is %d", r.replacing, limit)
		return false
	}
	if n := r.h.scaleIns[r.p.ID]; n > 0 {
		if budget := DisruptionBudget(r.running, r.p.MaxDisruptedPercent); n+r.replacing >= budget {
			r.hold(holdBudget, "%s in flight and %s in flight or planned fill the pool's disruption budget of %d (of %d running instances): healing waits for the scale-in",
				plural(n, "scale-in removal"), plural(r.replacing, "replacement"), budget, r.running)
			return false
		}
	}
	return true
}

// emit adds an action to the plan unless a plan-wide rule forbids it; it
// records the hold and returns false then. change is true for an action
// that starts a manager change rather than concluding one in flight.
func (r *poolRun) emit(a Action, change bool) bool {
	h := r.h
	a.PoolID = r.p.ID
	a.Role = r.p.Role
	a.Key = actionKey(a.Kind, a.PoolID, a.NodeID, a.InstanceID)
	if _, ok := h.inFlightKeys[a.Key]; ok {
		r.hold(holdInFlight, "%s is already in flight", a.Key)
		return false
	}
	if r.touched(a.NodeID, a.InstanceID) {
		r.hold(holdInFlight, "another action of this plan already handles %s", subjectName(&a))
		return false
	}
	// A leader that Swarm calls failed is a contradiction in the snapshot;
	// the leader is never replaced or removed on the strength of it.
	if n := h.node(a.NodeID); n != nil && n.Leader {
		r.hold(holdInFlight, "node %s leads the Raft group: it is never replaced or removed", n.ID)
		return false
	}
	if r.manager {
		switch {
		case h.managerBusy:
			r.hold(holdInFlight, "a manager change is in flight: one at a time")
			return false
		case change && h.managerReplacing:
			r.hold(holdInFlight, "a manager replacement is in flight: one at a time")
			return false
		case h.managerActed:
			r.hold(holdBudget, "this plan already holds a manager change: one at a time")
			return false
		}
		if n := h.node(a.NodeID); a.Kind == RemoveNode && n != nil && !removeSafe(h.s.Quorum, n) {
			q := h.s.Quorum
			member, live := raftCounts(n)
			r.hold(holdQuorum, "would violate quorum: %d members, %d reachable; removing node %s leaves %d reachable of %d members, which need %d",
				q.Managers, q.Reachable, n.ID, q.Reachable-live, q.Managers-member, quorumOf(q.Managers-member))
			return false
		}
		h.managerActed = true
	}
	if a.NodeID != "" {
		h.actedNodes[a.NodeID] = struct{}{}
	}
	if a.InstanceID != "" {
		h.actedInstances[a.InstanceID] = struct{}{}
	}
	h.plan.Actions = append(h.plan.Actions, a)
	r.did = append(r.did, a.Reason)
	return true
}

func (r *poolRun) touched(nodeID, instanceID string) bool {
	if _, ok := r.h.actedNodes[nodeID]; ok && nodeID != "" {
		return true
	}
	_, ok := r.h.actedInstances[instanceID]
	return ok && instanceID != ""
}

// maxListed bounds how many actions a Reason lists, to keep it one line.
const maxListed = 3

func (r *poolRun) reason() Reason {
	top := -1
	for k := range numHolds {
		if r.holds[k].n > 0 {
			top = int(k)
			break
		}
	}
	if len(r.did) == 0 {
		if top < 0 {
			return Reason{PoolID: r.p.ID, Code: ReasonHealthy,
				Message: fmt.Sprintf("no failed node among %d nodes", len(r.h.poolNodes[r.pos]))}
		}
		return Reason{PoolID: r.p.ID, Code: holdCodes[top], Message: r.holdMessage(top)}
	}
	var b strings.Builder
	for i, s := range r.did {
		if i == maxListed {
			fmt.Fprintf(&b, "; and %d more", len(r.did)-maxListed)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(s)
	}
	if top >= 0 {
		b.WriteString("; holding: ")
		b.WriteString(r.holdMessage(top))
	}
	return Reason{PoolID: r.p.ID, Code: ReasonHealing, Message: b.String()}
}

func (r *poolRun) holdMessage(k int) string {
	h := r.holds[k]
	if h.n > 1 {
		return fmt.Sprintf("%s (and %d more like it)", h.first, h.n-1)
	}
	return h.first
}

// health is the verdict on one node.
type health int

const (
	healthy health = iota
	waiting        // unhealthy, not for unhealthy_after yet
	young          // failed, but younger than min_node_age
	failed
	strange // a state healing does not know
)

func (r *poolRun) judge(n *Node) health {
	switch n.State {
	case NodeReady:
		return healthy
	case NodeDown, NodeUnknown, NodeDisconnected:
	default:
		return strange
	}
	if r.h.s.InstancesAuthoritative && n.InstanceID != "" {
		if in := r.h.instanceForNode(n.ID); in == nil || !in.Running {
			return failed // Swarm and the cloud agree: the instance is gone
		}
	}
	// An unknown StateSince means the agent has not watched the node long
	// enough to tell for how long it has been down.
	if n.StateSince.IsZero() || r.now.Sub(n.StateSince) < r.p.Rules.UnhealthyAfter {
		return waiting
	}
	if r.p.Rules.MinNodeAge > 0 {
		born := n.CreatedAt
		if born.IsZero() {
			if in := r.h.instanceForNode(n.ID); in != nil {
				born = in.CreatedAt
			}
		}
		if born.IsZero() || r.now.Sub(born) < r.p.Rules.MinNodeAge {
			return young
		}
	}
	return failed
}

// ready tells whether a replacement node can take over: Swarm calls it ready
// and, in a manager pool, it is a manager the leader reaches.
func (r *poolRun) ready(n *Node) bool {
	if n.State != NodeReady {
		return false
	}
	return !r.manager || (n.Role == policy.RoleManager && n.ManagerReachability == Reachable)
}

// joinTimedOut: an instance that has had join_timeout to join and did not.
func (r *poolRun) joinTimedOut(in *Instance) bool {
	return !in.CreatedAt.IsZero() && r.now.Sub(in.CreatedAt) >= r.p.Rules.JoinTimeout
}

// since formats how long ago t was, to the second.
func (r *poolRun) since(t time.Time) time.Duration {
	return r.now.Sub(t).Round(time.Second)
}

func stateName(n *Node) string {
	if n.State == NodeReady && n.ManagerReachability != Reachable {
		return "ready but not a reachable manager"
	}
	return n.State
}

func subjectName(a *Action) string {
	if a.NodeID != "" {
		return "node " + a.NodeID
	}
	return "instance " + a.InstanceID
}

// actionKey is the stable key of an action: kind, pool and subject. Node and
// instance IDs live in different namespaces, so the subject says which.
func actionKey(kind ActionKind, poolID, nodeID, instanceID string) string {
	if nodeID != "" {
		return string(kind) + "/" + poolID + "/node:" + nodeID
	}
	return string(kind) + "/" + poolID + "/instance:" + instanceID
}
