package agent_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// Issue 10 item 4 (reliability scenario S6): a restarted agent whose
// manager answers the first task listings with no tasks at all — every
// node looks idle on such a listing — scales nothing in on it. The pool's
// two nodes each run a task reserving most of a node's CPU, so both are
// needed; the policy would scale in to 1 after one second unneeded. The
// task listing is empty for the agent's first six evaluations, while the
// service list still shows the service wanting 2 replicas: the view is
// incomplete, the scale-in holds with view_incomplete, and no node drains.
// Once the listing is whole again the nodes are needed and stay.
func TestPartialViewAfterRestartNoScaleIn(t *testing.T) {
	h := newHarnessWith(t, "pv", 1, false, "500ms", true)
	h.pool("batch", 2, nil)
	cpus := strings.TrimSpace(h.docker("node", "inspect", "--format", "{{.Description.Resources.NanoCPUs}}", h.nodeOf(h.instances("batch")[0].ID)))
	var nano int64
	if _, err := fmt.Sscan(cpus, &nano); err != nil || nano <= 0 {
		t.Fatalf("node CPUs %q: %v", cpus, err)
	}
	// Each task reserves 60 % of a node's CPU: one per node, both needed.
	reserve := fmt.Sprintf("%.2f", 0.6*float64(nano)/1e9)
	h.docker("service", "create", "--detach", "--name", "busy", "--replicas", "2", "--reserve-cpu", reserve,
		"--constraint", "node.labels.autarky.pool==batch", "autarky/workload:latest")
	h.waitFor("busy tasks running", time.Minute, func() (bool, string) { return h.runningTasks("busy") == 2, "" })
	h.scaleInTo1("pv/batch", "5s")

	// The restart: a new agent whose manager's first task listings are empty.
	px := h.proxy()
	var emptied atomic.Int32
	px.Fault(func(c testenv.DockerCall) *testenv.DockerFault {
		if c.Method == "GET" && c.Path == "/tasks" && emptied.Load() < 6 {
			emptied.Add(1)
			return &testenv.DockerFault{Status: 200, Body: "[]"}
		}
		return nil
	})
	a := h.inProcessVia(px.Host)
	held := false
	for i := 0; i < 8; i++ {
		a.Evaluate(context.Background())
		s := h.scaling(a, "pv/batch")
		t.Logf("evaluation %d: %s %d->%d %s: %s", i+1, s.Direction, s.From, s.To, s.Code, s.Message)
		if s.Code == "view_incomplete" {
			held = true
		}
		if len(h.journal().Entries) != 0 {
			t.Fatalf("evaluation %d on an incomplete task listing started %+v", i+1, h.journal().Entries)
		}
		time.Sleep(1100 * time.Millisecond) // past scale_in_after
	}
	if emptied.Load() < 6 {
		t.Fatalf("only %d task listings were emptied: the test did not exercise the fault", emptied.Load())
	}
	if !held {
		t.Fatal("no scaling decision said view_incomplete")
	}
	// The listing is whole again: both nodes are needed and stay.
	for i := 0; i < 3; i++ {
		a.Evaluate(context.Background())
		time.Sleep(1100 * time.Millisecond)
	}
	if s := h.scaling(a, "pv/batch"); s.Code == "view_incomplete" || s.To != 2 {
		t.Fatalf("with the whole listing the pool should hold at 2 nodes: %+v", s)
	}
	if n := len(h.instances("batch")); n != 2 || len(h.journal().Entries) != 0 {
		t.Fatalf("instances %d, journal %+v: a needed node was removed", n, h.journal().Entries)
	}
}

// A drain in progress reads a task listing that lacks the services' tasks
// (the manager restarted under it): the drain is not over, the busy node
// is not terminated. Its stubborn task ignores SIGTERM, so only a listing
// that hides it could make the node look drained before drain_timeout.
func TestPartialViewDoesNotEndADrain(t *testing.T) {
	h := newHarnessWith(t, "pd", 1, false, "500ms", true)
	h.pool("batch", 2, nil)
	h.stubborn("node.labels.autarky.pool==batch")
	h.scaleInTo1("pd/batch", "3m")
	px := h.proxy()
	a := h.inProcessVia(px.Host)
	h.evaluateUntil(a, "a batch node draining", time.Minute, func() (bool, string) { return h.draining("pd/batch") })
	var emptied atomic.Int32
	px.Fault(func(c testenv.DockerCall) *testenv.DockerFault {
		if c.Method == "GET" && c.Path == "/tasks" {
			emptied.Add(1)
			return &testenv.DockerFault{Status: 200, Body: "[]"}
		}
		return nil
	})
	// 20 s: a local instance whose tasks ignore SIGTERM takes about 10 s
	// to terminate, so a drain wrongly ended shows within this.
	for i := 0; i < 20; i++ {
		a.Evaluate(context.Background())
		time.Sleep(time.Second)
	}
	if emptied.Load() < 6 {
		t.Fatalf("only %d task listings were emptied", emptied.Load())
	}
	if n := len(h.instances("batch")); n != 2 {
		t.Fatalf("%d batch instances left: the draining node was terminated on an empty task listing", n)
	}
	if draining, detail := h.draining("pd/batch"); !draining {
		t.Fatalf("the drain ended on an empty task listing: %s", detail)
	}
	px.Fault(nil)
}
