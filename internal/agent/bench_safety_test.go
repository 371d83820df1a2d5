package agent_test

import (
	"fmt"
	"syscall"
	"testing"
	"time"
)

// BenchmarkWorkerMTTRWhileDraining: one pool drains a node whose task
// ignores SIGTERM (drain_timeout 1h) while a worker of another pool is
// killed each op: its MTTR, beside the floor, shows that drains run beside
// the loop. Agents beside 1 manager, 500ms evaluation interval, heartbeat
// 1s, unhealthy_after 2s.
func BenchmarkWorkerMTTRWhileDraining(b *testing.B) {
	const unhealthyAfter = 2 * time.Second
	h := newHarnessWith(b, "bd", 1, true, "500ms", true)
	h.pool("batch", 2, nil)
	h.pool("web", 1, healing("bd/web", unhealthyAfter.String()))
	h.stubborn("node.labels.autarky.pool==batch")
	h.leadingAgent()
	h.scaleInTo1("bd/batch", "1h")
	draining := func() (bool, string) { return h.draining("bd/batch") }
	h.waitFor("a batch node draining", time.Minute, draining)
	var runs []mttr
	for i := 0; i < b.N; i++ {
		victim := h.runningInstance("web", "")
		runs = append(runs, measureRepair(b, h, "web", "worker", victim, unhealthyAfter))
		h.waitFor("the dead worker removed", time.Minute, func() (bool, string) {
			ok, detail := h.settled("web", "worker", 1)
			return ok && len(h.instances("web")) == 1, detail
		})
		if ok, detail := draining(); !ok {
			b.Fatalf("the batch node no longer drains: %s", detail)
		}
	}
	report(b, runs, unhealthyAfter)
}

// BenchmarkLeaderAgentRecovery: each op kills -9 (killed) or freezes
// (frozen, SIGSTOP) the agent beside the Raft leader, then kills a worker;
// measured from the agent's death or freeze to the replacement Ready. The
// supervisor restarts a killed agent after 1s; a frozen one once its
// watchdog (30s here) runs out. Agents beside 3 managers, 1s evaluation
// interval, heartbeat 1s, unhealthy_after 2s.
func BenchmarkLeaderAgentRecovery(b *testing.B) {
	for _, mode := range []string{"killed", "frozen"} {
		b.Run(mode, func(b *testing.B) {
			const unhealthyAfter = 2 * time.Second
			h := newHarnessEvery(b, "bl"+mode[:1], 3, true, "1s")
			h.pool("web", 2, healing(fmt.Sprintf("bl%s/web", mode[:1]), unhealthyAfter.String()))
			var total []time.Duration
			for i := 0; i < b.N; i++ {
				_, pid := h.leadingAgent()
				sig := syscall.SIGKILL
				if mode == "frozen" {
					sig = syscall.SIGSTOP
				}
				start := time.Now()
				if err := syscall.Kill(pid, sig); err != nil {
					b.Fatal(err)
				}
				victim := h.runningInstance("web", "")
				before := time.Since(start) // measureRepair counts from the worker's kill
				m := measureRepair(b, h, "web", "worker", victim, unhealthyAfter)
				total = append(total, before+m.total)
				h.waitFor("the dead worker removed", time.Minute, func() (bool, string) {
					ok, detail := h.settled("web", "worker", 2)
					return ok && len(h.instances("web")) == 2, detail
				})
			}
			b.ReportMetric(float64(median(total).Milliseconds()), "ms-agent-lost-to-healed")
			b.ReportMetric(0, "ns/op")
		})
	}
}
