// Package decide is Autarky's decision core. It is pure: no I/O, no goroutines,
// no clock of its own. It takes an observed Snapshot (pools, instances, Swarm
// nodes, the journal's in-flight actions, the time) and returns a Plan: the
// actions to take and, for every pool, why it acts or why it holds.
//
// Keeping it pure makes the safety rules of DESIGN.md testable in
// microseconds with a fake clock, and makes the agent explainable: the agent
// observes, calls the core, journals each action before it starts, and acts.
//
// Healing works in units. A unit starts with a replace_node action for a
// failed subject (a Swarm node that is down, or an instance that never joined)
// and ends with exactly one concluding action that names it in Completes:
// remove_node or terminate_instance of the subject once the replacement is
// Ready, or, when the replacement itself fails, removal of the replacement.
// A unit therefore never changes a pool's size for longer than it runs.
package decide
