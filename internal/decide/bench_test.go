package decide

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// bigSnapshot is a cluster of 10,000 nodes in 100 worker pools of 100, with
// work in every pool: a failed node, a node not failed yet, a replacement in
// flight (ready in even pools, joining in odd ones), a stuck instance, and
// backoff in every tenth pool.
func bigSnapshot() Snapshot {
	const pools, perPool = 100, 100
	s := Snapshot{Now: t0, Quorum: Quorum{Managers: 3, Reachable: 3, LeaderPresent: true}}
	rules := defaultRules()
	rules.MaxUnhealthyPercent = 5
	rules.MaxConcurrentReplacements = 2
	for p := range pools {
		id := fmt.Sprintf("c/pool-%03d", p)
		s.Pools = append(s.Pools, PoolState{ID: id, Role: policy.RoleWorker, MinSize: 1, MaxSize: 200,
			DesiredSize: perPool, Rules: rules, HasPolicy: true})
		for i := range perPool {
			nid := fmt.Sprintf("n-%03d-%03d", p, i)
			iid := "i-" + nid
			n := Node{ID: nid, PoolID: id, InstanceID: iid, Role: policy.RoleWorker, State: NodeReady,
				Availability: "active", CreatedAt: t0.Add(-24 * time.Hour), StateSince: t0.Add(-24 * time.Hour),
				RunningTasks: 3}
			switch i {
			case 0, 1: // failed: one being replaced, one new
				n.State, n.StateSince = NodeDown, t0.Add(-time.Duration(10-i)*time.Minute)
			case 2: // not for unhealthy_after yet
				n.State, n.StateSince = NodeDown, t0.Add(-10*time.Second)
			}
			s.Nodes = append(s.Nodes, n)
			s.Instances = append(s.Instances, Instance{ID: iid, PoolID: id, CreatedAt: n.CreatedAt, Running: true, NodeID: nid})
		}
		rep := fmt.Sprintf("i-rep-%03d", p)
		s.InFlight = append(s.InFlight, Action{Kind: ReplaceNode, PoolID: id, Role: policy.RoleWorker,
			NodeID: fmt.Sprintf("n-%03d-000", p), InstanceID: fmt.Sprintf("i-n-%03d-000", p), Replacement: rep,
			Key: actionKey(ReplaceNode, id, fmt.Sprintf("n-%03d-000", p), "")})
		repInstance := Instance{ID: rep, PoolID: id, CreatedAt: t0.Add(-2 * time.Minute), Running: true}
		if p%2 == 0 {
			repInstance.NodeID = "n-" + rep
			s.Nodes = append(s.Nodes, Node{ID: "n-" + rep, PoolID: id, InstanceID: rep, Role: policy.RoleWorker,
				State: NodeReady, CreatedAt: t0.Add(-time.Minute), StateSince: t0.Add(-time.Minute)})
		}
		s.Instances = append(s.Instances, repInstance,
			Instance{ID: fmt.Sprintf("i-stuck-%03d", p), PoolID: id, CreatedAt: t0.Add(-time.Hour), Running: true})
		if p%10 == 0 {
			if s.Backoff == nil {
				s.Backoff = map[string]Backoff{}
			}
			s.Backoff[id] = Backoff{Failures: 2, LastFailure: t0.Add(-5 * time.Second)}
		}
	}
	return s
}

func TestBigSnapshot(t *testing.T) {
	s := bigSnapshot()
	p := Heal(s)
	checkInvariants(t, s, p)
	kinds := map[ActionKind]int{}
	for _, a := range p.Actions {
		kinds[a.Kind]++
	}
	// Even pools conclude their unit and start one replacement (budget 2);
	// odd pools wait for theirs and start one; every tenth pool is in
	// backoff, so it only concludes.
	if kinds[RemoveNode] != 50 || kinds[ReplaceNode] != 90 {
		t.Errorf("actions by kind = %v, want 50 removals and 90 replacements", kinds)
	}
}

func BenchmarkHeal10kNodes(b *testing.B) {
	s := bigSnapshot()
	if len(s.Nodes) < 10000 {
		b.Fatalf("only %d nodes", len(s.Nodes))
	}
	b.ReportAllocs()
	var before, after syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	b.ResetTimer()
	for b.Loop() {
		Heal(s)
	}
	b.StopTimer()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano()+after.Stime.Nano()-before.Utime.Nano()-before.Stime.Nano()) / time.Duration(b.N)
	b.ReportMetric(float64(cpu.Microseconds())/1000, "cpu-ms/op")
	// Peak resident set of the whole benchmark process, snapshot included.
	b.ReportMetric(float64(after.Maxrss)/1024, "MB-peak-rss")
}
