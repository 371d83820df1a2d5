package decide

import (
	"fmt"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// bigScaleSnapshot is 100 pools of 100 nodes, each with a pending_tasks, a
// target-tracking and an alert check. Half the pools have pending tasks and
// grow; the others run below target with a third of their nodes unneeded
// and shrink, their node selectors taking turns, so every decision sorts
// candidates.
func bigScaleSnapshot() ScaleSnapshot {
	const pools, perPool = 100, 100
	s := ScaleSnapshot{Now: t0}
	base := policy.DefaultScaling("c/pool")
	base.PendingTasks = &policy.PendingTasksCheck{}
	base.Prometheus = []policy.PrometheusCheck{{Name: "cpu", Address: "http://prometheus:9090", Query: "q", TargetValue: fp(0.6)}}
	base.Alert = []policy.AlertCheck{{Name: "HighLoad"}}
	rules, err := base.Rules()
	if err != nil {
		panic(err)
	}
	for p := range pools {
		r := rules
		r.NodeSelector = policy.NodeSelectors[p%len(policy.NodeSelectors)]
		pool := ScalePool{ID: fmt.Sprintf("c/pool-%03d", p), MinSize: 10, MaxSize: 200, Current: perPool, Rules: r,
			NodeCapacity: Resources{NanoCPUs: 4e9, MemoryBytes: 8 * gib}}
		for i := range perPool {
			n := ScaleNode{ID: fmt.Sprintf("n-%03d-%03d", p, i), InstanceID: fmt.Sprintf("i-%03d-%03d", p, i),
				CreatedAt: t0.Add(-time.Duration(i+1) * time.Hour), RunningTasks: i % 4,
				Reserved: Resources{NanoCPUs: int64(i%4) * 5e8, MemoryBytes: int64(i%4) * gib},
				Capacity: Resources{NanoCPUs: 4e9, MemoryBytes: 8 * gib}}
			if i%3 == 0 {
				n.UnneededSince = t0.Add(-10 * time.Minute)
			}
			pool.Nodes = append(pool.Nodes, n)
		}
		value := 0.3
		var pend []PendingTask
		if p%2 == 1 {
			value = 0.7
			pend = tasks(12, 1e9, gib)
		}
		pool.Checks = []CheckSample{
			{Name: CheckPendingTasks, Kind: CheckPendingTasks, PendingTasks: pend},
			{Name: "cpu", Kind: CheckPrometheus, Value: value, SampleTime: t0.Add(-2 * time.Second), Target: fp(0.6)},
			{Name: "HighLoad", Kind: CheckAlert},
		}
		s.Pools = append(s.Pools, pool)
	}
	return s
}

func TestBigScaleSnapshot(t *testing.T) {
	s := bigScaleSnapshot()
	plan := Scale(s)
	checkScaleInvariants(t, s, plan)
	dirs := map[ScaleDirection]int{}
	for _, d := range plan.Decisions {
		dirs[d.Direction]++
		if d.Direction == ScaleDown && len(d.RemoveNodes) != 5 {
			t.Errorf("pool %s removes %d nodes, want max_step 5: %s", d.PoolID, len(d.RemoveNodes), d.Message)
		}
	}
	if dirs[ScaleUp] != 50 || dirs[ScaleDown] != 50 {
		t.Errorf("directions = %v, want 50 up and 50 down", dirs)
	}
}

func BenchmarkScale100Pools100Nodes(b *testing.B) {
	s := bigScaleSnapshot()
	b.ReportAllocs()
	for b.Loop() {
		Scale(s)
	}
}

// bigScaleObservation is 100 pools of 100 Ready nodes, each pool with 50
// pending tasks (half of them matching it), a target-tracking sample and a
// previous unneeded-since map for every third node.
func bigScaleObservation() ScaleObservation {
	s := bigScaleSnapshot()
	o := ScaleObservation{Now: s.Now, UnneededSince: map[string]time.Time{}}
	for _, sp := range s.Pools {
		p := PoolObservation{ID: sp.ID, Rules: sp.Rules, PoolMinSize: sp.MinSize, PoolMaxSize: sp.MaxSize,
			Samples: sp.Checks[1:]}
		for i, n := range sp.Nodes {
			p.Nodes = append(p.Nodes, ObservedNode{ID: n.ID, InstanceID: n.InstanceID, State: NodeReady, Role: policy.RoleWorker,
				Availability: "active", CreatedAt: n.CreatedAt, Capacity: n.Capacity, Reserved: n.Reserved, RunningTasks: n.RunningTasks})
			p.Instances = append(p.Instances, ObservedInstance{ID: n.InstanceID, Running: true})
			if i%3 == 0 {
				o.UnneededSince[n.ID] = n.UnneededSince
			}
		}
		for i := range 50 {
			p.PendingTasks = append(p.PendingTasks, ObservedTask{Reservation: Resources{NanoCPUs: 1e9, MemoryBytes: gib}, MatchesPool: i%2 == 0})
		}
		o.Pools = append(o.Pools, p)
	}
	return o
}

func TestBigScaleObservation(t *testing.T) {
	o := bigScaleObservation()
	s, unneeded := BuildScaleSnapshot(o)
	checkBuildInvariants(t, o, s, unneeded)
}

func BenchmarkBuildScaleSnapshot100Pools100Nodes(b *testing.B) {
	o := bigScaleObservation()
	b.ReportAllocs()
	for b.Loop() {
		BuildScaleSnapshot(o)
	}
}
