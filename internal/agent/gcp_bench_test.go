package agent_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/autarky/terraform-provider-autarky/internal/agent"
	"github.com/autarky/terraform-provider-autarky/internal/platform/gcp"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// BenchmarkGCPWorkerMTTR: the MIG path of BenchmarkWorkerMTTR. An agent
// on Google Cloud (the fake Compute Engine, fake-gcs-server) heals pool
// "web" of 2 workers whose nodes the test's startup script boots as local
// guests; heartbeat 1s, unhealthy_after 2s; each op kills one worker's
// dockerd. Measured: kill to the recreated VM's node Ready, beside the
// floor (Swarm's Down detection + unhealthy_after + the replacement
// guest's boot). The fake creates a VM in 300 ms; Compute Engine takes
// tens of seconds, which the floor does not count either.
func BenchmarkGCPWorkerMTTR(b *testing.B) {
	const unhealthyAfter = 2 * time.Second
	g := newGCloud(b, newHarness(b, "bwg", 1, false), 2, 1)
	g.runAgent()
	var runs []mttr
	for i := 0; i < b.N; i++ {
		before, _ := g.running(g.pool)
		victim := g.anyVM(g.pool)
		start := time.Now()
		g.h.kill(g.guestOf(victim))
		var m mttr
		g.h.waitFor("the replacement to be ready", 2*time.Minute, func() (bool, string) {
			ns, err := g.h.nodes()
			if err != nil {
				return false, err.Error()
			}
			now := time.Now()
			for _, n := range ns {
				id := n.EngineLabels[policy.LabelInstance]
				if id == victim && n.State != "ready" && m.detect == 0 {
					m.detect = now.Sub(start)
				}
				if id != "" && !before[id] && n.Role == policy.RoleWorker && n.State == "ready" {
					m.total = now.Sub(start)
					g.mu.Lock()
					m.boot = g.boots[id]
					g.mu.Unlock()
					return true, ""
				}
			}
			return false, "waiting"
		})
		runs = append(runs, m)
		g.waitWorkers(2, time.Minute)
		g.waitJournalEmpty(time.Minute)
	}
	report(b, runs, unhealthyAfter)
}

// BenchmarkGCPCallsPerEvaluation counts, at the fake Compute Engine, the
// calls of one agent evaluation for a cluster of p pools with n VMs each,
// every VM running and no policy acting: the steady-state read cost. The
// groups come from one filtered list and their VMs, with their details,
// from one aggregated list: two calls for 1, 10 or 100 pools, whatever
// the VMs. (A group in transition adds one listManagedInstances.)
func BenchmarkGCPCallsPerEvaluation(b *testing.B) {
	for _, size := range []struct{ pools, perPool int }{{1, 1}, {10, 1}, {10, 3}, {100, 1}} {
		b.Run(fmt.Sprintf("pools=%d/instances=%d", size.pools, size.perPool), func(b *testing.B) {
			h := newHarness(b, fmt.Sprintf("gce%d-%d", size.pools, size.perPool), 1, false)
			g := newGCloudEmpty(b, h)
			ctx := context.Background()
			for i := 0; i < size.pools; i++ {
				if _, err := g.plat.CreatePool(ctx, policy.Pool{Cluster: h.name, Name: fmt.Sprintf("p%d", i), Role: policy.RoleWorker,
					MinSize: 0, MaxSize: 5, DesiredSize: int64(size.perPool), WaitForCapacityTimeout: "0s"}, 0); err != nil {
					b.Fatal(err)
				}
			}
			// Steady state: every VM created and RUNNING (a group still
			// creating is listed member by member, as it should be).
			want := size.pools*size.perPool + 1
			g.h.waitFor("every VM to run", 2*time.Minute, func() (bool, string) {
				n := 0
				for _, in := range g.gce.Instances("") {
					if in.Status == "RUNNING" {
						n++
					}
				}
				return n == want, fmt.Sprintf("%d of %d running", n, want)
			})
			cl, err := gcp.NewCluster(g.clients, g.st, gcpTestBucket, h.name)
			if err != nil {
				b.Fatal(err)
			}
			var host string
			for _, r := range h.records(policy.ManagerPoolName) {
				host = r.DockerHost
			}
			a, err := agent.New(agent.Config{DockerHost: host, Listen: "127.0.0.1:0", Logger: hclog.NewNullLogger()}, cl)
			if err != nil {
				b.Fatal(err)
			}
			a.Evaluate(ctx)
			g.gce.Reset()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				a.Evaluate(ctx)
			}
			b.StopTimer()
			counts := g.gce.CallCounts()
			total := 0
			for _, n := range counts {
				total += n
			}
			per := func(n int) float64 { return float64(n) / float64(b.N) }
			b.ReportMetric(per(counts["compute.regionInstanceGroupManagers.list"]), "mig-lists/eval")
			b.ReportMetric(per(counts["compute.regionInstanceGroupManagers.listManagedInstances"]), "managed-instance-lists/eval")
			b.ReportMetric(per(counts["compute.instances.aggregatedList"]), "instance-lists/eval")
			b.ReportMetric(per(total), "compute-calls/eval")
			// One filtered group list and one aggregated VM list per
			// filter of up to about 100 names, whatever the VMs.
			if want := 2 * ((size.pools + 1 + 99) / 100); total > want*b.N {
				b.Errorf("%d Compute Engine calls in %d evaluations of %d groups: want at most %d per evaluation (%v)", total, b.N, size.pools+1, want, counts)
			}
		})
	}
}
