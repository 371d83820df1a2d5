package agent_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// Item 5: drains run beside the loop. A task that ignores SIGTERM keeps a
// node of one pool draining while a worker of another pool is killed: that
// worker is replaced within its normal MTTR, not after drain_timeout.
func TestDrainDoesNotBlockHealing(t *testing.T) {
	h := newHarnessWith(t, "db", 1, true, "500ms", true)
	h.pool("batch", 2, nil)
	h.pool("web", 1, healing("db/web", "2s"))
	h.stubborn("node.labels.autarky.pool==batch")
	h.leadingAgent()
	h.scaleInTo1("db/batch", "3m")
	h.waitFor("a batch node draining", time.Minute, func() (bool, string) { return h.draining("db/batch") })
	victim := h.instances("web")[0].ID
	start := time.Now()
	h.kill(victim)
	h.waitFor("web healed while batch drains", 90*time.Second, func() (bool, string) {
		ok, detail := h.settled("web", "worker", 1)
		for _, n := range h.instances("web") {
			ok = ok && n.ID != victim
		}
		return ok, detail
	})
	mttr := time.Since(start)
	t.Logf("worker MTTR while another pool drains a stubborn node: %s", mttr.Round(10*time.Millisecond))
	if draining, _ := h.draining("db/batch"); !draining {
		t.Fatalf("the batch node is no longer draining: the test did not overlap the drain")
	}
	if mttr > 60*time.Second {
		t.Fatalf("the worker took %s to heal: the drain held healing up", mttr)
	}
}

// Item 7: a node promoted to manager by hand inside a worker pool is never
// a scale-in candidate, and when it fails, healing demotes it before
// removing it (by its real role), instead of failing removal forever.
func TestPromotedWorker(t *testing.T) {
	h := newHarness(t, "pw", 3, false)
	h.pool("web", 2, healing("pw/web", "2s"))
	insts := h.instances("web")
	promoted := insts[0].ID
	promotedNode := h.nodeOf(promoted)
	h.docker("node", "promote", promotedNode)
	h.waitFor("the promoted node reachable as a manager", time.Minute, func() (bool, string) {
		ns, err := h.nodes()
		if err != nil {
			return false, err.Error()
		}
		for _, n := range ns {
			if n.ID == promotedNode {
				return n.Role == policy.RoleManager && n.Reachability == "reachable", n.Role + "/" + n.Reachability
			}
		}
		return false, "not listed"
	})
	h.scaleInTo1("pw/web", "5s")
	a := h.inProcess(false)
	h.evaluateUntil(a, "scale in to 1", 90*time.Second, func() (bool, string) {
		return len(h.instances("web")) == 1 && len(h.journal().Entries) == 0, fmt.Sprintf("%+v", h.journal().Entries)
	})
	if got := h.instances("web")[0].ID; got != promoted {
		t.Fatalf("scale-in removed the promoted node; %s is left", got)
	}
	// The promoted node fails: healing replaces it, then demotes and removes it.
	h.kill(promoted)
	h.nodeDown(promoted, 30*time.Second)
	h.evaluateUntil(a, "the promoted node replaced, demoted and removed", 2*time.Minute, func() (bool, string) {
		ok, detail := h.settled("web", "worker", 1)
		return ok && len(h.journal().Entries) == 0, detail + fmt.Sprintf(" journal %+v", h.journal().Entries)
	})
	ns, err := h.nodes()
	if err != nil {
		t.Fatal(err)
	}
	managers := 0
	for _, n := range ns {
		if n.ID == promotedNode {
			t.Fatalf("the dead promoted node is still listed: %+v", n)
		}
		if n.Role == policy.RoleManager {
			managers++
		}
	}
	if managers != 3 {
		t.Fatalf("%d managers, want the 3 of the manager pool", managers)
	}
}
