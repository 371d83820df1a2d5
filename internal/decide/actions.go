package decide

// ActionKey is the Key Heal gives an action of kind on a pool's node (or,
// with no node, its instance): the agent uses it to rebuild a lost journal
// in the form Heal recognises.
func ActionKey(kind ActionKind, poolID, nodeID, instanceID string) string {
	return actionKey(kind, poolID, nodeID, instanceID)
}
