package decide

import (
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// Swarm node states, lower-case as the Engine API reports them.
const (
	NodeReady        = "ready"
	NodeDown         = "down"
	NodeUnknown      = "unknown"
	NodeDisconnected = "disconnected"
)

// Manager reachability as the Engine API reports it; empty for workers.
const (
	Reachable   = "reachable"
	Unreachable = "unreachable"
)

// Snapshot is everything the agent observed for one decision. Heal reads it
// and never modifies it.
type Snapshot struct {
	// Now is the decision time; tests pass a fake clock here.
	Now    time.Time
	Quorum Quorum
	// Pools must have unique IDs; a repeated ID is reported as invalid.
	Pools     []PoolState
	Instances []Instance
	Nodes     []Node
	// InFlight holds the journal's actions that started and did not finish.
	InFlight []Action
	// Backoff holds the join-failure record of each pool, by pool ID.
	Backoff map[string]Backoff
	// InstancesAuthoritative says the platform's instance list is the
	// cloud's own record (an Auto Scaling group): a Down node whose
	// instance is terminated (listed as not running, or no longer listed
	// at all) has failed at once, since two signals agree, without
	// waiting for unhealthy_after. A Down node whose instance still runs
	// waits as usual. Such a platform's groups also replace an instance
	// terminated without shrinking: a failed manager that leaves before
	// its replacement (Action.Refill) is refilled by its group, not by
	// Heal.
	InstancesAuthoritative bool
}

// Quorum is the Raft view of the cluster's managers.
type Quorum struct {
	// Managers is the number of managers in the Raft group, reachable or not.
	Managers int
	// Reachable is the number of managers the leader can reach.
	Reachable int
	// LeaderPresent tells whether the group has a leader right now.
	LeaderPresent bool
}

// Held reports whether the managers form a quorum (a strict majority is
// reachable) under a leader: the condition for any manager change.
func (q Quorum) Held() bool {
	return q.LeaderPresent && q.Managers > 0 && q.Reachable >= quorumOf(q.Managers)
}

// quorumOf is the number of votes a Raft group of members members needs to
// commit anything, its leader's election and membership changes included:
// a strict majority, ⌊members/2⌋+1.
func quorumOf(members int) int {
	return members/2 + 1
}

// PoolState is one node pool with its bounds and healing rules.
type PoolState struct {
	ID   string
	Role string // policy.RoleWorker or policy.RoleManager
	// MinSize, MaxSize and DesiredSize count instances, as the platform does.
	MinSize, MaxSize, DesiredSize int
	Rules                         policy.HealingRules
	// HasPolicy is false when no healing policy targets the pool.
	HasPolicy bool
	// MaxDisruptedPercent is the pool's disruption budget from its scaling
	// policy (policy.ScalingRules.MaxDisruptedPercent); 0 means the
	// default. Healing waits while scale-in removals in flight fill it.
	MaxDisruptedPercent int
}

// Instance is one platform instance (a VM, or a dockerd on the local
// platform).
type Instance struct {
	ID        string
	PoolID    string
	CreatedAt time.Time
	// Running is true while the platform says the instance exists.
	Running bool
	// NodeID is the Swarm node the instance joined as; empty until it joins.
	NodeID string
}

// Node is one Swarm node.
type Node struct {
	ID         string
	PoolID     string
	InstanceID string
	Role       string // policy.RoleWorker or policy.RoleManager
	// State is NodeReady, NodeDown, NodeUnknown or NodeDisconnected.
	State        string
	Availability string // "active", "pause" or "drain"
	// ManagerReachability is Reachable or Unreachable for managers, empty
	// for workers.
	ManagerReachability string
	Leader              bool
	// CreatedAt is when the node joined the Swarm. When zero, the creation
	// time of its instance stands in for it.
	CreatedAt time.Time
	// StateSince is when the agent saw the node enter its current State.
	// Zero means not known yet: the node is not judged until it is.
	StateSince   time.Time
	RunningTasks int
}

// Backoff is a pool's record of consecutive failed replacements. The agent
// adds one when it executes a concluding action whose Outcome is
// OutcomeJoinFailed or OutcomeReplacementFailed, and resets it on
// OutcomeReplaced.
type Backoff struct {
	Failures    int
	LastFailure time.Time
}

// Backoff delays: the first failure waits backoffBase, each further one twice
// as long, never more than backoffCap.
const (
	backoffBase = 10 * time.Second
	backoffCap  = 10 * time.Minute
)

// BackoffDelay is how long a pool waits after its failures-th consecutive
// failed replacement before it starts another replacement: 10s, 20s, 40s, ...,
// at most 10m. It is zero when there were no failures.
func BackoffDelay(failures int) time.Duration {
	if failures <= 0 {
		return 0
	}
	d := backoffBase
	for i := 1; i < failures; i++ {
		d *= 2
		if d >= backoffCap {
			return backoffCap
		}
	}
	return d
}

// until returns when the backoff ends; the zero time if it never started.
func (b Backoff) until() time.Time {
	if b.Failures <= 0 || b.LastFailure.IsZero() {
		return time.Time{}
	}
	return b.LastFailure.Add(BackoffDelay(b.Failures))
}
