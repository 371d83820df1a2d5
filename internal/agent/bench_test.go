package agent_test

import (
	"sort"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
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
		victim := h.instances("web")[0].ID
		runs = append(runs, measureRepair(b, h, "web", "worker", victim, unhealthyAfter))
		h.waitFor("the dead worker removed", time.Minute, func() (bool, string) { return h.settled("web", "worker", 2) })
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
		h.waitFor("the dead manager removed", 2*time.Minute, func() (bool, string) { return h.settled(policy.ManagerPoolName, "manager", 3) })
	}
	report(b, runs, unhealthyAfter)
}
