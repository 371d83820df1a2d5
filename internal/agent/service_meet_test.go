package agent_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
	"github.com/autarky/terraform-provider-autarky/internal/workload"
)

// editPool changes a pool's declaration as `terraform apply` would.
func (h *harness) editPool(name string, edit func(*policy.Pool)) {
	h.t.Helper()
	ctx := context.Background()
	pool, _, err := h.p.ReadPool(ctx, h.name, name)
	if err != nil {
		h.t.Fatal(err)
	}
	edit(&pool)
	if _, _, err := h.p.UpdatePool(ctx, pool, time.Minute); err != nil {
		h.t.Fatal(err)
	}
}

// startWorkload runs the workload program (inside the agent's binary) on
// a free loopback port, for Prometheus to scrape its load gauge, and
// returns its address.
func startWorkload(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(agentBin, "workload", "--listen", addr, "--load", "1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
			resp.Body.Close()
			return addr
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the workload at %s does not answer", addr)
	return ""
}

func setLoad(t *testing.T, addr string, v float64) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, "http://"+addr+"/load", strings.NewReader(fmt.Sprint(v)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("PUT /load %v: %d", v, resp.StatusCode)
	}
}

// The two halves meet: a load step on the workload's gauge, read by a real
// Prometheus, grows a service's replicas (its labels' target tracking);
// the replicas that do not fit pend and grow the node pool
// (pending_tasks); every task runs. The load drops: the replicas shrink,
// the emptied nodes are drained and removed after scale_in_after, and no
// task is lost. The reaction times are logged.
func TestServiceAndNodeScalingMeet(t *testing.T) {
	h := newHarnessWith(t, "sm", 1, false, "1s", true)
	h.pool("web", 1, nil)
	h.editPool("web", func(p *policy.Pool) { p.Labels, p.MaxSize = map[string]string{"tier": "web"}, 3 })
	minSize := int64(1)
	h.scale(scalingPolicy("sm/web", func(s *policy.Scaling) {
		s.PendingTasks = &policy.PendingTasksCheck{}
		s.MinSize = &minSize
		s.ScaleInAfter = "2s"
	}))
	h.waitFor("the web node Ready", time.Minute, func() (bool, string) { return h.settled("web", "worker", 1) })

	a := h.inProcess(false)
	agentSrv := httptest.NewServer(a.Handler())
	defer agentSrv.Close()
	load := startWorkload(t)
	prom := testenv.StartPrometheus(t, load, strings.TrimPrefix(agentSrv.URL, "http://"))
	// The load per running replica: the workload's gauge is the demand in
	// replicas' worth, and the agent exports the replicas running. Each
	// replica reserves 0.9 of a CPU, so two fit on a node.
	cpus := mustAtoi(t, strings.TrimSpace(h.docker("info", "--format", "{{.NCPU}}")))
	if cpus < 2 {
		t.Fatalf("the nodes have %d CPU: this test needs 2, to fit two replicas of 0.9 CPU on one node", cpus)
	}
	reserve := fmt.Sprintf("%.2f", float64(cpus)/2-0.1)
	query := fmt.Sprintf(`%s / scalar(autarky_service_running_replicas{service="web"})`, workload.LoadMetric)
	h.docker("service", "create", "--detach", "--name", "web", "--replicas", "1", "--reserve-cpu", reserve,
		"--constraint", "node.labels.tier==web", "--stop-grace-period", "1s",
		"--label", "autarky.replicas.max=5", "--label", "autarky.metric.address="+prom.Addr,
		"--label", "autarky.metric.query="+query, "--label", "autarky.metric.target=1",
		"--label", "autarky.scale.cooldown_up=2s", "--label", "autarky.scale.cooldown_down=5s",
		"--label", "autarky.scale.max_sample_age=5s", "autarky/workload:latest")
	h.evaluateUntil(a, "web running at its load of 1", 2*time.Minute, func() (bool, string) {
		st := serviceStatus(a, "web")
		return h.runningTasks("web") == 1 && st.Code == "within_target", fmt.Sprintf("%+v", st)
	})

	// A load step: 5 replicas' worth.
	start := time.Now()
	setLoad(t, load, 5)
	h.evaluateUntil(a, "a new replica running", 2*time.Minute, func() (bool, string) {
		return h.runningTasks("web") >= 2, fmt.Sprintf("%+v", serviceStatus(a, "web"))
	})
	firstReplica := time.Since(start)
	h.evaluateUntil(a, "a new node Ready", 3*time.Minute, func() (bool, string) {
		ns, err := h.nodes()
		if err != nil {
			return false, err.Error()
		}
		ready := 0
		for _, n := range ns {
			if n.EngineLabels[policy.LabelPool] == "web" && n.State == "ready" {
				ready++
			}
		}
		return ready >= 2, fmt.Sprintf("%d ready; %+v", ready, h.scaling(a, "sm/web"))
	})
	firstNode := time.Since(start)
	h.evaluateUntil(a, "5 replicas running on 3 nodes", 3*time.Minute, func() (bool, string) {
		ok, detail := h.settled("web", "worker", 3)
		return ok && h.replicas("web") == 5 && h.runningTasks("web") == 5, fmt.Sprintf("%s; service %+v; pool %+v", detail, serviceStatus(a, "web"), h.scaling(a, "sm/web"))
	})
	allRunning := time.Since(start)

	// The load drops to one replica's worth: both halves shrink.
	start = time.Now()
	setLoad(t, load, 1)
	h.evaluateUntil(a, "back to 1 replica on 1 node", 4*time.Minute, func() (bool, string) {
		ok, detail := h.settled("web", "worker", 1)
		return ok && len(h.instances("web")) == 1 && h.replicas("web") == 1 && h.runningTasks("web") == 1,
			fmt.Sprintf("%s; service %+v; pool %+v", detail, serviceStatus(a, "web"), h.scaling(a, "sm/web"))
	})
	backToMin := time.Since(start)
	out := h.docker("service", "ps", "web", "--format", "{{.CurrentState}} {{.Error}}")
	for _, bad := range []string{"Failed", "Orphaned", "Rejected"} {
		if strings.Contains(out, bad) {
			t.Fatalf("a task was lost:\n%s", out)
		}
	}
	t.Logf("load step -> first new replica running %v, first new node Ready %v, all 5 tasks running %v; load drop -> 1 replica on the pool's minimum of 1 node %v",
		firstReplica.Round(time.Millisecond), firstNode.Round(time.Millisecond), allRunning.Round(time.Millisecond), backToMin.Round(time.Millisecond))
}
