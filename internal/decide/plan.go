package decide

// ActionKind names what an action does.
type ActionKind string

const (
	// ReplaceNode starts a new instance in the pool for a failed subject:
	// a Swarm node (NodeID set), or an instance with no node (NodeID
	// empty): one that never joined, or the instance of a manager that
	// left before its replacement (see Refill). The replacement comes
	// first; the subject goes only once the replacement is Ready.
	ReplaceNode ActionKind = "replace_node"
	// RemoveNode removes a Swarm node and terminates its instance if one is
	// left: drain first when Drain is set, demote first when Demote is set.
	RemoveNode ActionKind = "remove_node"
	// TerminateInstance terminates an instance that has no Swarm node.
	TerminateInstance ActionKind = "terminate_instance"
)

// Action is one step of a plan, and the form the journal keeps it in.
//
// A replace_node stays in flight (started, not finished) until the action
// that names its Key in Completes has been journaled; the agent then finishes
// both. Finishing it earlier would make Heal see the failed subject again
// and replace it a second time.
type Action struct {
	Kind ActionKind
	// Key is stable across evaluations: kind, pool and subject. The journal
	// uses it to tell that an action was already started; Heal never plans
	// an action whose Key is in flight.
	Key    string
	PoolID string
	Role   string
	// NodeID and InstanceID name the subject: the node to replace or remove,
	// the instance to replace or terminate. Either may be empty when not
	// known or not applicable.
	NodeID     string
	InstanceID string
	// Replacement is the instance a replace_node started. The agent records
	// it in the journal; Heal leaves it empty and reads it from InFlight.
	Replacement string
	// Completes is the Key of the in-flight replace_node this action
	// concludes; empty for a removal that concludes no unit.
	Completes string
	// Outcome says how the unit named in Completes ended; empty on actions
	// that conclude nothing. The agent keeps the pool's Backoff from it.
	Outcome Outcome
	// Drain asks to drain the node (bounded by the drain deadline) before it
	// is removed, because Swarm still lists running tasks on it.
	Drain bool
	// Demote asks to demote the node before it is removed (managers).
	Demote bool
	// Shrink asks to lower the pool's desired capacity with the
	// termination, on platforms whose groups replace what is terminated
	// (platform.GroupCluster). The agent sets it; Heal never does.
	Shrink bool `json:",omitempty"`
	// Refill marks a RemoveNode that takes a failed manager out of the
	// Raft group before its replacement joins ("remove first", chosen by
	// managerOrder in heal.go to keep quorum): the subject leaves first,
	// and the pool is refilled to its desired size afterwards. The agent
	// carries it out like any removal (drain, demote, node rm, then
	// terminate InstanceID when set), except that the termination never
	// lowers a group's desired capacity (never Shrink): the group launches
	// the replacement itself. Heal sets InstanceID on such a removal only
	// when the snapshot's instances are authoritative (a group); elsewhere
	// (local) it leaves the instance in place, and a later plan refills
	// the pool with a ReplaceNode of that instance, terminating it once
	// the replacement is Ready. Heal sets Refill on nothing else.
	Refill bool `json:",omitempty"`
	// Reason says why, in one sentence, for logs and plan output.
	Reason string
}

// Outcome is how a replacement unit ended.
type Outcome string

const (
	// OutcomeReplaced: the replacement is Ready and the subject goes.
	OutcomeReplaced Outcome = "replaced"
	// OutcomeJoinFailed: the replacement instance never joined the Swarm
	// within join_timeout, or vanished before it did; it goes.
	OutcomeJoinFailed Outcome = "join_failed"
	// OutcomeReplacementFailed: the replacement joined, then failed; it goes.
	OutcomeReplacementFailed Outcome = "replacement_failed"
)

// ReasonCode is the machine-readable part of a pool's Reason.
type ReasonCode string

const (
	// ReasonHealing: the pool acts; the message lists what it does.
	ReasonHealing ReasonCode = "healing"
	// ReasonHealthy: nothing failed.
	ReasonHealthy ReasonCode = "healthy"
	// ReasonDisabled: no healing policy, or the policy is disabled.
	ReasonDisabled ReasonCode = "disabled"
	// ReasonInvalid: the pool's role or bounds make no sense, or its ID is
	// repeated; nothing is done until it is fixed.
	ReasonInvalid ReasonCode = "invalid"
	// ReasonQuorum: the managers have no quorum or no leader, so no manager
	// changes at all; or a manager change would leave fewer reachable
	// managers than a quorum of the membership it makes (the message
	// gives the numbers).
	ReasonQuorum ReasonCode = "quorum"
	// ReasonCircuitBreaker: too large a share of the pool or of the cluster
	// is unhealthy at once, which looks like a partition or a broken
	// monitor, not like dead nodes.
	ReasonCircuitBreaker ReasonCode = "circuit_breaker"
	// ReasonInFlight: waiting for a replacement in progress, or for a
	// manager change in progress.
	ReasonInFlight ReasonCode = "in_flight"
	// ReasonBudget: max_concurrent_replacements (or the one manager change
	// per plan) is used up.
	ReasonBudget ReasonCode = "budget"
	// ReasonBackoff: replacements failed to join recently; waiting.
	ReasonBackoff ReasonCode = "backoff"
	// ReasonMinNodeAge: a failed node is younger than min_node_age.
	ReasonMinNodeAge ReasonCode = "min_node_age"
	// ReasonWaiting: a node is unhealthy, but not for unhealthy_after yet.
	ReasonWaiting ReasonCode = "waiting"
)

// Reason says what one pool does in a plan, or why it holds.
type Reason struct {
	PoolID  string
	Code    ReasonCode
	Message string
}

// Plan is the result of one decision: actions in the order to start them,
// and exactly one Reason per pool of the snapshot, in the snapshot's order.
type Plan struct {
	Actions []Action
	Reasons []Reason
}
