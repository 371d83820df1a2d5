package agent_test

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/autarky/terraform-provider-autarky/internal/agent"
	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/swarm"
)

// What the cloud harnesses (aws_test.go, gcp_test.go) share: an agent
// beside the harness's leader, the journal drained, and a pool's
// instances each a node.

// startAgent runs an agent for cl beside the manager at host until the
// test ends.
func startAgent(t testing.TB, host string, cl platform.Cluster) *agent.Agent {
	t.Helper()
	a, err := agent.New(agent.Config{DockerHost: host, Listen: "127.0.0.1:0", EvaluationInterval: 500 * time.Millisecond, DrainTimeout: 10 * time.Second,
		Logger: hclog.New(&hclog.LoggerOptions{Name: "agent", Output: testWriter{t}, Level: hclog.Info})}, cl)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return a
}

// waitJournalEmpty waits until the agent has finished every action of
// cl's journal.
func (h *harness) waitJournalEmpty(cl platform.Cluster, timeout time.Duration) {
	h.t.Helper()
	h.waitFor("the agent's journal to be empty", timeout, func() (bool, string) {
		var j agent.Journal
		if _, err := cl.LoadJournal(context.Background(), &j); err != nil {
			return false, err.Error()
		}
		return len(j.Entries) == 0, itoa(len(j.Entries)) + " entries"
	})
}

// waitInstanceNodes waits until the cloud lists n instances of pool
// (listed), each with a node that is up, and no other node counts for the
// pool. judge says whether a node counts for the pool, and whether it is
// up.
func (h *harness) waitInstanceNodes(pool string, n int, timeout time.Duration, listed func() (map[string]bool, error), judge func(swarm.Node) (counts, up bool)) {
	h.t.Helper()
	h.waitFor("pool "+pool+" to have its nodes", timeout, func() (bool, string) {
		ids, err := listed()
		if err != nil {
			return false, err.Error()
		}
		ns, err := h.nodes()
		if err != nil {
			return false, err.Error()
		}
		ready, other := 0, 0
		for _, nd := range ns {
			counts, up := judge(nd)
			switch {
			case !counts:
			case ids[nd.EngineLabels[policy.LabelInstance]] && up:
				ready++
			default:
				other++
			}
		}
		return len(ids) == n && ready == n && other == 0, "listed " + itoa(len(ids)) + ", ready " + itoa(ready) + ", other nodes " + itoa(other)
	})
}
