package agent_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/agent"
	"github.com/autarky/terraform-provider-autarky/internal/decide"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

func scalingPolicy(poolID string, edit func(*policy.Scaling)) policy.Scaling {
	s := policy.DefaultScaling(poolID)
	s.CooldownUp, s.CooldownDown, s.ScaleInAfter, s.DrainTimeout = "1s", "1s", "2s", "30s"
	s.EvaluationInterval = "1s"
	edit(&s)
	return s
}

// scaleInTo1 gives a pool a scaling policy that shrinks it to one node as
// soon as the others have been unneeded for 1s (its only check is an alert
// that never fires), draining each for at most drainTimeout.
func (h *harness) scaleInTo1(poolID, drainTimeout string) {
	h.t.Helper()
	minSize := int64(1)
	h.scale(scalingPolicy(poolID, func(s *policy.Scaling) {
		s.Alert = []policy.AlertCheck{{Name: "never"}}
		s.MinSize = &minSize
		s.ScaleInAfter = "1s"
		s.DrainTimeout = drainTimeout
	}))
}

// draining reports whether a scale-in of pool (its id) drains a node: its
// journal entry records the drain's start.
func (h *harness) draining(poolID string) (bool, string) {
	j := h.journal()
	for _, e := range j.Entries {
		if strings.HasPrefix(e.Action.Key, "scale_in/"+poolID+"/") && !e.DrainStartedAt.IsZero() {
			return true, ""
		}
	}
	return false, fmt.Sprintf("no scale-in of %s draining: %+v", poolID, j.Entries)
}

func (h *harness) scale(s policy.Scaling) {
	h.t.Helper()
	if err := h.p.PutScalingPolicy(context.Background(), s); err != nil {
		h.t.Fatal(err)
	}
}

// evaluateUntil drives an in-process agent until cond holds.
func (h *harness) evaluateUntil(a *agent.Agent, what string, timeout time.Duration, cond func() (bool, string)) {
	h.t.Helper()
	h.waitFor(what, timeout, func() (bool, string) {
		a.Evaluate(context.Background())
		return cond()
	})
}

func (h *harness) scaling(a *agent.Agent, pool string) agent.ScaleStatus {
	for _, p := range a.Status().Pools {
		if p.ID == pool && p.Scaling != nil {
			return *p.Scaling
		}
	}
	return agent.ScaleStatus{}
}

func (h *harness) docker(args ...string) string {
	h.t.Helper()
	return testenv.Docker(h.t, h.records(policy.ManagerPoolName)[0].DockerHost, args...)
}

// stubborn runs a service "stubborn" of two tasks, one per node matching
// constraint, that ignore SIGTERM with an hour's grace: a drain of their
// node never finishes by itself.
func (h *harness) stubborn(constraint string) {
	h.t.Helper()
	h.docker("service", "create", "--detach", "--name", "stubborn", "--replicas", "2", "--stop-grace-period", "1h",
		"--constraint", constraint, "--replicas-max-per-node", "1", "autarky/workload:latest", "--ignore-sigterm")
	h.waitFor("stubborn tasks running", time.Minute, func() (bool, string) { return h.runningTasks("stubborn") == 2, "" })
}

func (h *harness) runningTasks(service string) int {
	out := h.docker("service", "ps", service, "--filter", "desired-state=running", "--format", "{{.CurrentState}}")
	return strings.Count(out, "Running")
}

// Tasks whose reservations do not fit grow the pool, from zero nodes, by
// as many nodes as they need; then they run.
func TestScalePendingTasks(t *testing.T) {
	h := newHarnessWith(t, "sp", 1, false, "1s", true)
	h.pool("web", 0, nil)
	// Set the pool's labels so the service's constraint names the pool.
	ctx := context.Background()
	h.editPool("web", func(p *policy.Pool) { p.Labels = map[string]string{"tier": "web"} })
	h.scale(scalingPolicy("sp/web", func(s *policy.Scaling) { s.PendingTasks = &policy.PendingTasksCheck{} }))
	a := h.inProcess(false)
	a.Evaluate(ctx)
	// Each task reserves most of a node's CPUs: 2 tasks need 2 nodes.
	cpus := mustAtoi(t, strings.TrimSpace(h.docker("info", "--format", "{{.NCPU}}")))
	reserve := fmt.Sprintf("%.1f", float64(cpus)-0.5)
	h.docker("service", "create", "--detach", "--name", "big", "--replicas", "2", "--reserve-cpu", reserve,
		"--constraint", "node.labels.tier==web", "autarky/workload:latest")
	h.evaluateUntil(a, "two nodes for two big tasks", time.Minute, func() (bool, string) {
		return len(h.instances("web")) == 2, fmt.Sprintf("%d instances; %+v", len(h.instances("web")), h.scaling(a, "sp/web"))
	})
	h.evaluateUntil(a, "the tasks to run", 2*time.Minute, func() (bool, string) {
		n := h.runningTasks("big")
		return n == 2, fmt.Sprintf("%d running", n)
	})
	// The same pending work never asks twice.
	for i := 0; i < 5; i++ {
		a.Evaluate(ctx)
	}
	if got := len(h.instances("web")); got != 2 {
		t.Fatalf("%d instances after the tasks run, want 2", got)
	}
}

func mustAtoi(t *testing.T, s string) int {
	var n int
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A gauge above target grows the pool; below target, after scale_in_after,
// the pool shrinks, draining first: every task of the service is
// rescheduled, none is lost.
func TestScalePrometheusTargetTracking(t *testing.T) {
	h := newHarnessWith(t, "st", 1, false, "1s", true)
	g := testenv.NewGauge(t, 1.0)
	prom := testenv.StartPrometheus(t, g.Addr)
	h.pool("web", 1, nil)
	target := 0.5
	h.scale(scalingPolicy("st/web", func(s *policy.Scaling) {
		s.Prometheus = []policy.PrometheusCheck{{Name: "load", Address: prom.Addr, Query: "app_load", TargetValue: &target}}
		s.MaxSampleAge = "5s"
	}))
	h.docker("service", "create", "--detach", "--name", "web", "--replicas", "4",
		"--constraint", "node.role==worker", "autarky/workload:latest")
	a := h.inProcess(false)
	// load 1.0 at target 0.5 with one node: two nodes.
	h.evaluateUntil(a, "scale out to 2", 90*time.Second, func() (bool, string) {
		return len(h.instances("web")) == 2, fmt.Sprintf("%+v", h.scaling(a, "st/web"))
	})
	h.evaluateUntil(a, "4 tasks running", time.Minute, func() (bool, string) { return h.runningTasks("web") == 4, "" })

	// Load drops: after scale_in_after, back to one node, drained first.
	g.Set(0.2)
	h.evaluateUntil(a, "scale in to 1", 2*time.Minute, func() (bool, string) {
		return len(h.instances("web")) == 1, fmt.Sprintf("%+v", h.scaling(a, "st/web"))
	})
	h.evaluateUntil(a, "4 tasks running again", time.Minute, func() (bool, string) { return h.runningTasks("web") == 4, "" })
	// No task failed: each one that left the removed node was shut down by
	// the drain, never killed with its node.
	out := h.docker("service", "ps", "web", "--format", "{{.CurrentState}} {{.Error}}")
	if strings.Contains(out, "Failed") || strings.Contains(out, "Orphaned") {
		t.Fatalf("a task was lost by a node removal:\n%s", out)
	}
}

// Prometheus stopped, the series gone, or the exporter frozen: no scale-in,
// the check is reported stale, and healing still works meanwhile.
func TestScaleHoldsOnBadData(t *testing.T) {
	h := newHarnessWith(t, "sb", 1, false, "1s", false)
	g := testenv.NewGauge(t, 0.1)
	prom := testenv.StartPrometheus(t, g.Addr)
	h.pool("web", 3, healing("sb/web", "1s"))
	target := 0.5
	// A low load would shrink the pool, if the data could be trusted.
	h.scale(scalingPolicy("sb/web", func(s *policy.Scaling) {
		s.Prometheus = []policy.PrometheusCheck{{Name: "load", Address: prom.Addr, Query: "app_load", TargetValue: &target}}
		s.MaxSampleAge = "3s"
		s.ScaleInAfter = "1s"
		s.MinSize = new(int64)
	}))
	a := h.inProcess(false)
	stale := func(what string) {
		t.Helper()
		h.evaluateUntil(a, what+": the check reported stale", 30*time.Second, func() (bool, string) {
			st := h.scaling(a, "sb/web")
			for _, c := range st.Checks {
				if c.Name == "load" && !c.Trusted {
					return true, ""
				}
			}
			return false, fmt.Sprintf("%+v", st)
		})
		for i := 0; i < 6; i++ {
			a.Evaluate(context.Background())
			time.Sleep(250 * time.Millisecond)
		}
		if got := len(h.instances("web")); got != 3 {
			t.Fatalf("%s: the pool shrank to %d on untrusted data", what, got)
		}
	}
	// The exporter hangs: Prometheus keeps the last value, but it is stale.
	g.Freeze(true)
	stale("frozen exporter")
	// Healing still works while scaling holds.
	victim := h.instances("web")[0].ID
	h.kill(victim)
	h.nodeDown(victim, 30*time.Second)
	h.evaluateUntil(a, "healing while scaling holds", time.Minute, func() (bool, string) { return h.settled("web", "worker", 3) })
	g.Freeze(false)

	// The series disappears (the query names nothing).
	if err := h.p.PutScalingPolicy(context.Background(), scalingPolicy("sb/web", func(s *policy.Scaling) {
		s.Prometheus = []policy.PrometheusCheck{{Name: "load", Address: prom.Addr, Query: "app_load_gone", TargetValue: &target}}
		s.ScaleInAfter = "1s"
	})); err != nil {
		t.Fatal(err)
	}
	stale("series gone")

	// Prometheus stops.
	if err := h.p.PutScalingPolicy(context.Background(), scalingPolicy("sb/web", func(s *policy.Scaling) {
		s.Prometheus = []policy.PrometheusCheck{{Name: "load", Address: prom.Addr, Query: "app_load", TargetValue: &target}}
		s.ScaleInAfter = "1s"
	})); err != nil {
		t.Fatal(err)
	}
	prom.Stop()
	stale("Prometheus stopped")

	// A query that does not parse never reaches the agent: the store
	// validates the policy as the provider does, naming the check.
	prom.Start(t)
	if err := h.p.PutScalingPolicy(context.Background(), scalingPolicy("sb/web", func(s *policy.Scaling) {
		s.Prometheus = []policy.PrometheusCheck{{Name: "load", Address: prom.Addr, Query: "avg(rate(app_load[1m]", TargetValue: &target}}
	})); err == nil || !strings.Contains(err.Error(), `prometheus[0].query: check "load"`) {
		t.Fatalf("a query that does not parse was stored: %v", err)
	}
	// One that parses (an experimental function the parser knows) but
	// this Prometheus rejects is reported on the first evaluation.
	if err := h.p.PutScalingPolicy(context.Background(), scalingPolicy("sb/web", func(s *policy.Scaling) {
		s.Prometheus = []policy.PrometheusCheck{{Name: "load", Address: prom.Addr, Query: `sort_by_label(app_load, "job")`, TargetValue: &target}}
	})); err != nil {
		t.Fatal(err)
	}
	a.Evaluate(context.Background())
	st := h.scaling(a, "sb/web")
	if len(st.Checks) != 1 || !strings.Contains(st.Checks[0].Reason, "rejected the query") {
		t.Fatalf("a rejected query is not reported: %+v", st)
	}
}

// An alert posted to /v1/alerts grows the pool by its step, once, and a
// second alert within cooldown_up waits.
func TestScaleAlert(t *testing.T) {
	h := newHarnessWith(t, "sa", 1, false, "1s", false)
	h.pool("web", 1, nil)
	h.scale(scalingPolicy("sa/web", func(s *policy.Scaling) {
		s.Alert = []policy.AlertCheck{{Name: "WebOverloaded", Step: 2}}
		s.CooldownUp = "1h"
		s.ScaleInAfter = "1h"
	}))
	a := h.inProcess(false)
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	post := func() int {
		body := `{"version":"4","status":"firing","receiver":"autarky","alerts":[{"status":"firing","labels":{"alertname":"WebOverloaded","severity":"page"},"startsAt":"2026-01-01T00:00:00Z"}]}`
		resp, err := http.Post(srv.URL+"/v1/alerts", "application/json", bytes.NewBufferString(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(); code != http.StatusAccepted {
		t.Fatalf("POST /v1/alerts: %d", code)
	}
	a.Evaluate(context.Background())
	if got := len(h.instances("web")); got != 3 {
		t.Fatalf("after one alert the pool has %d instances, want 1 + step 2", got)
	}
	h.waitFor("the new nodes Ready", time.Minute, func() (bool, string) { return h.settled("web", "worker", 3) })
	if code := post(); code != http.StatusAccepted {
		t.Fatalf("POST /v1/alerts: %d", code)
	}
	for i := 0; i < 3; i++ {
		a.Evaluate(context.Background())
	}
	if got := len(h.instances("web")); got != 3 {
		t.Fatalf("a second alert within cooldown_up grew the pool to %d", got)
	}
	if st := h.scaling(a, "sa/web"); st.Code != string(decide.CodeCooldownUp) {
		t.Fatalf("hold not explained as cooldown: %+v", st)
	}
}

// Beyond loopback /v1/alerts needs the bearer token; without it, 401.
func TestAlertsNeedTokenBeyondLoopback(t *testing.T) {
	h := newHarnessWith(t, "at", 1, false, "1s", false)
	for _, c := range []struct {
		listen, token, sent string
		want                int
	}{
		{"0.0.0.0:9910", "", "", http.StatusUnauthorized},
		{"0.0.0.0:9910", "s3cret", "", http.StatusUnauthorized},
		{"0.0.0.0:9910", "s3cret", "wrong", http.StatusUnauthorized},
		{"0.0.0.0:9910", "s3cret", "s3cret", http.StatusAccepted},
		{"127.0.0.1:9910", "", "", http.StatusAccepted},
	} {
		a, err := agent.New(agent.Config{DockerHost: h.records(policy.ManagerPoolName)[0].DockerHost, Listen: c.listen, AlertToken: c.token}, h.c)
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodPost, "/v1/alerts", strings.NewReader(`{"version":"4","alerts":[]}`))
		if c.sent != "" {
			req.Header.Set("Authorization", "Bearer "+c.sent)
		}
		rec := httptest.NewRecorder()
		a.Handler().ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("listen %s token %q sent %q: %d, want %d", c.listen, c.token, c.sent, rec.Code, c.want)
		}
	}
}

// A drain that never finishes (a task ignoring SIGTERM with a long grace
// period) ends at drain_timeout; the removal is recorded as forced.
func TestScaleInForcedAfterDrainTimeout(t *testing.T) {
	h := newHarnessWith(t, "sf", 1, false, "1s", true)
	h.pool("web", 2, nil)
	h.stubborn("node.role==worker")
	h.scaleInTo1("sf/web", "3s")
	a := h.inProcess(false)
	start := time.Now()
	// The removal is over, and recorded, once its journal entry is gone: the
	// instance leaves the listing before the node is removed from Swarm.
	h.evaluateUntil(a, "scale in to 1", 2*time.Minute, func() (bool, string) {
		return len(h.instances("web")) == 1 && len(h.journal().Entries) == 0, fmt.Sprintf("%+v", h.scaling(a, "sf/web"))
	})
	if time.Since(start) < 3*time.Second {
		t.Fatalf("the node went after %s, before drain_timeout", time.Since(start))
	}
	forced := false
	for _, d := range a.Status().Decisions {
		if d.Code == "forced" {
			forced = true
		}
	}
	if !forced {
		t.Fatalf("the removal is not recorded as forced: %+v", a.Status().Decisions)
	}
}

// After a scale-out, services labelled autarky.rebalance=true are spread
// onto the new nodes (Swarm does not rebalance by itself).
func TestScaleOutRebalances(t *testing.T) {
	h := newHarnessWith(t, "rb", 1, false, "1s", true)
	h.pool("web", 1, nil)
	h.docker("service", "create", "--detach", "--name", "spread", "--replicas", "2", "--label", "autarky.rebalance=true",
		"--constraint", "node.role==worker", "autarky/workload:latest")
	h.docker("service", "create", "--detach", "--name", "stay", "--replicas", "2",
		"--constraint", "node.role==worker", "autarky/workload:latest")
	h.waitFor("tasks running on the one worker", time.Minute, func() (bool, string) {
		return h.runningTasks("spread") == 2 && h.runningTasks("stay") == 2, ""
	})
	h.scale(scalingPolicy("rb/web", func(s *policy.Scaling) {
		s.Alert = []policy.AlertCheck{{Name: "Busy"}}
		s.ScaleInAfter = "1h"
	}))
	a := h.inProcess(false)
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/v1/alerts", "application/json", strings.NewReader(`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"Busy"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	nodesOf := func(service string) map[string]bool {
		out := h.docker("service", "ps", service, "--filter", "desired-state=running", "--format", "{{.Node}} {{.CurrentState}}")
		nodes := map[string]bool{}
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) > 1 && f[1] == "Running" {
				nodes[f[0]] = true
			}
		}
		return nodes
	}
	h.evaluateUntil(a, "the labelled service spread over two nodes", 90*time.Second, func() (bool, string) {
		n := nodesOf("spread")
		return len(n) == 2 && h.runningTasks("spread") == 2, fmt.Sprintf("spread on %v", n)
	})
	if n := nodesOf("stay"); len(n) != 1 {
		t.Fatalf("an unlabelled service was rebalanced: on %v", n)
	}
}
