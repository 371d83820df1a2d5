package agent_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// mttr is one measured repair: kill -9 to the replacement Ready, beside its
// floor, Swarm's own Down detection + unhealthy_after + the replacement's
// boot (process start to Ready).
type mttr struct{ total, detect, boot time.Duration }

// measureRepair kills one instance of pool and times its repair.
func measureRepair(b *testing.B, h *harness, pool, role string, victim string, unhealthyAfter time.Duration) mttr {
	b.Helper()
	before := map[string]bool{}
	for _, i := range h.instances(pool) {
		before[i.ID] = true
	}
	start := time.Now()
	h.kill(victim)
	var m mttr
	var replacement string
	var created time.Time
	deadline := start.Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		time.Sleep(25 * time.Millisecond)
		ns, err := h.nodes()
		if err != nil {
			continue
		}
		now := time.Now()
		if replacement == "" {
			for _, i := range h.instances(pool) {
				if !before[i.ID] {
					replacement, created = i.ID, i.CreatedAt
				}
			}
		}
		for _, n := range ns {
			id := n.EngineLabels[policy.LabelInstance]
			if id == victim && n.State != "ready" && m.detect == 0 {
				m.detect = now.Sub(start)
			}
			if replacement != "" && id == replacement && n.State == "ready" && (role != "manager" || n.Reachability == "reachable") {
				m.total = now.Sub(start)
				m.boot = now.Sub(created)
				return m
			}
		}
	}
	b.Fatalf("no repair of %s within 3m", victim)
	return m
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func report(b *testing.B, runs []mttr, unhealthyAfter time.Duration) {
	var total, floor, detect, boot []time.Duration
	for _, r := range runs {
		total = append(total, r.total)
		detect = append(detect, r.detect)
		boot = append(boot, r.boot)
		floor = append(floor, r.detect+unhealthyAfter+r.boot)
	}
	b.ReportMetric(float64(median(total).Milliseconds()), "ms-mttr-median")
	b.ReportMetric(float64(median(floor).Milliseconds()), "ms-floor-median")
	b.ReportMetric(float64(median(detect).Milliseconds()), "ms-down-detection")
	b.ReportMetric(float64(median(boot).Milliseconds()), "ms-boot")
	b.ReportMetric(float64(median(total))/float64(median(floor)), "x-floor")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkWorkerMTTR: agents beside 3 managers (default 2s evaluation
// interval), heartbeat 1s, unhealthy_after 2s; each op kills one worker.
func BenchmarkWorkerMTTR(b *testing.B) {
	const unhealthyAfter = 2 * time.Second
	h := newHarnessEvery(b, "bw", 3, true, "2s")
	h.pool("web", 2, healing("bw/web", unhealthyAfter.String()))
	var runs []mttr
	for i := 0; i < b.N; i++ {
		victim := ""
		for _, in := range h.instances("web") {
			if in.Running {
				victim = in.ID
				break
			}
		}
		runs = append(runs, measureRepair(b, h, "web", "worker", victim, unhealthyAfter))
		h.waitFor("the dead worker removed", time.Minute, func() (bool, string) {
			ok, detail := h.settled("web", "worker", 2)
			return ok && len(h.instances("web")) == 2, detail
		})
	}
	report(b, runs, unhealthyAfter)
}

// BenchmarkManagerMTTR: as above, each op kills one follower manager.
func BenchmarkManagerMTTR(b *testing.B) {
	const unhealthyAfter = 2 * time.Second
	h := newHarnessEvery(b, "bm", 3, true, "2s")
	h.heal(*healing("bm/managers", unhealthyAfter.String()))
	var runs []mttr
	for i := 0; i < b.N; i++ {
		ns, err := h.nodes()
		if err != nil {
			b.Fatal(err)
		}
		victim := ""
		for _, n := range ns {
			if n.Role == "manager" && !n.Leader {
				victim = n.EngineLabels[policy.LabelInstance]
			}
		}
		runs = append(runs, measureRepair(b, h, policy.ManagerPoolName, "manager", victim, unhealthyAfter))
		h.waitFor("the dead manager removed", 2*time.Minute, func() (bool, string) {
			ok, detail := h.settled(policy.ManagerPoolName, "manager", 3)
			return ok && len(h.instances(policy.ManagerPoolName)) == 3, detail
		})
	}
	report(b, runs, unhealthyAfter)
}

// BenchmarkScaleOutReaction: agents beside the managers at their default
// 2s evaluation interval, a scaling policy with pending_tasks at its default
// 10s; each op creates a service whose task fits no node. Measured: service
// change to the scale-out request (the new instance exists), and to the task
// running.
func BenchmarkScaleOutReaction(b *testing.B) {
	h := newHarnessWith(b, "br", 1, true, policy.DefaultEvaluationInterval.String(), true)
	h.pool("web", 0, nil)
	ctx := context.Background()
	h.editPool("web", func(p *policy.Pool) { p.Labels = map[string]string{"tier": "web"} })
	sp := policy.DefaultScaling("br/web")
	sp.PendingTasks = &policy.PendingTasksCheck{}
	sp.CooldownUp = "0s"
	if err := h.p.PutScalingPolicy(ctx, sp); err != nil {
		b.Fatal(err)
	}
	host := h.records(policy.ManagerPoolName)[0].DockerHost
	cpus := strings.TrimSpace(testenv.Docker(b, host, "info", "--format", "{{.NCPU}}"))
	var n int
	fmt.Sscanf(cpus, "%d", &n)
	reserve := fmt.Sprintf("%.1f", float64(n)-0.5)
	var request, running []time.Duration
	for i := 0; i < b.N; i++ {
		before := len(h.records("web"))
		name := fmt.Sprintf("svc%d", i)
		start := time.Now()
		testenv.Docker(b, host, "service", "create", "--detach", "--name", name, "--reserve-cpu", reserve,
			"--constraint", "node.labels.tier==web", "autarky/workload:latest")
		var asked time.Duration
		for time.Since(start) < 2*time.Minute {
			if asked == 0 && len(h.records("web")) > before {
				asked = time.Since(start)
			}
			if asked > 0 {
				out := testenv.Docker(b, host, "service", "ps", name, "--filter", "desired-state=running", "--format", "{{.CurrentState}}")
				if strings.Contains(out, "Running") {
					request = append(request, asked)
					running = append(running, time.Since(start))
					break
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		if len(running) != i+1 {
			b.Fatalf("service %s: no scale-out and running task within 2m", name)
		}
	}
	// The same pending work never asked twice: one node per service.
	time.Sleep(3 * time.Second)
	if got := len(h.records("web")); got != b.N {
		b.Fatalf("%d nodes for %d services of one task each: a pending task asked twice", got, b.N)
	}
	b.ReportMetric(float64(median(request).Milliseconds()), "ms-to-request")
	b.ReportMetric(float64(median(running).Milliseconds()), "ms-to-running")
	b.ReportMetric(policy.DefaultEvaluationInterval.Seconds()*1000, "ms-eval-interval")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkScaleIn: load, reported as utilisation (load / nodes, as CPU
// utilisation behaves), drops below target; measured: the drop to the node
// removed. The nodes run nothing, so they have been unneeded for longer than
// scale_in_after (5s) already: the figure is the agent's own latency, the
// Prometheus scrape, the evaluation, the drain and the removal.
func BenchmarkScaleIn(b *testing.B) {
	h := newHarnessWith(b, "bi", 1, true, "1s", false)
	g := testenv.NewGauge(b, 1.0)
	prom := testenv.StartPrometheus(b, g.Addr)
	h.pool("web", 1, nil)
	var load atomic.Value
	load.Store(1.0)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if n := len(h.records("web")); n > 0 {
				g.Set(load.Load().(float64) / float64(n))
			}
		}
	}()
	target := 0.5
	sp := policy.DefaultScaling("bi/web")
	sp.Prometheus = []policy.PrometheusCheck{{Name: "load", Address: prom.Addr, Query: "app_load", TargetValue: &target}}
	sp.EvaluationInterval, sp.CooldownUp, sp.CooldownDown, sp.ScaleInAfter = "1s", "0s", "0s", "5s"
	// Prometheus scrapes every second here; the default (twice the 1s
	// evaluation interval) would flap on scrape jitter.
	sp.MaxSampleAge = "5s"
	if err := h.p.PutScalingPolicy(context.Background(), sp); err != nil {
		b.Fatal(err)
	}
	var total []time.Duration
	for i := 0; i < b.N; i++ {
		load.Store(1.0) // two nodes at 0.5 each
		h.waitFor("scale out to 2", 2*time.Minute, func() (bool, string) {
			ok, d := h.settled("web", "worker", 2)
			return ok && len(h.records("web")) == 2, d
		})
		time.Sleep(6 * time.Second) // both nodes unneeded for scale_in_after
		start := time.Now()
		load.Store(0.4) // one node at 0.4
		h.waitFor("scale in to 1", 2*time.Minute, func() (bool, string) { return len(h.records("web")) == 1, "" })
		total = append(total, time.Since(start))
	}
	b.ReportMetric(float64(median(total).Milliseconds()), "ms-drop-to-removed")
	b.ReportMetric(0, "ns/op")
}
