package agent_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/decide"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// A worker whose dockerd is killed -9 is replaced by the agent on the Raft
// leader: a new worker is Ready, the dead node is gone from `docker node ls`,
// exactly one replacement was made, and no secret shows anywhere.
func TestHealWorker(t *testing.T) {
	h := newHarness(t, "hw", 3, true)
	h.pool("web", 3, healing("hw/web", "2s"))
	h.waitFor("exactly one leading agent", 30*time.Second, func() (bool, string) {
		n, _ := h.leaders()
		return n == 1, fmt.Sprintf("%d leaders", n)
	})
	before := h.instances("web")
	victim := before[0].ID
	h.kill(victim)
	h.nodeDown(victim, 30*time.Second)
	h.waitFor("the pool healed", 90*time.Second, func() (bool, string) { return h.settled("web", "worker", 3) })

	time.Sleep(3 * time.Second) // nothing more happens
	after := h.instances("web")
	if len(after) != 3 {
		t.Fatalf("pool has %d instances after healing, want 3: %+v", len(after), after)
	}
	old := map[string]bool{}
	for _, i := range before {
		old[i.ID] = true
	}
	fresh := 0
	for _, i := range after {
		if i.ID == victim {
			t.Errorf("dead instance %s is still there", victim)
		}
		if !old[i.ID] {
			fresh++
		}
	}
	if fresh != 1 {
		t.Errorf("%d replacements were made, want exactly 1", fresh)
	}
	n, leader := h.leaders()
	if n != 1 {
		t.Fatalf("%d agents lead, want 1", n)
	}
	if v, _ := metric(leader, `autarky_replacements_total{pool="hw/web",result="replaced"}`); v != 1 {
		t.Errorf("autarky_replacements_total replaced = %v, want 1", v)
	}
	s := h.status(leader)
	found := false
	for _, d := range s.Decisions {
		if d.Kind == string(decide.ReplaceNode) && d.Pool == "hw/web" {
			found = true
		}
	}
	if !found {
		t.Errorf("status has no replace_node decision for hw/web: %+v", s.Decisions)
	}

	// Secrets never appear in agent logs, metrics or status.
	tokens, err := h.tokens()
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, r := range h.records(policy.ManagerPoolName) {
		b, _ := os.ReadFile(filepath.Join(h.stateDir, "nodes", r.Addr, "agent.log"))
		m, _ := get(agentURL(r) + "/metrics")
		st, _ := get(agentURL(r) + "/v1/status")
		seen = append(seen, string(b), m, st)
	}
	for _, tok := range []string{tokens.Worker, tokens.Manager} {
		if tok == "" {
			t.Fatal("no token to look for")
		}
		for _, text := range seen {
			if strings.Contains(text, tok) || strings.Contains(text, tok[len(tok)-25:]) {
				t.Fatalf("a join token appears in agent output")
			}
		}
	}
}

// Managers are replaced without ever losing quorum: first a follower, then
// the leader together with a worker (the agent beside the new leader takes
// over and finishes both). A dead manager leaves the Raft group before its
// replacement joins, so the group is never larger than 3. The membership
// is sampled every 200ms through any manager that answers: the reachable
// managers are a quorum of the members (⌊members/2⌋+1) at every sample, a
// joining manager counting as a member that is not reachable yet; at most
// one manager is ever down (Swarm lists it down and its dockerd is dead: in
// an election Swarm can list a live manager down for a moment before the
// new leader hears from it, which no agent caused), at most one agent leads
// at any sample, and the
// cluster ends with 3 reachable managers and no ghost Raft member.
func TestHealManagers(t *testing.T) {
	h := newHarness(t, "hm", 3, true)
	h.heal(*healing("hm/managers", "2s"))
	h.pool("web", 2, healing("hm/web", "2s"))
	h.waitFor("exactly one leading agent", 30*time.Second, func() (bool, string) {
		n, _ := h.leaders()
		return n == 1, fmt.Sprintf("%d leaders", n)
	})

	type sample struct {
		at            time.Time
		leader        bool
		members       int // managers in the Raft group, reachable or not
		reachable     int
		down          int // listed down with their dockerd dead
		downAlive     int // listed down with their dockerd running
		leadingAgents int
		err           string
	}
	var samples []sample
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			// A sample is of the moment its answer came: a manager busy
			// with an election can take seconds to answer.
			ns, err := h.nodes()
			s := sample{at: time.Now()}
			if err != nil {
				s.err = err.Error()
			}
			alive := map[string]bool{}
			for _, r := range h.records(policy.ManagerPoolName) {
				alive[r.ID] = r.PID > 0 && syscall.Kill(r.PID, 0) == nil
			}
			for _, n := range ns {
				if n.Role != "manager" {
					continue
				}
				s.members++
				if n.Leader {
					s.leader = true
				}
				// A joining manager is up but unreachable until it has
				// caught up: a member without a vote, as a dead one.
				if n.Reachability == "reachable" {
					s.reachable++
				}
				if n.State == "down" {
					if alive[n.EngineLabels[policy.LabelInstance]] {
						s.downAlive++
					} else {
						s.down++
					}
				}
			}
			s.leadingAgents, _ = h.leaders()
			samples = append(samples, s)
		}
	}()

	leaderRecord := func() (instanceRecord, []instanceRecord) {
		ns, err := h.nodes()
		if err != nil {
			t.Fatal(err)
		}
		var lead instanceRecord
		var others []instanceRecord
		for _, r := range h.records(policy.ManagerPoolName) {
			isLeader := false
			for _, n := range ns {
				if n.Leader && n.EngineLabels[policy.LabelInstance] == r.ID {
					isLeader = true
				}
			}
			if isLeader {
				lead = r
			} else {
				others = append(others, r)
			}
		}
		return lead, others
	}

	// Phase 1: a follower dies.
	_, followers := leaderRecord()
	h.kill(followers[0].ID)
	h.nodeDown(followers[0].ID, 30*time.Second)
	h.waitFor("the managers healed after a follower died", 2*time.Minute, func() (bool, string) { return h.settled("managers", "manager", 3) })
	if _, url := h.leaders(); url != "" {
		found := false
		for _, d := range h.status(url).Decisions {
			if d.Pool == "hm/managers" && d.Kind == string(decide.RemoveNode) && strings.Contains(d.Message, "before its replacement joins") {
				found = true
			}
		}
		if !found {
			t.Errorf("the leader's decisions show no manager leaving before its replacement: %+v", h.status(url).Decisions)
		}
	}
	phase2 := time.Now()

	// Phase 2: a worker dies, and while its replacement is in flight the
	// leader's manager dies too. Two of six nodes down at once is above the
	// default 20% breaker, so this phase allows 50%.
	for _, id := range []string{"hm/managers", "hm/web"} {
		hp := healing(id, "2s")
		hp.MaxUnhealthyPercent = 50
		// The dying leader may have been the manager the replacement was
		// joining through; then the new leader replaces it after this.
		hp.JoinTimeout = "15s"
		h.heal(*hp)
	}
	worker := h.instances("web")[0].ID
	h.kill(worker)
	h.nodeDown(worker, 30*time.Second)
	h.waitFor("the worker's replacement to be in flight", 30*time.Second, func() (bool, string) {
		j := h.journal()
		for _, e := range j.Entries {
			if e.Action.PoolID == "hm/web" && e.Action.Replacement != "" {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", j)
	})
	lead, _ := leaderRecord()
	phase2 = time.Now()
	h.kill(lead.ID)
	h.nodeDown(lead.ID, 60*time.Second)
	h.waitFor("the managers healed after the leader died", 3*time.Minute, func() (bool, string) { return h.settled("managers", "manager", 3) })
	h.waitFor("the workers healed under the new leader", 2*time.Minute, func() (bool, string) { return h.settled("web", "worker", 2) })
	close(stop)
	<-done

	var electionEnd time.Time
	answered, smallest := 0, 3
	for _, s := range samples {
		if s.err == "" {
			answered++
			smallest = min(smallest, s.members)
			if need := s.members/2 + 1; s.reachable < need {
				t.Errorf("at %s quorum was at risk: %d of %d members reachable, a quorum needs %d", s.at.Format(time.TimeOnly), s.reachable, s.members, need)
			}
			if s.members > 3 {
				t.Errorf("at %s raft had %d members: a replacement joined before the dead manager left", s.at.Format(time.TimeOnly), s.members)
			}
		}
		if s.down > 1 {
			t.Errorf("at %s %d managers were down at once", s.at.Format(time.TimeOnly), s.down)
		}
		if s.downAlive > 0 {
			t.Logf("at %s Swarm listed %d live managers down", s.at.Format(time.TimeOnly), s.downAlive)
		}
		if s.leadingAgents > 1 {
			t.Errorf("at %s %d agents led at once", s.at.Format(time.TimeOnly), s.leadingAgents)
		}
		if s.at.Before(phase2) && !s.leader {
			t.Errorf("at %s no leader while a follower was replaced (%s)", s.at.Format(time.TimeOnly), s.err)
		}
		if !s.at.Before(phase2) && s.leader && electionEnd.IsZero() {
			electionEnd = s.at
		}
		if !electionEnd.IsZero() && !s.leader {
			t.Errorf("at %s no leader after the new leader was elected (%s)", s.at.Format(time.TimeOnly), s.err)
		}
	}
	if electionEnd.IsZero() || electionEnd.Sub(phase2) > 20*time.Second {
		t.Errorf("a new leader took %s to be elected", electionEnd.Sub(phase2))
	}
	if answered < 50 {
		t.Errorf("only %d of %d samples answered: the membership was hardly watched", answered, len(samples))
	}
	if smallest != 2 {
		t.Errorf("the group never shrank to 2 members (smallest %d): no dead manager left before its replacement", smallest)
	}
	ns, err := h.nodes()
	if err != nil {
		t.Fatal(err)
	}
	members, reachable := 0, 0
	for _, n := range ns {
		if n.Role == "manager" {
			members++
			if n.Reachability == "reachable" {
				reachable++
			}
		}
	}
	if members != 3 || reachable != 3 {
		t.Errorf("raft has %d members, %d reachable, want 3 and 3 (no ghost)", members, reachable)
	}
	t.Logf("%d samples, %d answered; new leader elected %s after the old one died", len(samples), answered, electionEnd.Sub(phase2).Round(100*time.Millisecond))
}

// With 2 of 5 workers dead and max_unhealthy_percent 20 the circuit breaker
// opens: no replacement, and the agent says why. Bringing one back closes
// it and healing resumes.
func TestCircuitBreaker(t *testing.T) {
	h := newHarness(t, "cb", 1, true)
	// unhealthy_after outlasts the spread of Swarm's Down detection, so both
	// dead nodes are judged together.
	h.pool("web", 5, healing("cb/web", "5s"))
	ins := h.instances("web")
	h.kill(ins[0].ID)
	h.kill(ins[1].ID)
	h.nodeDown(ins[0].ID, 30*time.Second)
	h.nodeDown(ins[1].ID, 30*time.Second)
	var leader string
	h.waitFor("the breaker to open", 30*time.Second, func() (bool, string) {
		var n int
		n, leader = h.leaders()
		if n != 1 {
			return false, "no leader"
		}
		for _, p := range h.status(leader).Pools {
			if p.ID == "cb/web" {
				return p.Reason == string(decide.ReasonCircuitBreaker), p.Reason + ": " + p.Message
			}
		}
		return false, "pool not in status"
	})
	time.Sleep(3 * time.Second)
	if got := len(h.instances("web")); got != 5 {
		t.Fatalf("pool has %d instances while the breaker is open, want 5 (no replacement)", got)
	}
	if v, _ := metric(leader, `autarky_circuit_breaker_open{pool="cb/web"}`); v != 1 {
		t.Errorf("autarky_circuit_breaker_open = %v, want 1", v)
	}
	if err := h.c.Restart(context.Background(), ins[0].ID); err != nil {
		t.Fatal(err)
	}
	h.waitFor("healing to resume", 90*time.Second, func() (bool, string) { return h.settled("web", "worker", 5) })
	if v, _ := metric(leader, `autarky_circuit_breaker_open{pool="cb/web"}`); v != 0 {
		t.Errorf("autarky_circuit_breaker_open = %v after healing, want 0", v)
	}
}

// An agent that crashes between "replacement started" and "dead node
// removed" finishes the job after restart: no second replacement, no ghost.
// Also when it crashed before it could record which instance it started.
func TestCrashMidReplacement(t *testing.T) {
	for _, forget := range []bool{false, true} {
		t.Run(fmt.Sprintf("replacement_recorded=%v", !forget), func(t *testing.T) {
			h := newHarness(t, "cr", 1, false)
			h.pool("web", 2, healing("cr/web", "1s"))
			victim := h.instances("web")[0].ID
			h.kill(victim)
			h.nodeDown(victim, 30*time.Second)
			time.Sleep(1500 * time.Millisecond)

			a1 := h.inProcess(false)
			a1.Evaluate(context.Background())
			j := h.journal()
			if len(j.Entries) != 1 || j.Entries[0].Action.Kind != decide.ReplaceNode || j.Entries[0].Action.Replacement == "" {
				t.Fatalf("journal after the first evaluation: %+v", j)
			}
			if forget {
				j.Entries[0].Action.Replacement = ""
				if err := saveJournal(h.c, &j); err != nil {
					t.Fatal(err)
				}
			}
			// a1 "crashes" here; a2 starts with nothing but the store.
			a2 := h.inProcess(false)
			h.waitFor("the pool to heal under the restarted agent", time.Minute, func() (bool, string) {
				a2.Evaluate(context.Background())
				return h.settled("web", "worker", 2)
			})
			if got := len(h.instances("web")); got != 2 {
				t.Fatalf("%d instances, want 2: a replacement was repeated", got)
			}
			if j := h.journal(); len(j.Entries) != 0 {
				t.Fatalf("journal not empty after healing: %+v", j)
			}
		})
	}
}

// A replacement that never joins is terminated after join_timeout, and the
// pool backs off, longer each time.
func TestNeverJoins(t *testing.T) {
	h := newHarness(t, "nj", 1, false)
	hp := healing("nj/web", "1s")
	hp.JoinTimeout = "2s"
	h.pool("web", 1, hp)
	original := h.instances("web")[0].ID

	// Freeze every new instance of the pool as soon as its process exists:
	// a machine that boots and never joins.
	frozenIDs, stopFreezing := h.freezeNew("web", original)
	h.kill(original)
	h.nodeDown(original, 30*time.Second)
	a := h.inProcess(false)
	h.waitFor("two failed replacements", 90*time.Second, func() (bool, string) {
		a.Evaluate(context.Background())
		b := h.journal().Backoff["nj/web"]
		return b.Failures >= 2, fmt.Sprintf("backoff %+v", b)
	})
	stopFreezing()
	frozen := frozenIDs()
	b := h.journal().Backoff["nj/web"]
	if decide.BackoffDelay(b.Failures) <= decide.BackoffDelay(1) {
		t.Errorf("backoff did not grow: %d failures, delay %s", b.Failures, decide.BackoffDelay(b.Failures))
	}
	// The frozen instances were terminated, not left behind.
	left := 0
	for _, i := range h.instances("web") {
		if frozen[i.ID] {
			left++
		}
	}
	if left > 1 {
		t.Errorf("%d frozen instances left; each should be terminated after join_timeout", left)
	}
	// Once instances join again, the pool heals after the backoff.
	h.waitFor("the pool to heal after the backoff", 2*time.Minute, func() (bool, string) {
		for _, r := range h.records("web") {
			if frozen[r.ID] {
				_ = syscall.Kill(r.PID, syscall.SIGCONT)
			}
		}
		a.Evaluate(context.Background())
		return h.settled("web", "worker", 1)
	})
}

// --dry-run reports the decisions and changes nothing.
func TestDryRun(t *testing.T) {
	h := newHarness(t, "dr", 1, false)
	h.pool("web", 2, healing("dr/web", "1s"))
	victim := h.instances("web")[0].ID
	h.kill(victim)
	h.nodeDown(victim, 30*time.Second)
	time.Sleep(1500 * time.Millisecond)
	a := h.inProcess(true)
	for i := 0; i < 5; i++ {
		a.Evaluate(context.Background())
		time.Sleep(200 * time.Millisecond)
	}
	found := false
	for _, d := range a.Status().Decisions {
		if d.Kind == string(decide.ReplaceNode) && d.DryRun {
			found = true
		}
	}
	if !found {
		t.Fatalf("dry-run reported no replace_node decision: %+v", a.Status().Decisions)
	}
	if got := len(h.instances("web")); got != 2 {
		t.Fatalf("dry-run changed the pool: %d instances", got)
	}
	if j := h.journal(); len(j.Entries) != 0 {
		t.Fatalf("dry-run journaled actions: %+v", j)
	}
}
