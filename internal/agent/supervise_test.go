package agent_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/supervise"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// TestLeaderAgentKilledAndFrozen: every agent is supervised (safety rule
// 11). Only the agent beside the Raft leader acts, so an agent that dies or
// hangs there would stop healing in silence. Its supervisor restarts it
// when it is killed (kill -9), and kills and restarts it when it is frozen
// (SIGSTOP: no WATCHDOG=1 for the watchdog's 30s); both times the restarted
// agent heals the pool.
func TestLeaderAgentKilledAndFrozen(t *testing.T) {
	// The local platform's watchdog is max(30s, 6 × the evaluation
	// interval): 6 × 1s is under the floor, so it is 30s.
	const watchdog = 30 * time.Second
	h := newHarnessEvery(t, "sv", 3, true, "1s")
	h.pool("web", 2, healing("sv/web", "2s"))

	// 1. kill -9 of the leading agent, then a worker's dockerd.
	leader, killed := h.leadingAgent()
	victim := h.runningInstance("web", "")
	start := time.Now()
	if err := syscall.Kill(killed, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed the leading agent beside %s (pid %d)", leader.ID, killed)
	h.kill(victim)
	h.nodeDown(victim, 30*time.Second)
	h.waitFor("the pool healed after the leading agent was killed", 2*time.Minute, func() (bool, string) { return h.settled("web", "worker", 2) })
	killedToHealed := time.Since(start)
	t.Logf("leading agent killed -> pool healed: %s", killedToHealed.Round(100*time.Millisecond))

	restarted := h.agentPID(leader)
	if restarted == killed {
		t.Fatalf("the pid file still names the killed agent %d", killed)
	}
	// The restarted agent (its metrics start from zero) made the
	// replacement: nothing else could have, only the leader's agent acts.
	h.waitFor("the restarted agent to count its replacement", 15*time.Second, func() (bool, string) {
		v, _ := metric(agentURL(leader), `autarky_replacements_total{pool="sv/web",result="replaced"}`)
		return v == 1, fmt.Sprintf("autarky_replacements_total replaced = %v", v)
	})
	h.agentLogHas(leader, "killed by signal SIGKILL")

	// 2. SIGSTOP of the (new) leading agent — not its dockerd — then
	// another worker's dockerd.
	leader, frozen := h.leadingAgent()
	victim2 := h.runningInstance("web", victim)
	start = time.Now()
	if err := syscall.Kill(frozen, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Logf("froze the leading agent beside %s (pid %d)", leader.ID, frozen)
	// The followers tell people: their probe of the leader's agent fails.
	h.waitFor("a follower to report the leader's agent down", 20*time.Second, func() (bool, string) {
		for _, r := range h.records(policy.ManagerPoolName) {
			if r.ID == leader.ID {
				continue
			}
			if v, ok := metric(agentURL(r), "autarky_leader_agent_up"); ok && v == 0 {
				return true, ""
			}
		}
		return false, "every follower still says 1"
	})
	h.kill(victim2)
	h.nodeDown(victim2, 30*time.Second)
	h.waitFor("the pool healed after the leading agent froze", watchdog+2*time.Minute, func() (bool, string) { return h.settled("web", "worker", 2) })
	frozenToHealed := time.Since(start)
	t.Logf("leading agent frozen -> pool healed: %s (watchdog %s)", frozenToHealed.Round(100*time.Millisecond), watchdog)

	if testenv.Alive(frozen) {
		t.Errorf("the frozen agent %d is still there", frozen)
	}
	if now := h.agentPID(leader); now == frozen {
		t.Errorf("the pid file still names the frozen agent %d", frozen)
	}
	if frozenToHealed < watchdog-5*time.Second {
		t.Errorf("healed %s after the freeze, before the watchdog of %s could have fired: who healed?", frozenToHealed, watchdog)
	}
	h.agentLogHas(leader, "watchdog timeout: no WATCHDOG=1 for 30s")
	for _, r := range h.records(policy.ManagerPoolName) {
		b, _ := os.ReadFile(filepath.Join(h.stateDir, "nodes", r.Addr, "agent.log"))
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "autarky-agent.supervise") {
				t.Logf("supervisor beside %s: %s", r.ID, line)
			}
		}
		if !testenv.Alive(r.AgentPID) {
			t.Errorf("the supervisor beside %s (pid %d) is gone", r.ID, r.AgentPID)
		}
	}
}

// leadingAgent waits for exactly one agent to report autarky_leader 1 and
// returns its manager's record and the agent's own pid (the supervisor's
// child, from the pid file in the node's directory).
func (h *harness) leadingAgent() (instanceRecord, int) {
	h.t.Helper()
	var url string
	h.waitFor("exactly one leading agent", time.Minute, func() (bool, string) {
		var n int
		n, url = h.leaders()
		return n == 1, fmt.Sprintf("%d leaders", n)
	})
	for _, r := range h.records(policy.ManagerPoolName) {
		if agentURL(r) == url {
			return r, h.agentPID(r)
		}
	}
	h.t.Fatalf("no manager serves %s", url)
	return instanceRecord{}, 0
}

// agentPID is the live agent beside manager r: the pid its supervisor
// (the record's AgentPID) wrote to agent.pid.
func (h *harness) agentPID(r instanceRecord) int {
	h.t.Helper()
	pidFile := filepath.Join(h.stateDir, "nodes", r.Addr, "agent.pid")
	var pid int
	h.waitFor("the agent beside "+r.ID+" in "+pidFile, time.Minute, func() (bool, string) {
		var err error
		if pid, err = supervise.ReadPIDFile(pidFile); err != nil {
			return false, err.Error()
		}
		if !testenv.Alive(pid) || testenv.ParentPID(pid) != r.AgentPID {
			return false, fmt.Sprintf("pid %d: alive %t, parent %d, supervisor %d", pid, testenv.Alive(pid), testenv.ParentPID(pid), r.AgentPID)
		}
		return true, ""
	})
	return pid
}

// runningInstance is a running instance of pool other than not.
func (h *harness) runningInstance(pool, not string) string {
	h.t.Helper()
	for _, i := range h.instances(pool) {
		if i.Running && i.ID != not {
			return i.ID
		}
	}
	h.t.Fatalf("no running instance in %s other than %q", pool, not)
	return ""
}

// agentLogHas checks that the agent.log beside manager r holds want.
func (h *harness) agentLogHas(r instanceRecord, want string) {
	h.t.Helper()
	b, err := os.ReadFile(filepath.Join(h.stateDir, "nodes", r.Addr, "agent.log"))
	if err != nil {
		h.t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, want) {
			h.t.Logf("agent.log of %s: %s", r.ID, line)
			return
		}
	}
	h.t.Errorf("agent.log of %s does not say %q", r.ID, want)
}
