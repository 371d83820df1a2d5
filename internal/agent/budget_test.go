package agent_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/swarm"
)

// Item 7 (S3): a pool's scale-in is bounded by its disruption budget, not
// stopped by any action in flight. The two oldest of four batch nodes run
// a task that ignores SIGTERM; node_selector oldest and max_step 1 make the
// first removal drain one of them for minutes. With max_disrupted_percent
// 100 the budget has room for more, so the two empty nodes go while that
// drain is still in flight (the other busy node waits: one busy drain at a
// time). Before the budget, any action in flight held the pool's scale-in
// until the drain ended.
func TestScaleInWithinDisruptionBudget(t *testing.T) {
	h := newHarnessWith(t, "bu", 1, true, "500ms", true)
	h.pool("batch", 4, nil)
	ns, err := h.nodes()
	if err != nil {
		t.Fatal(err)
	}
	ns = slices.DeleteFunc(ns, func(n swarm.Node) bool { return n.EngineLabels[policy.LabelPool] != "batch" })
	if len(ns) != 4 {
		t.Fatalf("%d batch nodes, want 4", len(ns))
	}
	slices.SortFunc(ns, func(a, b swarm.Node) int { return a.CreatedAt.Compare(b.CreatedAt) })
	for _, n := range ns[:2] {
		h.docker("node", "update", "--label-add", "stubborn=yes", n.ID)
	}
	h.stubborn("node.labels.stubborn==yes")
	h.leadingAgent()
	minSize := int64(1)
	h.scale(scalingPolicy("bu/batch", func(s *policy.Scaling) {
		s.Alert = []policy.AlertCheck{{Name: "never"}}
		s.MinSize = &minSize
		s.ScaleInAfter = "1s"
		s.DrainTimeout = "10m"
		s.MaxStep = 1
		s.NodeSelector = policy.NodeSelectorOldest
		s.MaxDisruptedPercent = 100
	}))
	h.waitFor("a stubborn batch node draining", time.Minute, func() (bool, string) { return h.draining("bu/batch") })
	drainingNode := func() string {
		for _, e := range h.journal().Entries {
			if strings.HasPrefix(e.Action.Key, "scale_in/bu/batch/") && !e.DrainStartedAt.IsZero() {
				return e.Action.NodeID
			}
		}
		return ""
	}
	busy := drainingNode()
	if busy != ns[0].ID && busy != ns[1].ID {
		t.Fatalf("node %s drains, want one of the stubborn nodes %s, %s", busy, ns[0].ID, ns[1].ID)
	}
	h.waitFor("both empty batch nodes removed while the stubborn drain is in flight", 3*time.Minute, func() (bool, string) {
		running := 0
		for _, in := range h.instances("batch") {
			if in.Running {
				running++
			}
		}
		if d := drainingNode(); d != busy {
			t.Fatalf("the stubborn drain of %s ended (now %q) before the empty nodes went: the test did not overlap it", busy, d)
		}
		return running == 2, fmt.Sprintf("%d batch instances running", running)
	})
	for _, e := range h.journal().Entries {
		if e.Action.NodeID == ns[0].ID || e.Action.NodeID == ns[1].ID {
			if e.Action.NodeID != busy {
				t.Fatalf("the second stubborn node %s is being removed while %s drains: one busy drain at a time", e.Action.NodeID, busy)
			}
		}
	}
}
