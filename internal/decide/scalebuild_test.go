package decide

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// observedPool is c/workers under the default scaling policy with the
// pending_tasks check, pool bounds [1, 10], and n Ready workers w1..wn of 2
// CPUs and 4 GiB, joined an hour ago, each running 2 tasks that reserve 1
// CPU and 1 GiB (half the CPU: needed), each on its running instance i-wN.
func observedPool(n int) PoolObservation {
	rules := scaleRules()
	rules.PendingTasks = true
	p := PoolObservation{ID: workers, Rules: rules, PoolMinSize: 1, PoolMaxSize: 10}
	for i := 1; i <= n; i++ {
		p.Nodes = append(p.Nodes, ObservedNode{
			ID: fmt.Sprintf("w%d", i), InstanceID: fmt.Sprintf("i-w%d", i), State: NodeReady,
			Role: policy.RoleWorker, Availability: "active", CreatedAt: t0.Add(-time.Hour),
			Capacity:     Resources{NanoCPUs: cpu2, MemoryBytes: 4 * gib},
			Reserved:     Resources{NanoCPUs: cpu2 / 2, MemoryBytes: gib},
			RunningTasks: 2,
		})
		p.Instances = append(p.Instances, ObservedInstance{ID: fmt.Sprintf("i-w%d", i), Running: true})
	}
	return p
}

func observedNode(p *PoolObservation, id string) *ObservedNode {
	for i := range p.Nodes {
		if p.Nodes[i].ID == id {
			return &p.Nodes[i]
		}
	}
	panic("no node " + id)
}

// joined adds a Ready worker id, on a running instance, that joined ago
// before t0 and runs nothing yet: all its 2 CPUs and 4 GiB are free.
func joined(p *PoolObservation, id string, ago time.Duration) *ObservedNode {
	p.Nodes = append(p.Nodes, ObservedNode{ID: id, InstanceID: "i-" + id, State: NodeReady, Role: policy.RoleWorker,
		Availability: "active", CreatedAt: t0.Add(-ago), Capacity: Resources{NanoCPUs: cpu2, MemoryBytes: 4 * gib}})
	p.Instances = append(p.Instances, ObservedInstance{ID: "i-" + id, Running: true})
	return &p.Nodes[len(p.Nodes)-1]
}

// unplaced sets the pool's pending tasks: n tasks reserving cpu and mem
// each, whose constraints match the pool.
func unplaced(p *PoolObservation, n int, cpu, mem int64) {
	for range n {
		p.PendingTasks = append(p.PendingTasks, ObservedTask{Reservation: Resources{NanoCPUs: cpu, MemoryBytes: mem}, MatchesPool: true})
	}
}

// reserve makes node id run one task reserving the given shares of its CPU
// and memory.
func reserve(p *PoolObservation, id string, cpuShare, memShare float64) {
	n := observedNode(p, id)
	n.RunningTasks = 1
	n.Reserved = Resources{NanoCPUs: int64(cpuShare * float64(n.Capacity.NanoCPUs)), MemoryBytes: int64(memShare * float64(n.Capacity.MemoryBytes))}
}

func pendingSample(t *testing.T, p ScalePool) CheckSample {
	t.Helper()
	for _, c := range p.Checks {
		if c.Kind == CheckPendingTasks {
			return c
		}
	}
	t.Fatalf("no pending_tasks sample in %+v", p.Checks)
	return CheckSample{}
}

// wantPending asserts how many pending tasks the pool's sample counts.
func wantPending(n int) func(t *testing.T, p ScalePool, _ map[string]time.Time) {
	return func(t *testing.T, p ScalePool, _ map[string]time.Time) {
		t.Helper()
		if got := pendingSample(t, p).PendingTasks; len(got) != n {
			t.Errorf("pending tasks counted = %d (%+v), want %d", len(got), got, n)
		}
	}
}

func builtNode(t *testing.T, p ScalePool, id string) ScaleNode {
	t.Helper()
	for _, n := range p.Nodes {
		if n.ID == id {
			return n
		}
	}
	t.Fatalf("node %s is not in the built pool: %+v", id, p.Nodes)
	return ScaleNode{}
}

// wantUnneeded asserts node id's UnneededSince, both on the node and in the
// returned map (absent from it when zero).
func wantUnneeded(id string, since time.Time) func(t *testing.T, p ScalePool, m map[string]time.Time) {
	return func(t *testing.T, p ScalePool, m map[string]time.Time) {
		t.Helper()
		if got := builtNode(t, p, id).UnneededSince; !got.Equal(since) {
			t.Errorf("node %s UnneededSince = %v, want %v", id, got, since)
		}
		got, ok := m[id]
		if since.IsZero() && ok {
			t.Errorf("map keeps %s (since %v), a needed node", id, got)
		}
		if !since.IsZero() && !got.Equal(since) {
			t.Errorf("map[%s] = %v (present %v), want %v", id, got, ok, since)
		}
	}
}

type buildCase struct {
	name  string
	n     int // nodes of observedPool; default 3
	edit  func(p *PoolObservation)
	prev  map[string]time.Time
	check func(t *testing.T, p ScalePool, unneeded map[string]time.Time)
}

func runBuildCases(t *testing.T, cases []buildCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := tc.n
			if n == 0 {
				n = 3
			}
			in := observedPool(n)
			if tc.edit != nil {
				tc.edit(&in)
			}
			before := clonePoolObservation(in)
			prev := maps.Clone(tc.prev)
			p, unneeded := BuildScalePool(t0, in, tc.prev)
			if !reflect.DeepEqual(in, before) || !maps.Equal(prev, tc.prev) {
				t.Error("BuildScalePool modified its input")
			}
			again, unneededAgain := BuildScalePool(t0, in, tc.prev)
			if !reflect.DeepEqual(p, again) || !maps.Equal(unneeded, unneededAgain) {
				t.Error("BuildScalePool is not deterministic")
			}
			tc.check(t, p, unneeded)
			// Whatever it built, Scale keeps its invariants on it.
			s := ScaleSnapshot{Now: t0, Pools: []ScalePool{p}}
			checkScaleInvariants(t, s, Scale(s))
			if t.Failed() {
				t.Logf("built: %+v", p)
			}
		})
	}
}

func clonePoolObservation(p PoolObservation) PoolObservation {
	p.Nodes = slices.Clone(p.Nodes)
	p.Instances = slices.Clone(p.Instances)
	p.PendingTasks = slices.Clone(p.PendingTasks)
	p.Samples = slices.Clone(p.Samples)
	return p
}

func TestBuildScalePoolSettleWindow(t *testing.T) {
	runBuildCases(t, []buildCase{
		{name: "a task placed on a settling node asks for no node", edit: func(p *PoolObservation) {
			joined(p, "w4", time.Second)
			unplaced(p, 1, cpu2/2, gib)
		}, check: wantPending(0)},
		{name: "just inside the window", edit: func(p *PoolObservation) {
			joined(p, "w4", SettleWindow-time.Millisecond)
			unplaced(p, 1, cpu2/2, gib)
		}, check: wantPending(0)},
		{name: "at the window's end the node is settled: the task counts", edit: func(p *PoolObservation) {
			joined(p, "w4", SettleWindow)
			unplaced(p, 1, cpu2/2, gib)
		}, check: wantPending(1)},
		{name: "a node that joined in the future still settles", edit: func(p *PoolObservation) {
			joined(p, "w4", -time.Second)
			unplaced(p, 1, cpu2/2, gib)
		}, check: wantPending(0)},
		{name: "a settling node's room is used up in task order", edit: func(p *PoolObservation) {
			joined(p, "w4", time.Second)
			unplaced(p, 3, cpu2/2, gib) // two fit in 2 CPUs
		}, check: wantPending(1)},
		{name: "what is reserved on a settling node is not free", edit: func(p *PoolObservation) {
			n := joined(p, "w4", time.Second)
			n.Reserved = Resources{NanoCPUs: cpu2 / 2} // a task still starting
			unplaced(p, 2, cpu2/2, gib)
		}, check: wantPending(1)},
		{name: "a task bigger than the free room of each settling node counts", edit: func(p *PoolObservation) {
			joined(p, "w4", time.Second).Reserved = Resources{MemoryBytes: 3 * gib}
			unplaced(p, 1, cpu2/4, 2*gib)
		}, check: wantPending(1)},
		{name: "a node running a task is not settling", edit: func(p *PoolObservation) {
			joined(p, "w4", time.Second).RunningTasks = 1
			unplaced(p, 1, cpu2/4, gib)
		}, check: wantPending(1)},
		{name: "a draining node is not settling", edit: func(p *PoolObservation) {
			joined(p, "w4", time.Second).Availability = "drain"
			unplaced(p, 1, cpu2/4, gib)
		}, check: wantPending(1)},
		{name: "a node on its way out is not settling", edit: func(p *PoolObservation) {
			joined(p, "w4", time.Second).InFlight = true
			unplaced(p, 1, cpu2/4, gib)
		}, check: wantPending(1)},
		{name: "a node not Ready is not settling", edit: func(p *PoolObservation) {
			joined(p, "w4", time.Second).State = NodeDown
			unplaced(p, 1, cpu2/4, gib)
		}, check: wantPending(1)},
		{name: "a manager is not settling", edit: func(p *PoolObservation) {
			joined(p, "w4", time.Second).Role = policy.RoleManager
			unplaced(p, 1, cpu2/4, gib)
		}, check: wantPending(1)},
		{name: "a task that does not match the pool takes no room", edit: func(p *PoolObservation) {
			joined(p, "w4", time.Second)
			p.PendingTasks = append(p.PendingTasks, ObservedTask{Reservation: Resources{NanoCPUs: cpu2}})
			unplaced(p, 1, cpu2, gib)
		}, check: wantPending(0)},
	})
}

func TestBuildScalePoolPendingTasks(t *testing.T) {
	runBuildCases(t, []buildCase{
		{name: "a task that fits counts with its reservation", edit: func(p *PoolObservation) { unplaced(p, 1, cpu2/2, gib) },
			check: func(t *testing.T, p ScalePool, _ map[string]time.Time) {
				got := pendingSample(t, p)
				want := CheckSample{Name: CheckPendingTasks, Kind: CheckPendingTasks, PendingTasks: []PendingTask{{NanoCPUs: cpu2 / 2, MemoryBytes: gib}}}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("sample = %+v, want %+v", got, want)
				}
			}},
		{name: "a task the size of a node counts", edit: func(p *PoolObservation) { unplaced(p, 1, cpu2, 4*gib) }, check: wantPending(1)},
		{name: "a task with more CPU than a node is not counted", edit: func(p *PoolObservation) { unplaced(p, 1, cpu2+1, gib) }, check: wantPending(0)},
		{name: "a task with more memory than a node is not counted", edit: func(p *PoolObservation) { unplaced(p, 1, 1, 4*gib+1) }, check: wantPending(0)},
		{name: "a task whose constraints do not match is not counted", edit: func(p *PoolObservation) {
			p.PendingTasks = []ObservedTask{{Reservation: Resources{NanoCPUs: 1}}}
		}, check: wantPending(0)},
		{name: "unknown node capacity: every matching task counts", n: -1, edit: func(p *PoolObservation) {
			unplaced(p, 2, 64*cpu2, 64*gib)
		}, check: wantPending(2)},
		{name: "unknown memory capacity checks only the CPUs", edit: func(p *PoolObservation) {
			for i := range p.Nodes {
				p.Nodes[i].Capacity.MemoryBytes = 0
			}
			unplaced(p, 1, cpu2, 64*gib)
			unplaced(p, 1, cpu2+1, 0)
		}, check: wantPending(1)},
		{name: "negative reservations count as none", edit: func(p *PoolObservation) { unplaced(p, 1, -cpu2, -gib) },
			check: func(t *testing.T, p ScalePool, _ map[string]time.Time) {
				if got := pendingSample(t, p).PendingTasks; len(got) != 1 || got[0] != (PendingTask{}) {
					t.Errorf("pending = %+v, want one task reserving nothing", got)
				}
			}},
		{name: "the pool's nodes fix the node capacity", edit: func(p *PoolObservation) {
			p.ClusterNodeCapacity = Resources{NanoCPUs: 64 * cpu2, MemoryBytes: 64 * gib}
			unplaced(p, 1, 2*cpu2, gib)
		}, check: wantPending(0)},
		{name: "a pool without a Ready node has the cluster's node capacity", edit: func(p *PoolObservation) {
			for i := range p.Nodes {
				p.Nodes[i].State = NodeDown
			}
			p.ClusterNodeCapacity = Resources{NanoCPUs: 4 * cpu2, MemoryBytes: 8 * gib}
			unplaced(p, 1, 2*cpu2, gib)
		}, check: func(t *testing.T, p ScalePool, _ map[string]time.Time) {
			if want := (Resources{NanoCPUs: 4 * cpu2, MemoryBytes: 8 * gib}); p.NodeCapacity != want {
				t.Errorf("NodeCapacity = %+v, want %+v", p.NodeCapacity, want)
			}
			wantPending(1)(t, p, nil)
		}},
		{name: "a node that does not know its CPUs does not fix the capacity", edit: func(p *PoolObservation) {
			observedNode(p, "w1").Capacity = Resources{MemoryBytes: gib}
		}, check: func(t *testing.T, p ScalePool, _ map[string]time.Time) {
			if want := (Resources{NanoCPUs: cpu2, MemoryBytes: 4 * gib}); p.NodeCapacity != want {
				t.Errorf("NodeCapacity = %+v, want w2's %+v", p.NodeCapacity, want)
			}
		}},
		{name: "without the pending_tasks check no sample is made", edit: func(p *PoolObservation) {
			p.Rules.PendingTasks = false
			unplaced(p, 3, cpu2, gib)
			p.Samples = []CheckSample{target("cpu", 0.6, 0.6)}
		}, check: func(t *testing.T, p ScalePool, _ map[string]time.Time) {
			if len(p.Checks) != 1 || p.Checks[0].Name != "cpu" {
				t.Errorf("checks = %+v, want the cpu sample only", p.Checks)
			}
		}},
		{name: "pending_tasks comes first, then the samples in order", edit: func(p *PoolObservation) {
			p.Samples = []CheckSample{target("cpu", 0.6, 0.6), alert("HighLoad", false, 1)}
		}, check: func(t *testing.T, p ScalePool, _ map[string]time.Time) {
			var names []string
			for _, c := range p.Checks {
				names = append(names, c.Name)
			}
			if want := []string{CheckPendingTasks, "cpu", "HighLoad"}; !slices.Equal(names, want) {
				t.Errorf("checks = %q, want %q", names, want)
			}
		}},
	})
}

func TestBuildScalePoolUnneeded(t *testing.T) {
	earlier := t0.Add(-5 * time.Minute)
	runBuildCases(t, []buildCase{
		{name: "reserved share 0.49 is unneeded", edit: func(p *PoolObservation) { reserve(p, "w1", 0.49, 0.1) },
			check: wantUnneeded("w1", t0)},
		{name: "reserved share 0.5 is needed", edit: func(p *PoolObservation) { reserve(p, "w1", 0.5, 0.1) },
			check: wantUnneeded("w1", time.Time{})},
		{name: "reserved share 0.51 is needed", edit: func(p *PoolObservation) { reserve(p, "w1", 0.51, 0.1) },
			check: wantUnneeded("w1", time.Time{})},
		{name: "memory share 0.49 is unneeded", edit: func(p *PoolObservation) { reserve(p, "w1", 0.2, 0.49) },
			check: wantUnneeded("w1", t0)},
		{name: "memory share 0.51 is needed", edit: func(p *PoolObservation) { reserve(p, "w1", 0.2, 0.51) },
			check: wantUnneeded("w1", time.Time{})},
		{name: "a node running nothing is unneeded", edit: func(p *PoolObservation) {
			n := observedNode(p, "w2")
			n.RunningTasks, n.Reserved = 0, Resources{}
		}, check: wantUnneeded("w2", t0)},
		{name: "unneeded-since is kept across builds", edit: func(p *PoolObservation) { reserve(p, "w1", 0.1, 0.1) },
			prev: map[string]time.Time{"w1": earlier}, check: wantUnneeded("w1", earlier)},
		{name: "unneeded-since resets when the node becomes needed", prev: map[string]time.Time{"w1": earlier},
			check: wantUnneeded("w1", time.Time{})},
		{name: "a draining node keeps its clock", edit: func(p *PoolObservation) {
			reserve(p, "w1", 0.1, 0.1)
			observedNode(p, "w1").Availability = "drain"
		}, prev: map[string]time.Time{"w1": earlier}, check: func(t *testing.T, p ScalePool, m map[string]time.Time) {
			wantUnneeded("w1", earlier)(t, p, m)
			if !builtNode(t, p, "w1").Draining {
				t.Error("a draining node is not Draining")
			}
		}},
		{name: "the map holds exactly the unneeded nodes of the pool", edit: func(p *PoolObservation) {
			reserve(p, "w1", 0.1, 0.1)
			reserve(p, "w3", 0.2, 0.2)
		}, prev: map[string]time.Time{"w1": earlier, "w2": earlier, "gone": earlier},
			check: func(t *testing.T, p ScalePool, m map[string]time.Time) {
				if want := map[string]time.Time{"w1": earlier, "w3": t0}; !maps.Equal(m, want) {
					t.Errorf("map = %v, want %v", m, want)
				}
			}},
		{name: "a node not Ready is left out", edit: func(p *PoolObservation) {
			n := observedNode(p, "w1")
			n.State, n.RunningTasks, n.Reserved = NodeDown, 0, Resources{}
		}, prev: map[string]time.Time{"w1": earlier}, check: func(t *testing.T, p ScalePool, m map[string]time.Time) {
			if len(p.Nodes) != 2 || p.Nodes[0].ID != "w2" {
				t.Errorf("nodes = %+v, want w2 and w3", p.Nodes)
			}
			if _, ok := m["w1"]; ok {
				t.Error("the map keeps a node that is not Ready")
			}
		}},
	})
}

func TestBuildScalePoolManagers(t *testing.T) {
	earlier := t0.Add(-time.Hour)
	runBuildCases(t, []buildCase{
		{name: "a manager promoted by hand keeps its role and is never unneeded", edit: func(p *PoolObservation) {
			n := observedNode(p, "w2")
			n.Role, n.RunningTasks, n.Reserved = policy.RoleManager, 0, Resources{}
		}, prev: map[string]time.Time{"w2": earlier}, check: func(t *testing.T, p ScalePool, m map[string]time.Time) {
			if got := builtNode(t, p, "w2").Role; got != policy.RoleManager {
				t.Errorf("role = %q, want manager", got)
			}
			wantUnneeded("w2", time.Time{})(t, p, m)
			if got := builtNode(t, p, "w1").Role; got != policy.RoleWorker {
				t.Errorf("w1 role = %q, want worker", got)
			}
		}},
		{name: "an idle manager is no removable capacity", edit: func(p *PoolObservation) {
			n := observedNode(p, "w3")
			n.Role, n.RunningTasks, n.Reserved = policy.RoleManager, 0, Resources{}
			p.Rules.PendingTasks = false
			p.Samples = []CheckSample{target("cpu", 0.01, 0.6)}
		}, prev: map[string]time.Time{"w3": earlier}, check: func(t *testing.T, p ScalePool, _ map[string]time.Time) {
			d := Scale(ScaleSnapshot{Now: t0, Pools: []ScalePool{p}}).Decisions[0]
			if d.Direction != ScaleHold || d.Code != CodeScaleInAfter || len(d.RemoveNodes) != 0 {
				t.Errorf("decision %s %s, removing %q: %s", d.Direction, d.Code, d.RemoveNodes, d.Message)
			}
		}},
	})
}

func TestBuildScalePoolCounts(t *testing.T) {
	counts := func(current, pending int) func(t *testing.T, p ScalePool, _ map[string]time.Time) {
		return func(t *testing.T, p ScalePool, _ map[string]time.Time) {
			if p.Current != current || p.Pending != pending {
				t.Errorf("Current, Pending = %d, %d, want %d, %d", p.Current, p.Pending, current, pending)
			}
		}
	}
	runBuildCases(t, []buildCase{
		{name: "every instance has a Ready node", check: counts(3, 0)},
		{name: "an instance without a node is pending", edit: func(p *PoolObservation) {
			p.Instances = append(p.Instances, ObservedInstance{ID: "i-new", Running: true})
		}, check: counts(4, 1)},
		{name: "an instance whose node is not Ready is pending", edit: func(p *PoolObservation) {
			observedNode(p, "w2").State = NodeDown
		}, check: counts(3, 1)},
		{name: "an instance whose node is draining is current, not pending", edit: func(p *PoolObservation) {
			observedNode(p, "w2").Availability = "drain"
		}, check: counts(3, 0)},
		{name: "an instance that is not running is not counted", edit: func(p *PoolObservation) {
			p.Instances[0].Running = false
			p.Instances = append(p.Instances, ObservedInstance{ID: "i-stopped"})
		}, check: counts(2, 0)},
		{name: "a node without an instance label makes no instance Ready", edit: func(p *PoolObservation) {
			observedNode(p, "w1").InstanceID = ""
			p.Instances = append(p.Instances, ObservedInstance{ID: "", Running: true})
		}, check: counts(4, 2)},
		{name: "in flight is draining", edit: func(p *PoolObservation) { observedNode(p, "w3").InFlight = true },
			check: func(t *testing.T, p ScalePool, _ map[string]time.Time) {
				if !builtNode(t, p, "w3").Draining || builtNode(t, p, "w2").Draining {
					t.Errorf("nodes = %+v, want only w3 draining", p.Nodes)
				}
			}},
		{name: "bounds and times", edit: func(p *PoolObservation) {
			lo, hi := 0, 20
			p.Rules.MinSize, p.Rules.MaxSize = &lo, &hi
			p.PoolMinSize, p.PoolMaxSize = 2, 8
			p.LastScaleUp, p.LastScaleDown = t0.Add(-time.Minute), t0.Add(-time.Hour)
		}, check: func(t *testing.T, p ScalePool, _ map[string]time.Time) {
			if p.MinSize != 2 || p.MaxSize != 8 {
				t.Errorf("bounds [%d, %d], want the pool's [2, 8]", p.MinSize, p.MaxSize)
			}
			if !p.LastScaleUp.Equal(t0.Add(-time.Minute)) || !p.LastScaleDown.Equal(t0.Add(-time.Hour)) {
				t.Errorf("last scale times %v, %v", p.LastScaleUp, p.LastScaleDown)
			}
		}},
	})
}

// The snapshot builder keeps the pools' order, passes the clock and merges
// the pools' unneeded-since entries; a pending task placed on a settling
// node makes Scale ask for nothing.
func TestBuildScaleSnapshot(t *testing.T) {
	a := observedPool(2)
	joined(&a, "w3", time.Second)
	unplaced(&a, 1, cpu2/2, gib)
	b := observedPool(2)
	b.ID = "c/batch"
	for i := range b.Nodes {
		b.Nodes[i].ID = "b" + b.Nodes[i].ID
	}
	observedNode(&b, "bw1").RunningTasks, observedNode(&b, "bw1").Reserved = 0, Resources{}
	earlier := t0.Add(-time.Hour)
	prev := map[string]time.Time{"bw1": earlier, "gone": earlier}
	s, unneeded := BuildScaleSnapshot(ScaleObservation{Now: t0, Pools: []PoolObservation{a, b}, UnneededSince: prev})
	if !s.Now.Equal(t0) || len(s.Pools) != 2 || s.Pools[0].ID != workers || s.Pools[1].ID != "c/batch" {
		t.Fatalf("snapshot = %+v", s)
	}
	if want := map[string]time.Time{"w3": t0, "bw1": earlier}; !maps.Equal(unneeded, want) {
		t.Errorf("unneeded = %v, want %v", unneeded, want)
	}
	plan := Scale(s)
	checkScaleInvariants(t, s, plan)
	if d := plan.Decisions[0]; d.Direction != ScaleHold || d.To != 3 {
		t.Errorf("a task with room on a settling node asked for a node: %+v", d)
	}
	// Ten seconds later the node has settled: the task, still pending,
	// asks for one.
	later := t0.Add(SettleWindow)
	s, _ = BuildScaleSnapshot(ScaleObservation{Now: later, Pools: []PoolObservation{a, b}, UnneededSince: unneeded})
	if d := Scale(s).Decisions[0]; d.Direction != ScaleUp || d.To != 4 {
		t.Errorf("a pending task on settled nodes: %+v", d)
	}
}

func TestScaleInActions(t *testing.T) {
	p := scalePool(4)
	scaleNode(&p, "w2").Role = policy.RoleManager
	down := ScaleDecision{PoolID: workers, From: 4, To: 2, Direction: ScaleDown, Code: CodeTargetTracking,
		Message: "every trusted check allows 2 nodes", RemoveNodes: []string{"w4", "w3"}}
	act := func(node, inst string) Action {
		return Action{Kind: RemoveNode, Key: "scale_in/" + workers + "/node:" + node, PoolID: workers, Role: policy.RoleWorker,
			NodeID: node, InstanceID: inst, Drain: true, Shrink: true, Reason: "scale-in: every trusted check allows 2 nodes"}
	}
	tests := []struct {
		name string
		edit func(d *ScaleDecision)
		want []Action
	}{
		{name: "one action per node, in order", want: []Action{act("w4", "i-w4"), act("w3", "i-w3")}},
		{name: "a node the pool does not list has no instance", edit: func(d *ScaleDecision) { d.RemoveNodes = []string{"x9"} },
			want: []Action{act("x9", "")}},
		{name: "a manager is left out whatever the decision says", edit: func(d *ScaleDecision) { d.RemoveNodes = []string{"w2", "w1"} },
			want: []Action{act("w1", "i-w1")}},
		{name: "a hold has no action", edit: func(d *ScaleDecision) { d.Direction, d.To = ScaleHold, 4 }},
		{name: "a scale-up has no action", edit: func(d *ScaleDecision) { d.Direction, d.To, d.RemoveNodes = ScaleUp, 6, nil }},
		{name: "a scale-down without nodes has no action", edit: func(d *ScaleDecision) { d.RemoveNodes = nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := down
			d.RemoveNodes = slices.Clone(down.RemoveNodes)
			if tt.edit != nil {
				tt.edit(&d)
			}
			if got := ScaleInActions(d, p); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ScaleInActions =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
	// What Scale decides turns into actions for exactly its nodes.
	idleAll(&p, time.Hour)
	p.Checks = []CheckSample{target("cpu", 0.1, 0.6)}
	for i := range p.Nodes {
		p.Nodes[i].RunningTasks = 0
	}
	d := Scale(ScaleSnapshot{Now: t0, Pools: []ScalePool{p}}).Decisions[0]
	acts := ScaleInActions(d, p)
	if d.Direction != ScaleDown || len(acts) != len(d.RemoveNodes) {
		t.Fatalf("decision %+v gave %d actions", d, len(acts))
	}
	for i, a := range acts {
		if a.NodeID != d.RemoveNodes[i] || a.NodeID == "w2" || a.InstanceID != "i-"+a.NodeID {
			t.Errorf("action %d = %+v for %q", i, a, d.RemoveNodes)
		}
	}
}

// A node whose instance was just terminated (a removal between termination
// and node rm) is still Ready in Swarm for a moment: it is neither
// capacity nor draining, or the pool would look smaller than it is and
// min_size would grow it again.
func TestBuildScalePoolTerminatedInstance(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	in := PoolObservation{ID: "c/p", PoolMinSize: 1, PoolMaxSize: 5,
		Nodes: []ObservedNode{
			{ID: "n1", InstanceID: "i1", State: NodeReady, Role: "worker", Availability: "drain", InFlight: true, CreatedAt: now.Add(-time.Hour)},
			{ID: "n2", InstanceID: "i2", State: NodeReady, Role: "worker", Availability: "active", CreatedAt: now.Add(-time.Hour)},
		},
		Instances: []ObservedInstance{{ID: "i1", Running: false}, {ID: "i2", Running: true}},
	}
	p, _ := BuildScalePool(now, in, nil)
	if p.Current != 1 || len(p.Nodes) != 1 || p.Nodes[0].ID != "n2" {
		t.Fatalf("current %d, nodes %+v: want 1 and only n2", p.Current, p.Nodes)
	}
	if d := drainingNodes(&p); d != 0 {
		t.Fatalf("%d draining nodes, want 0: the terminated one is gone already", d)
	}
}
