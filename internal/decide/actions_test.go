package decide

import "testing"

func TestGroupShrink(t *testing.T) {
	for _, c := range []struct {
		name string
		a    Action
		want bool
	}{
		{"replacement", Action{Kind: ReplaceNode, Role: "manager", InstanceID: "i-1"}, false},
		{"no instance", Action{Kind: RemoveNode, Role: "manager", NodeID: "n"}, false},
		{"healed worker", Action{Kind: RemoveNode, Role: "worker", NodeID: "n", InstanceID: "i-1", Outcome: OutcomeReplaced}, false},
		{"manager after its replacement", Action{Kind: RemoveNode, Role: "manager", NodeID: "n", InstanceID: "i-1", Outcome: OutcomeReplaced}, true},
		{"manager leaving first", Action{Kind: RemoveNode, Role: "manager", NodeID: "n", InstanceID: "i-1", Refill: true}, false},
		{"failed join", Action{Kind: TerminateInstance, Role: "worker", InstanceID: "i-2", Outcome: OutcomeJoinFailed}, true},
		{"failed replacement", Action{Kind: RemoveNode, Role: "worker", NodeID: "n", InstanceID: "i-2", Outcome: OutcomeReplacementFailed}, true},
	} {
		if got := GroupShrink(c.a); got != c.want {
			t.Errorf("%s: GroupShrink = %v, want %v", c.name, got, c.want)
		}
	}
}
