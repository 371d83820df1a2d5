package agent_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/autarky/terraform-provider-autarky/internal/agent"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// inProcessVia is an in-process agent whose engine endpoint is host (a
// fault proxy in front of the first manager).
func (h *harness) inProcessVia(host string) *agent.Agent {
	h.t.Helper()
	a, err := agent.New(agent.Config{
		DockerHost: host, Listen: "127.0.0.1:0", EvaluationInterval: time.Second, DrainTimeout: 3 * time.Second,
		Logger: hclog.New(&hclog.LoggerOptions{Name: "agent", Output: testWriter{h.t}, Level: hclog.Debug}),
	}, h.c)
	if err != nil {
		h.t.Fatal(err)
	}
	return a
}

// proxy puts a fault proxy in front of the first manager's engine.
func (h *harness) proxy() *testenv.DockerProxy {
	return testenv.NewDockerProxy(h.t, h.records(policy.ManagerPoolName)[0].DockerHost)
}

// nodeOf returns the swarm node id of instance id.
func (h *harness) nodeOf(id string) string {
	h.t.Helper()
	ns, err := h.nodes()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, n := range ns {
		if n.EngineLabels[policy.LabelInstance] == id {
			return n.ID
		}
	}
	h.t.Fatalf("no node for instance %s", id)
	return ""
}

func hasDecision(s agent.Status, code string) bool {
	for _, d := range s.Decisions {
		if d.Code == code {
			return true
		}
	}
	return false
}

// Item 1: an engine that refuses the update that starts a drain never ends
// in a forced removal. The node keeps its task and stays while the refusal
// lasts, well past drain_timeout; the pool says why it holds; the step is
// retried with backoff, and once the engine takes the drain the scale-in
// finishes.
func TestDrainRefusedNeverForcesRemoval(t *testing.T) {
	h := newHarnessWith(t, "dr", 1, false, "1s", true)
	h.pool("web", 2, nil)
	h.docker("service", "create", "--detach", "--name", "busy", "--replicas", "2",
		"--constraint", "node.role==worker", "--replicas-max-per-node", "1", "autarky/workload:latest")
	h.waitFor("busy tasks running", time.Minute, func() (bool, string) { return h.runningTasks("busy") == 2, "" })
	p := h.proxy()
	p.Fault(func(c testenv.DockerCall) *testenv.DockerFault {
		if c.Method == http.MethodPost && strings.HasPrefix(c.Path, "/nodes/") && strings.HasSuffix(c.Path, "/update") {
			return testenv.DockerError(http.StatusInternalServerError, "injected: rpc error: the update was refused")
		}
		return nil
	})
	h.scaleInTo1("dr/web", "2s")
	a := h.inProcessVia(p.Host)
	h.evaluateUntil(a, "a refused drain retried at least twice", time.Minute, func() (bool, string) {
		j := h.journal()
		return len(j.Entries) == 1 && j.Entries[0].Attempts >= 2, fmt.Sprintf("%+v", j.Entries)
	})
	// Well past drain_timeout (2s): both nodes and both tasks are still there.
	deadline := time.Now().Add(6 * time.Second)
	for time.Now().Before(deadline) {
		a.Evaluate(context.Background())
		time.Sleep(300 * time.Millisecond)
	}
	if got := len(h.instances("web")); got != 2 {
		t.Fatalf("%d instances: a node whose drain never started was removed", got)
	}
	if n := h.runningTasks("busy"); n != 2 {
		t.Fatalf("%d busy tasks running, want 2: a task was killed", n)
	}
	st := a.Status()
	if !hasDecision(st, "drain_not_started") {
		t.Fatalf("no drain_not_started decision: %+v", st.Decisions)
	}
	if hasDecision(st, "forced") {
		t.Fatalf("a removal was forced: %+v", st.Decisions)
	}
	held := false
	for _, ps := range st.Pools {
		if ps.ID == "dr/web" && len(ps.Stuck) > 0 && strings.Contains(ps.Stuck[0], "drain could not start") {
			held = true
		}
	}
	if !held {
		t.Fatalf("the pool does not say why it holds: %+v", st.Pools)
	}
	// The engine takes drains again: the scale-in finishes, drained.
	p.Fault(nil)
	h.evaluateUntil(a, "scale in to 1", time.Minute, func() (bool, string) {
		return len(h.instances("web")) == 1 && len(h.journal().Entries) == 0, fmt.Sprintf("%+v", h.journal().Entries)
	})
}

// Item 2: an entry whose step keeps failing (an engine that refuses
// `node rm` of one node) is retried with backoff while every other pool
// goes on healing; /healthz stays ok because evaluations succeed. When
// evaluations themselves keep failing, /healthz answers 503.
func TestStuckEntryDoesNotStopOtherPools(t *testing.T) {
	h := newHarness(t, "se", 1, false)
	// Two of four nodes fail here on purpose: the circuit breaker must not
	// be what holds api.
	for _, pool := range []string{"web", "api"} {
		hp := healing("se/"+pool, "1s")
		hp.MaxUnhealthyPercent = 100
		h.pool(pool, 1, hp)
	}
	webVictim := h.instances("web")[0].ID
	webNode := h.nodeOf(webVictim)
	p := h.proxy()
	p.Fault(func(c testenv.DockerCall) *testenv.DockerFault {
		if c.Method == http.MethodDelete && c.Path == "/nodes/"+webNode {
			return testenv.DockerError(http.StatusInternalServerError, "injected: node rm refused")
		}
		return nil
	})
	a := h.inProcessVia(p.Host)
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()

	h.kill(webVictim)
	h.nodeDown(webVictim, 30*time.Second)
	h.evaluateUntil(a, "the web removal failing and retried", 90*time.Second, func() (bool, string) {
		for _, e := range h.journal().Entries {
			if e.Action.NodeID == webNode && e.Action.Kind == "remove_node" && e.Attempts >= 1 {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", h.journal().Entries)
	})
	apiVictim := h.instances("api")[0].ID
	h.kill(apiVictim)
	h.nodeDown(apiVictim, 30*time.Second)
	h.evaluateUntil(a, "api healed while web's removal keeps failing", 90*time.Second, func() (bool, string) {
		return h.settled("api", "worker", 1)
	})
	if p.Calls(http.MethodDelete, "/nodes/"+webNode) < 2 {
		t.Fatalf("the failing node rm was not retried")
	}
	if body, code := getCode(srv.URL + "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz %d while evaluations succeed: %s", code, body)
	}
	// Released, web finishes too.
	p.Fault(nil)
	h.evaluateUntil(a, "web's dead node removed", time.Minute, func() (bool, string) {
		ok, detail := h.settled("web", "worker", 1)
		return ok && len(h.journal().Entries) == 0, detail
	})

	// Evaluations that keep failing (the engine's node list answers 500)
	// make /healthz answer 503 with the reason; it recovers with them.
	p.Fault(func(c testenv.DockerCall) *testenv.DockerFault {
		if c.Method == http.MethodGet && c.Path == "/nodes" {
			return testenv.DockerError(http.StatusInternalServerError, "injected: node list failed")
		}
		return nil
	})
	for i := 0; i < 3; i++ {
		a.Evaluate(context.Background())
	}
	if body, code := getCode(srv.URL + "/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "node list failed") {
		t.Fatalf("/healthz after 3 failed evaluations: %d %s", code, body)
	}
	p.Fault(nil)
	a.Evaluate(context.Background())
	if body, code := getCode(srv.URL + "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz after a good evaluation: %d %s", code, body)
	}
}

func getCode(url string) (string, int) {
	resp, err := http.Get(url)
	if err != nil {
		return err.Error(), 0
	}
	defer resp.Body.Close()
	var sb strings.Builder
	b := make([]byte, 4096)
	n, _ := resp.Body.Read(b)
	sb.Write(b[:n])
	return sb.String(), resp.StatusCode
}

// Item 2: a journal that cannot be read, with a replacement in flight, is
// set aside for a person (kept, named in the log and /v1/status) and the
// agent rebuilds from Swarm and the platform without repeating the
// replacement: the pool heals with exactly one new instance.
func TestCorruptJournalSetAside(t *testing.T) {
	h := newHarness(t, "cj", 1, false)
	h.pool("web", 2, healing("cj/web", "1s"))
	victim := h.instances("web")[0].ID
	h.kill(victim)
	h.nodeDown(victim, 30*time.Second)
	time.Sleep(1500 * time.Millisecond)
	a1 := h.inProcess(false)
	h.evaluateUntil(a1, "a replacement recorded", 30*time.Second, func() (bool, string) {
		j := h.journal()
		return len(j.Entries) == 1 && j.Entries[0].Action.Replacement != "", fmt.Sprintf("%+v", j)
	})
	// a1 crashes and the journal is torn.
	journal := filepath.Join(h.stateDir, "clusters", "cj", "journal.json")
	garbage := []byte(`{"entries":[{"action":{"Kind":"replace_no`)
	if err := os.WriteFile(journal, garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	a2 := h.inProcess(false)
	srv := httptest.NewServer(a2.Handler())
	defer srv.Close()
	h.evaluateUntil(a2, "the pool to heal after the journal was set aside", time.Minute, func() (bool, string) {
		return h.settled("web", "worker", 2)
	})
	if got := len(h.instances("web")); got != 2 {
		t.Fatalf("%d instances, want 2: the replacement was repeated", got)
	}
	st := a2.Status()
	if len(st.JournalSetAside) != 1 {
		t.Fatalf("status does not name the set-aside journal: %+v", st)
	}
	kept, err := os.ReadFile(st.JournalSetAside[0])
	if err != nil || string(kept) != string(garbage) {
		t.Fatalf("the unreadable journal was not kept as it was: %q %v", kept, err)
	}
	if _, code := getCode(srv.URL + "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz %d once the journal was set aside and rebuilt", code)
	}
	if !hasDecision(st, "set_aside") {
		t.Fatalf("no set_aside decision: %+v", st.Decisions)
	}
}

// Item 2: a follower that finds the journal unreadable answers /healthz
// with 503 and says why, and never sets it aside itself (only the leader
// acts); once the leader has set it aside, the follower is healthy again.
func TestFollowerUnreadableJournal(t *testing.T) {
	h := newHarness(t, "fj", 3, false)
	followerHost := h.followerHost()
	follower := h.inProcessVia(followerHost)
	srv := httptest.NewServer(follower.Handler())
	defer srv.Close()
	journal := filepath.Join(h.stateDir, "clusters", "fj", "journal.json")
	if err := os.WriteFile(journal, []byte(`{"entries":[`), 0o600); err != nil {
		t.Fatal(err)
	}
	follower.Evaluate(context.Background())
	if body, code := getCode(srv.URL + "/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "journal unreadable") {
		t.Fatalf("/healthz of a follower with an unreadable journal: %d %s", code, body)
	}
	if _, err := os.Stat(journal); err != nil {
		t.Fatalf("the follower touched the journal: %v", err)
	}
	h.inProcess(false).Evaluate(context.Background()) // the leader beside the first manager
	follower.Evaluate(context.Background())
	if body, code := getCode(srv.URL + "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz of the follower once the leader set the journal aside: %d %s", code, body)
	}
}
