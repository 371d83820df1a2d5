package agent_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/agent"
	"github.com/autarky/terraform-provider-autarky/internal/decide"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// With two of three managers dead, quorum is lost: the agent takes no
// action at all, says so loudly in /v1/status and in autarky_quorum, and
// never forces a new cluster.
func TestQuorumLostHoldsEverything(t *testing.T) {
	h := newHarness(t, "ql", 3, false)
	h.heal(*healing("ql/managers", "1s"))
	h.pool("web", 1, healing("ql/web", "1s"))
	mgrs := h.records(policy.ManagerPoolName)
	survivor := mgrs[0]
	for _, r := range mgrs[1:] {
		h.kill(r.ID)
	}
	h.kill(h.instances("web")[0].ID)
	a, err := agent.New(agent.Config{DockerHost: survivor.DockerHost, Listen: "127.0.0.1:0"}, h.c)
	if err != nil {
		t.Fatal(err)
	}
	before := len(h.instances(""))
	h.waitFor("the survivor to report quorum lost", time.Minute, func() (bool, string) {
		a.Evaluate(context.Background())
		s := a.Status()
		return strings.Contains(s.Error, "quorum lost"), s.Error
	})
	for i := 0; i < 5; i++ {
		a.Evaluate(context.Background())
		time.Sleep(300 * time.Millisecond)
	}
	if got := len(h.instances("")); got != before {
		t.Fatalf("the agent acted without quorum: %d instances, had %d", got, before)
	}
	found := false
	for _, d := range a.Status().Decisions {
		if d.Code == string(decide.ReasonQuorum) && strings.Contains(d.Message, "never uses --force-new-cluster") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no quorum hold in the decisions: %+v", a.Status().Decisions)
	}
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), "autarky_quorum 0") || !strings.Contains(rec.Body.String(), "autarky_leader 0") {
		t.Fatalf("metrics do not say quorum is lost:\n%s", grep(rec.Body.String(), "autarky_"))
	}
	// `autarky-agent status` prints it for a person.
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	var out strings.Builder
	if err := agent.PrintRemoteStatus(&out, srv.URL, ""); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "quorum LOST") || !strings.Contains(out.String(), "cluster ql") {
		t.Fatalf("status for a person:\n%s", out.String())
	}
}

func grep(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
