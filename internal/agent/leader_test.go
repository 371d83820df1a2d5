package agent_test

import (
	"syscall"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// Item 3: the leading manager's dockerd and its agent are frozen together
// (SIGSTOP) in the middle of a scale-in drain; Swarm elects another leader;
// both resume. The old agent makes no mutating call (it finds it no
// longer leads), and the new leader finishes the drain and the removal
// exactly once.
func TestDeposedLeaderMakesNoChange(t *testing.T) {
	h := newHarnessWith(t, "dl", 3, true, "500ms", true)
	h.pool("web", 2, nil)
	h.stubborn("node.role==worker")
	old, agentPID := h.leadingAgent()
	h.scaleInTo1("dl/web", "15s")
	h.waitFor("the old leader draining a node", time.Minute, func() (bool, string) { return h.draining("dl/web") })
	before, _ := metric(agentURL(old), "autarky_changes_total")
	frozen := []int{old.PID, old.AgentPID, agentPID} // dockerd, supervisor, agent
	for _, pid := range frozen {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("froze the leading manager %s: pids %v; its agent had made %v changes", old.ID, frozen, before)
	resumed := false
	resume := func() {
		if resumed {
			return
		}
		resumed = true
		for _, pid := range frozen {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	defer resume()
	h.waitFor("another manager's agent to lead", time.Minute, func() (bool, string) {
		for _, r := range h.records(policy.ManagerPoolName) {
			if r.ID == old.ID {
				continue
			}
			if v, ok := metric(agentURL(r), "autarky_leader"); ok && v == 1 {
				return true, ""
			}
		}
		return false, "no new leader yet"
	})
	resume()
	t.Log("resumed the old leader")
	h.waitFor("the new leader to finish the scale-in", 2*time.Minute, func() (bool, string) {
		ok, detail := h.settled("web", "worker", 1)
		return ok && len(h.instances("web")) == 1 && len(h.journal().Entries) == 0, detail
	})
	// The old agent has resumed for a while now: give it the time to try.
	time.Sleep(8 * time.Second)
	after, ok := metric(agentURL(old), "autarky_changes_total")
	if !ok {
		t.Fatalf("the old agent does not answer after it resumed")
	}
	if after != before {
		t.Fatalf("the deposed agent made %v mutating calls after it resumed", after-before)
	}
	// It did try to go on with the removal it had started, and its
	// leadership check stopped it: the scenario exercised the fence.
	if fenced, _ := metric(agentURL(old), `autarky_fenced_total{fence="leadership"}`); fenced < 1 {
		t.Fatalf("the deposed agent was never stopped by its leadership check (autarky_fenced_total %v): the test did not catch it mid-action", fenced)
	}
	if got := len(h.instances("web")); got != 1 {
		t.Fatalf("%d web instances, want 1: the removal was repeated or undone", got)
	}
	if n, _ := h.leaders(); n != 1 {
		t.Fatalf("%d agents lead after the old one resumed", n)
	}
}
