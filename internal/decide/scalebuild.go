package decide

import (
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// The builder's thresholds.
const (
	// UnneededShare: a node whose running tasks reserve less than this share
	// of its CPU and of its memory is unneeded: its tasks fit elsewhere.
	UnneededShare = 0.5
	// SettleWindow: a Ready node that joined less than this long ago and
	// runs nothing yet is still being filled by the scheduler. Its free room
	// is capacity on its way, so the pending tasks that fit in it do not ask
	// for another node.
	SettleWindow = 10 * time.Second
)

// ScaleObservation is what the agent observed for one scaling decision, as
// plain values. BuildScaleSnapshot turns it into Scale's input; the agent
// reads the world (Swarm, the platform, Prometheus, alerts) before, and
// nothing while, the snapshot is built.
type ScaleObservation struct {
	// Now is the decision time; tests pass a fake clock here.
	Now   time.Time
	Pools []PoolObservation
	// UnneededSince is the map the previous build returned (node ID -> since
	// when the node has been unneeded); nil for the first.
	UnneededSince map[string]time.Time
}

// PoolObservation is one node pool under a scaling policy.
type PoolObservation struct {
	ID    string
	Rules policy.ScalingRules
	// PoolMinSize and PoolMaxSize are the pool's own bounds; the policy's
	// bounds apply within them (policy.ScalingRules.Bounds).
	PoolMinSize, PoolMaxSize int
	// LastScaleUp and LastScaleDown are when the pool last grew and shrank,
	// from the journal; zero when never.
	LastScaleUp, LastScaleDown time.Time
	// Nodes are the pool's Swarm nodes, in every state.
	Nodes []ObservedNode
	// Instances are the pool's platform instances, running or not.
	Instances []ObservedInstance
	// PendingTasks are the tasks Swarm cannot place, with whether their
	// constraints allow this pool; read only when the policy has the
	// pending_tasks check.
	PendingTasks []ObservedTask
	// Samples are the readings of the policy's Prometheus and alert checks,
	// in the policy's order. The builder puts the pending_tasks sample
	// before them.
	Samples []CheckSample
	// ClusterNodeCapacity is what a Ready node elsewhere in the cluster
	// offers; zero when none is known. A pool without a Ready node of its
	// own gets nodes like it (the same machine type on this platform).
	ClusterNodeCapacity Resources
	// ProvisionBackoff is the pool's record of provision timeouts, from the
	// journal (see provision.go).
	ProvisionBackoff ProvisionBackoff
	// Requested is the size the agent last asked a group for and has not
	// seen listed yet, from the journal; zero when none.
	Requested ScaleRequest
}

// ObservedNode is one Swarm node of a pool, as Swarm and the journal show it.
type ObservedNode struct {
	ID         string
	InstanceID string
	// State is Swarm's node state: NodeReady, NodeDown, NodeUnknown or
	// NodeDisconnected. Only Ready nodes count.
	State string
	// Role is the node's actual Swarm role, policy.RoleWorker or
	// policy.RoleManager: a node promoted by hand stays in its pool.
	Role string
	// Availability is "active", "pause" or "drain".
	Availability string
	// InFlight is true when a journaled action names the node: it is on its
	// way out, like a draining node.
	InFlight  bool
	CreatedAt time.Time
	// Capacity is what the node offers; Reserved is what the tasks assigned
	// to it reserve (running or still starting); RunningTasks counts those
	// running.
	Capacity     Resources
	Reserved     Resources
	RunningTasks int
}

// ObservedInstance is one platform instance of a pool.
type ObservedInstance struct {
	ID      string
	Running bool
	// LaunchedAt is when the platform launched the instance (EC2's launch
	// time, the local process's start); zero when unknown, and then the
	// instance never times out.
	LaunchedAt time.Time
	// InFlight is true when a journaled action names the instance (a
	// healing replacement, a removal): that action's own deadlines
	// (join_timeout) judge it, not provision_timeout.
	InFlight bool
}

// ObservedTask is a task Swarm cannot place for lack of resources.
type ObservedTask struct {
	Reservation Resources
	// MatchesPool is true when the task's placement constraints accept a
	// new node of the pool: its node labels, its engine labels and the
	// worker role. The agent computes it (swarm.Fits), since the decision
	// core does not import the Swarm client.
	MatchesPool bool
}

// BuildScaleSnapshot builds Scale's input from the observation, one pool at
// a time in its order (see BuildScalePool). It returns the snapshot and the
// new unneeded-since map, which holds exactly the nodes that are unneeded
// now: the agent keeps it for the next build.
func BuildScaleSnapshot(o ScaleObservation) (ScaleSnapshot, map[string]time.Time) {
	s := ScaleSnapshot{Now: o.Now, Pools: make([]ScalePool, 0, len(o.Pools))}
	next := make(map[string]time.Time, len(o.UnneededSince))
	for i := range o.Pools {
		s.Pools = append(s.Pools, buildScalePool(o.Now, &o.Pools[i], o.UnneededSince, next))
	}
	return s, next
}

// BuildScalePool builds one pool's scaling input from what was observed of
// it at now; unneededSince is the previous build's map. It returns the pool
// and the unneeded-since entries of its nodes; it modifies neither input.
// The rules:
//
//   - Bounds: the policy's within the pool's.
//   - Nodes: only Ready nodes whose instance runs (or that have no
//     instance label) count. A node draining, or named by an action
//     in flight, is Draining: on its way out. Its Role is its actual Swarm
//     role.
//   - Unneeded: a worker running no task, or whose tasks reserve less than
//     UnneededShare of its CPU and of its memory, is unneeded (see
//     Unneeded). Its UnneededSince is kept from the previous build, or is
//     now when it was needed then; a needed node loses it, so the clock
//     restarts when the node is unneeded again. A manager is never
//     unneeded: it is never removed, so it is no removable capacity.
//   - NodeCapacity: the first Ready node's that knows its CPUs, else
//     ClusterNodeCapacity.
//   - Current counts the running instances; Pending those of them without a
//     Ready node (starting, joining, or whose node is down).
//   - Provisioning (provision.go), when provision_timeout is set: a
//     running instance with no Swarm node at all, that no action in
//     flight names, launched provision_timeout or more ago, never
//     registered: it is TimedOut, counted neither in Current nor in
//     Pending, and the agent terminates it. A node that joined and went
//     down is healing's to judge, not a provision failure. The part of
//     Requested the platform does not list (fewer running instances than
//     asked for) is Unlisted, counted in Current and Pending, while the
//     request is younger than provision_timeout, and Abandoned after.
//     A timeout or an abandoned request records one more timeout in the
//     pool's ProvisionBackoff at now.
//   - pending_tasks, when the policy has it: a pending task counts when its
//     constraints match the pool (MatchesPool), its reservation fits one
//     node of the pool (in each dimension whose capacity is known), and no
//     settling node has room left for it. A settling node is a Ready
//     worker, neither draining nor in flight, running nothing, that joined
//     less than SettleWindow ago; its free room is its capacity less what is reserved
//     on it, and each task placed there takes its share, in task order.
//   - Checks: the pending_tasks sample first, then Samples.
func BuildScalePool(now time.Time, in PoolObservation, unneededSince map[string]time.Time) (ScalePool, map[string]time.Time) {
	unneeded := map[string]time.Time{}
	return buildScalePool(now, &in, unneededSince, unneeded), unneeded
}

// buildScalePool is BuildScalePool, adding the pool's unneeded nodes to
// unneeded.
func buildScalePool(now time.Time, in *PoolObservation, unneededSince, unneeded map[string]time.Time) ScalePool {
	p := ScalePool{ID: in.ID, Rules: in.Rules, LastScaleUp: in.LastScaleUp, LastScaleDown: in.LastScaleDown,
		Nodes: make([]ScaleNode, 0, len(in.Nodes))}
	p.MinSize, p.MaxSize = in.Rules.Bounds(in.PoolMinSize, in.PoolMaxSize)
	readyInstance := make(map[string]bool, len(in.Nodes))
	running := make(map[string]bool, len(in.Instances))
	for _, inst := range in.Instances {
		if inst.Running {
			running[inst.ID] = true
		}
	}
	var settling []Resources // free room of the settling nodes
	for i := range in.Nodes {
		o := &in.Nodes[i]
		if o.State != NodeReady {
			continue
		}
		if o.InstanceID != "" && !running[o.InstanceID] {
			// Its instance is terminated (a removal between termination
			// and node rm): Swarm has not noticed yet, but the node is
			// neither capacity nor on its way out of Current.
			continue
		}
		if o.InstanceID != "" {
			readyInstance[o.InstanceID] = true
		}
		n := ScaleNode{ID: o.ID, InstanceID: o.InstanceID, Role: o.Role, CreatedAt: o.CreatedAt,
			RunningTasks: o.RunningTasks, Reserved: o.Reserved, Capacity: o.Capacity,
			Draining: o.Availability == "drain" || o.InFlight}
		if isSettling(now, o) {
			settling = append(settling, Resources{NanoCPUs: o.Capacity.NanoCPUs - o.Reserved.NanoCPUs,
				MemoryBytes: o.Capacity.MemoryBytes - o.Reserved.MemoryBytes})
		}
		if n.Role != policy.RoleManager && Unneeded(n, UnneededShare) {
			since, ok := unneededSince[n.ID]
			if !ok || since.IsZero() {
				since = now
			}
			n.UnneededSince = since
			unneeded[n.ID] = since
		}
		p.Nodes = append(p.Nodes, n)
		if p.NodeCapacity.NanoCPUs == 0 {
			p.NodeCapacity = o.Capacity
		}
	}
	if p.NodeCapacity.NanoCPUs == 0 && in.ClusterNodeCapacity.NanoCPUs > 0 {
		p.NodeCapacity = in.ClusterNodeCapacity
	}
	registered := make(map[string]bool, len(in.Nodes))
	for i := range in.Nodes {
		if id := in.Nodes[i].InstanceID; id != "" {
			registered[id] = true
		}
	}
	timeout := in.Rules.ProvisionTimeout
	listed := 0
	for _, inst := range in.Instances {
		if !inst.Running {
			continue
		}
		listed++
		if timeout > 0 && !registered[inst.ID] && !inst.InFlight && !inst.LaunchedAt.IsZero() && now.Sub(inst.LaunchedAt) >= timeout {
			p.TimedOut = append(p.TimedOut, inst.ID)
			continue
		}
		p.Current++
		if !readyInstance[inst.ID] {
			p.Pending++
		}
	}
	if r := in.Requested; timeout > 0 && r.Size > listed {
		if now.Sub(r.At) < timeout {
			p.Unlisted = r.Size - listed
			p.Current += p.Unlisted
			p.Pending += p.Unlisted
		} else {
			p.Abandoned = r.Size - listed
		}
	}
	p.ProvisionBackoff = in.ProvisionBackoff
	if len(p.TimedOut) > 0 || p.Abandoned > 0 {
		p.ProvisionBackoff = p.ProvisionBackoff.Record(now)
	}
	if in.Rules.PendingTasks {
		sample := CheckSample{Name: CheckPendingTasks, Kind: CheckPendingTasks}
		for _, t := range in.PendingTasks {
			r := Resources{NanoCPUs: max(t.Reservation.NanoCPUs, 0), MemoryBytes: max(t.Reservation.MemoryBytes, 0)}
			if t.MatchesPool && fitsNode(r, p.NodeCapacity) && !placeOnSettling(settling, r) {
				sample.PendingTasks = append(sample.PendingTasks, PendingTask{NanoCPUs: r.NanoCPUs, MemoryBytes: r.MemoryBytes})
			}
		}
		p.Checks = append(p.Checks, sample)
	}
	p.Checks = append(p.Checks, in.Samples...)
	return p
}

// isSettling tells whether a node is still being filled by the scheduler: a
// Ready worker, not draining nor on its way out, running nothing, that
// joined less than SettleWindow before now. A manager is left out: the
// pending tasks are matched against the pool's new nodes, which are workers.
func isSettling(now time.Time, n *ObservedNode) bool {
	return n.State == NodeReady && n.Role != policy.RoleManager && n.Availability != "drain" && !n.InFlight &&
		n.RunningTasks == 0 && now.Sub(n.CreatedAt) < SettleWindow
}

// fitsNode tells whether a reservation fits one node of capacity c. A
// dimension of unknown capacity (zero) is not checked: the task counts.
func fitsNode(r, c Resources) bool {
	return (c.NanoCPUs <= 0 || r.NanoCPUs <= c.NanoCPUs) && (c.MemoryBytes <= 0 || r.MemoryBytes <= c.MemoryBytes)
}

// placeOnSettling reserves room for a pending task on the first settling
// node that has it; true when one had, so the task asks for no node.
func placeOnSettling(free []Resources, r Resources) bool {
	for i := range free {
		if free[i].NanoCPUs >= r.NanoCPUs && free[i].MemoryBytes >= r.MemoryBytes {
			free[i].NanoCPUs -= r.NanoCPUs
			free[i].MemoryBytes -= r.MemoryBytes
			return true
		}
	}
	return false
}

// ScaleInActions turns a scale-in decision into the journal's actions: one
// remove_node per node of d.RemoveNodes, in its order, keyed
// "scale_in/<pool>/node:<id>", draining the node first and shrinking the
// pool's desired size with the termination, its instance taken from p's
// nodes (empty when p does not list the node). A node p lists as a manager
// is left out whatever d says: managers are never scale-in candidates. Any
// other decision gives no action.
//
// The actions of one call form one batch. Action has no field for it: the
// agent stamps the batch's id on the journal entries it writes for them.
func ScaleInActions(d ScaleDecision, p ScalePool) []Action {
	if d.Direction != ScaleDown || len(d.RemoveNodes) == 0 {
		return nil
	}
	acts := make([]Action, 0, len(d.RemoveNodes))
	for _, id := range d.RemoveNodes {
		inst, manager := "", false
		for i := range p.Nodes {
			if n := &p.Nodes[i]; n.ID == id {
				inst, manager = n.InstanceID, n.Role == policy.RoleManager
				break
			}
		}
		if manager {
			continue
		}
		acts = append(acts, Action{Kind: RemoveNode, Key: ScaleInKeyPrefix + d.PoolID + "/node:" + id, PoolID: d.PoolID,
			Role: policy.RoleWorker, NodeID: id, InstanceID: inst, Drain: true, Shrink: true,
			Reason: "scale-in: " + d.Message})
	}
	return acts
}
