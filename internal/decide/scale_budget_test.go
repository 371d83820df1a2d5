package decide

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

func TestDisruptionBudget(t *testing.T) {
	for _, c := range []struct{ size, pct, want int }{
		{0, 0, 1}, {1, 0, 1}, {9, 0, 1}, {10, 0, 1}, {19, 0, 1}, {20, 0, 2}, {25, 0, 2}, {100, 0, 10},
		{20, 10, 2}, {20, 50, 10}, {20, 100, 20}, {3, 100, 3}, {20, 1, 1}, {20, 500, 20}, {-5, 10, 1},
	} {
		if got := DisruptionBudget(c.size, c.pct); got != c.want {
			t.Errorf("DisruptionBudget(%d, %d) = %d, want %d", c.size, c.pct, got, c.want)
		}
	}
}

func TestDisrupted(t *testing.T) {
	p := scalePool(4)
	if got := Disrupted(&p); got != 0 {
		t.Fatalf("Disrupted of a quiet pool = %d", got)
	}
	rep := Action{Kind: ReplaceNode, Key: actionKey(ReplaceNode, workers, "dead", "i-dead"), PoolID: workers, NodeID: "dead", InstanceID: "i-dead", Replacement: "i-new"}
	p.InFlight = []Action{
		rep,
		// Its conclusion counts with it: one unit.
		{Kind: RemoveNode, Key: actionKey(RemoveNode, workers, "dead", "i-dead"), PoolID: workers, NodeID: "dead", Completes: rep.Key},
		// A scale-in removal of a node Swarm still lists as draining.
		{Kind: RemoveNode, Key: ScaleInKeyPrefix + workers + "/node:w1", PoolID: workers, NodeID: "w1", Drain: true, Shrink: true},
		// Another pool's action does not count.
		{Kind: ReplaceNode, Key: "replace_node/c/other/node:x", PoolID: "c/other", NodeID: "x"},
	}
	scaleNode(&p, "w1").Draining = true
	// Drained by hand, no action names it.
	scaleNode(&p, "w2").Draining = true
	if got := Disrupted(&p); got != 3 {
		t.Fatalf("Disrupted = %d, want 3 (the replacement unit, the scale-in removal of w1, w2 drained by hand)", got)
	}
	if !IsScaleIn(p.InFlight[2]) || IsScaleIn(p.InFlight[1]) || IsScaleIn(p.InFlight[0]) {
		t.Error("IsScaleIn tells scale-in removals from healing actions wrongly")
	}
}

// bigIdlePool is scalePool(n) with the default disruption budget and every
// node idle for an hour, and nothing pending.
func bigIdlePool(n int) ScalePool {
	p := scalePool(n)
	p.MaxSize = 30
	p.Rules.MaxDisruptedPercent = 0 // the default, 10 %
	for i := range p.Nodes {
		p.Nodes[i].RunningTasks, p.Nodes[i].Reserved = 0, Resources{}
	}
	idleAll(&p, time.Hour)
	p.Checks = []CheckSample{pending()}
	return p
}

func TestScaleDisruptionBudgetDecisions(t *testing.T) {
	heal := Action{Kind: ReplaceNode, Key: actionKey(ReplaceNode, workers, "dead", "i-dead"), PoolID: workers, NodeID: "dead", InstanceID: "i-dead", Replacement: "i-new"}
	t.Run("20 idle nodes: 2 go, not max_step 5", func(t *testing.T) {
		p := bigIdlePool(20)
		d := Scale(ScaleSnapshot{Now: t0, Pools: []ScalePool{p}}).Decisions[0]
		if d.Direction != ScaleDown || len(d.RemoveNodes) != 2 || d.Code != CodeDisruptionBudget {
			t.Fatalf("%s %s %v: %s", d.Direction, d.Code, d.RemoveNodes, d.Message)
		}
		if !strings.Contains(d.Message, "limited by the disruption budget: 0 nodes of the pool's 20 are being disrupted") {
			t.Errorf("message: %s", d.Message)
		}
	})
	t.Run("a healing replacement in flight takes one of the two", func(t *testing.T) {
		p := bigIdlePool(20)
		p.InFlight = []Action{heal}
		d := Scale(ScaleSnapshot{Now: t0, Pools: []ScalePool{p}}).Decisions[0]
		if d.Direction != ScaleDown || len(d.RemoveNodes) != 1 {
			t.Fatalf("%s %s %v: %s", d.Direction, d.Code, d.RemoveNodes, d.Message)
		}
	})
	t.Run("healing and a draining node fill it: hold", func(t *testing.T) {
		p := bigIdlePool(20)
		p.InFlight = []Action{heal}
		scaleNode(&p, "w3").Draining = true
		d := Scale(ScaleSnapshot{Now: t0, Pools: []ScalePool{p}}).Decisions[0]
		if d.Direction != ScaleHold || d.Code != CodeDisruptionBudget {
			t.Fatalf("%s %s %v: %s", d.Direction, d.Code, d.RemoveNodes, d.Message)
		}
		if !strings.Contains(d.Message, "2 nodes of the pool's 20 are being disrupted") || !strings.Contains(d.Message, "disruption budget is 2") {
			t.Errorf("message: %s", d.Message)
		}
	})
	t.Run("above max_size the forced scale-in keeps the budget too", func(t *testing.T) {
		p := bigIdlePool(10)
		p.MaxSize = 5
		p.InFlight = []Action{heal}
		d := Scale(ScaleSnapshot{Now: t0, Pools: []ScalePool{p}}).Decisions[0]
		if d.Direction != ScaleHold || d.Code != CodeDisruptionBudget {
			t.Fatalf("%s %s %v: %s", d.Direction, d.Code, d.RemoveNodes, d.Message)
		}
		p.InFlight = nil
		d = Scale(ScaleSnapshot{Now: t0, Pools: []ScalePool{p}}).Decisions[0]
		if d.Direction != ScaleDown || !d.Forced || len(d.RemoveNodes) != 1 {
			t.Fatalf("%s %s %v: %s", d.Direction, d.Code, d.RemoveNodes, d.Message)
		}
	})
	t.Run("max_disrupted_percent 50 lets max_step go", func(t *testing.T) {
		p := bigIdlePool(20)
		p.Rules.MaxDisruptedPercent = 50
		d := Scale(ScaleSnapshot{Now: t0, Pools: []ScalePool{p}}).Decisions[0]
		if d.Direction != ScaleDown || len(d.RemoveNodes) != p.Rules.MaxStep {
			t.Fatalf("%s %s %v: %s", d.Direction, d.Code, d.RemoveNodes, d.Message)
		}
	})
}

// TestHealDisruptionBudget: healing shares the budget with scale-in: while
// scale-in removals in flight fill it, no replacement starts in the pool.
func TestHealDisruptionBudget(t *testing.T) {
	build := func(scaleIns int, pct int) Snapshot {
		s := cluster(3, 20)
		p := findPool(&s, workers)
		p.MaxSize, p.MaxDisruptedPercent = 30, pct
		for i := 1; i <= scaleIns; i++ {
			id := "w" + string(rune('0'+i))
			s.InFlight = append(s.InFlight, Action{Kind: RemoveNode, Key: ScaleInKeyPrefix + workers + "/node:" + id, PoolID: workers,
				Role: policy.RoleWorker, NodeID: id, InstanceID: "i-" + id, Drain: true, Shrink: true})
			findNode(&s, id).Availability = "drain"
		}
		fail(&s, "w9", NodeDown, time.Hour)
		return s
	}
	for _, c := range []struct {
		name           string
		scaleIns, pct  int
		replace        bool
		wantMsgContain string
	}{
		{name: "no scale-in in flight: healing as usual", replace: true},
		{name: "one scale-in removal of a budget of two", scaleIns: 1, replace: true},
		{name: "two scale-in removals fill the budget of two", scaleIns: 2,
			wantMsgContain: "2 scale-in removals in flight and 0 replacements in flight or planned fill the pool's disruption budget of 2 (of 20 running instances): healing waits for the scale-in"},
		{name: "max_disrupted_percent 20 leaves room", scaleIns: 2, pct: 20, replace: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := build(c.scaleIns, c.pct)
			plan := Heal(s)
			checkInvariants(t, s, plan)
			replaced := false
			for _, a := range plan.Actions {
				replaced = replaced || (a.Kind == ReplaceNode && a.NodeID == "w9")
			}
			if replaced != c.replace {
				t.Fatalf("replacement of w9 planned = %v, want %v; reasons %+v", replaced, c.replace, plan.Reasons)
			}
			if c.wantMsgContain != "" {
				r := plan.Reasons[1]
				if r.Code != ReasonBudget || !strings.Contains(r.Message, c.wantMsgContain) {
					t.Errorf("reason %s: %s", r.Code, r.Message)
				}
			}
		})
	}
}

// TestScaleStabilizationWindow pins the window on single decisions.
func TestScaleStabilizationWindow(t *testing.T) {
	p := scalePool(6)
	idle(&p, time.Hour, "w1", "w2", "w3", "w4", "w5", "w6")
	p.Checks = []CheckSample{target("cpu", 0.2, 0.6)} // asks for 2
	d := Scale(ScaleSnapshot{Now: t0, Pools: []ScalePool{p}}).Decisions[0]
	if d.Direction != ScaleDown || d.To != 2 || d.Recommended != 2 {
		t.Fatalf("without recommendations: %s to %d (recommended %d): %s", d.Direction, d.To, d.Recommended, d.Message)
	}
	// 6 was recommended 4 minutes ago, within cooldown_down 5m: hold.
	p.Recommendations = []Recommendation{{At: t0.Add(-4 * time.Minute), Size: 6}, {At: t0.Add(-time.Minute), Size: 3}}
	d = Scale(ScaleSnapshot{Now: t0, Pools: []ScalePool{p}}).Decisions[0]
	if d.Direction != ScaleHold || d.Code != CodeStabilization || !strings.Contains(d.Message, "recommended 6 nodes 4m0s ago") {
		t.Fatalf("%s %s: %s", d.Direction, d.Code, d.Message)
	}
	// Only 4 within the window: shrink to 4, not 2.
	p.Recommendations = []Recommendation{{At: t0.Add(-6 * time.Minute), Size: 6}, {At: t0.Add(-time.Minute), Size: 4}}
	d = Scale(ScaleSnapshot{Now: t0, Pools: []ScalePool{p}}).Decisions[0]
	if d.Direction != ScaleDown || d.To != 4 || d.Code != CodeStabilization {
		t.Fatalf("%s %s to %d: %s", d.Direction, d.Code, d.To, d.Message)
	}
	// A scale-up is never held back by the window.
	p.Checks = []CheckSample{target("cpu", 0.9, 0.6)}
	p.Recommendations = []Recommendation{{At: t0.Add(-time.Minute), Size: 2}}
	if d = Scale(ScaleSnapshot{Now: t0, Pools: []ScalePool{p}}).Decisions[0]; d.Direction != ScaleUp {
		t.Fatalf("%s %s: %s", d.Direction, d.Code, d.Message)
	}

	// Remember keeps the window and adds the decision's.
	recs := Remember([]Recommendation{{At: t0.Add(-6 * time.Minute), Size: 9}, {At: t0.Add(-time.Minute), Size: 7}, {At: t0.Add(time.Minute), Size: 8}},
		ScaleDecision{Recommended: 5}, t0, 5*time.Minute)
	if len(recs) != 2 || recs[0].Size != 7 || recs[1] != (Recommendation{At: t0, Size: 5}) {
		t.Errorf("Remember = %+v", recs)
	}
}

// A node whose scale-in removal is in flight and that Swarm still lists
// shows no running task while its tasks stop (the agent reads tasks by
// desired state): it counts as the busy drain, so no second busy node
// drains beside it; empty nodes still go. A node drained by hand, with no
// action in flight, does not hold busy ones.
func TestScaleStoppingNodeIsTheBusyDrain(t *testing.T) {
	build := func(inFlight bool) ScalePool {
		p := scalePool(5)
		idleAll(&p, time.Hour)
		idle(&p, time.Hour, "w1")
		n := scaleNode(&p, "w5")
		n.Draining, n.RunningTasks, n.Reserved = true, 0, Resources{}
		if inFlight {
			p.InFlight = []Action{{Kind: RemoveNode, Key: ScaleInKeyPrefix + workers + "/node:w5", PoolID: workers, NodeID: "w5", Drain: true, Shrink: true}}
		}
		p.Checks = []CheckSample{target("cpu", 0.1, 0.6)}
		return p
	}
	d := Scale(ScaleSnapshot{Now: t0, Pools: []ScalePool{build(true)}}).Decisions[0]
	if !slices.Equal(d.RemoveNodes, []string{"w1"}) || !strings.Contains(d.Message, "node w5 is being removed and its tasks may still be stopping, so only empty nodes go") {
		t.Fatalf("with w5's removal in flight: %s %v: %s", d.Direction, d.RemoveNodes, d.Message)
	}
	d = Scale(ScaleSnapshot{Now: t0, Pools: []ScalePool{build(false)}}).Decisions[0]
	if len(d.RemoveNodes) != 2 {
		t.Fatalf("with w5 drained by hand: %s %v: %s", d.Direction, d.RemoveNodes, d.Message)
	}
}
