package decide

import "github.com/autarky/terraform-provider-autarky/internal/policy"

// ActionKey is the Key Heal gives an action of kind on a pool's node (or,
// with no node, its instance): the agent uses it to rebuild a lost journal
// in the form Heal recognises.
func ActionKey(kind ActionKind, poolID, nodeID, instanceID string) string {
	return actionKey(kind, poolID, nodeID, instanceID)
}

// GroupShrink says whether a healing action's termination lowers the
// desired capacity of a cloud group (a platform whose groups replace what
// is terminated), which Heal leaves to the agent:
//
//   - a manager's termination undoes the surge its replacement started
//     with, unless the manager left before its replacement (Refill): then
//     the group launches the replacement itself;
//   - a replacement that failed gives its capacity back until the next
//     attempt;
//   - anything else (a healed worker's instance) keeps the capacity, so
//     the group launches its replacement.
//
// Replacements and actions with no instance never shrink.
func GroupShrink(a Action) bool {
	if a.Kind == ReplaceNode || a.InstanceID == "" {
		return false
	}
	return (a.Role == policy.RoleManager && !a.Refill) ||
		a.Outcome == OutcomeJoinFailed || a.Outcome == OutcomeReplacementFailed
}
