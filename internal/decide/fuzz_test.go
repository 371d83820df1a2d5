package decide

import (
	"fmt"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// fuzzReader turns fuzz bytes into choices; past the end every choice is 0.
type fuzzReader struct{ b []byte }

func (f *fuzzReader) next() byte {
	if len(f.b) == 0 {
		return 0
	}
	c := f.b[0]
	f.b = f.b[1:]
	return c
}

// intn returns a number in [0, n).
func (f *fuzzReader) intn(n int) int { return int(f.next()) % n }

// chance is true k times out of 8.
func (f *fuzzReader) chance(k int) bool { return f.intn(8) < k }

// fuzzSnapshot builds a small, often inconsistent snapshot: random pools,
// nodes, instances, journal entries and quorum, with ids drawn from small
// sets so that links (node <-> instance, action -> subject, replacement,
// completes) often hit something.
func fuzzSnapshot(data []byte) Snapshot {
	f := &fuzzReader{b: data}
	s := Snapshot{Now: t0}

	nPools := 1 + f.intn(4)
	for i := range nPools {
		role := policy.RoleWorker
		if f.chance(3) {
			role = policy.RoleManager
		}
		if f.intn(32) == 0 {
			role = "robot"
		}
		minSize := f.intn(4)
		maxSize := minSize + f.intn(5)
		if f.intn(16) == 0 {
			maxSize = minSize - 1
		}
		p := PoolState{
			ID: fmt.Sprintf("c/p%d", i), Role: role,
			MinSize: minSize, MaxSize: maxSize, DesiredSize: f.intn(8),
			HasPolicy: !f.chance(1),
			Rules: policy.HealingRules{
				UnhealthyAfter:            time.Duration(f.intn(4)) * 20 * time.Second,
				JoinTimeout:               time.Duration(1+f.intn(4)) * time.Minute,
				MinNodeAge:                time.Duration(f.intn(3)) * 30 * time.Minute,
				MaxUnhealthyPercent:       1 + f.intn(100),
				MaxConcurrentReplacements: 1 + f.intn(3),
				Enabled:                   !f.chance(1),
			},
		}
		if f.intn(32) == 0 && i > 0 {
			p.ID = s.Pools[0].ID // a repeated id
		}
		s.Pools = append(s.Pools, p)
	}
	poolID := func() string {
		if f.intn(16) == 0 {
			return "c/unknown"
		}
		return fmt.Sprintf("c/p%d", f.intn(nPools))
	}
	roleOf := func(id string) string {
		for _, p := range s.Pools {
			if p.ID == id {
				return p.Role
			}
		}
		return policy.RoleWorker
	}
	ago := func(step time.Duration, n int) time.Time { return t0.Add(-time.Duration(f.intn(n)) * step) }
	states := []string{NodeReady, NodeReady, NodeReady, NodeReady, NodeDown, NodeUnknown, NodeDisconnected, "error"}
	reach := []string{Reachable, Unreachable, ""}

	nNodes := f.intn(16)
	for i := range nNodes {
		pool := poolID()
		n := Node{
			ID: fmt.Sprintf("n%d", i), PoolID: pool, Role: roleOf(pool),
			State:               states[f.intn(len(states))],
			ManagerReachability: reach[f.intn(len(reach))],
			StateSince:          ago(20*time.Second, 10),
			CreatedAt:           ago(30*time.Minute, 4),
			RunningTasks:        f.intn(3),
		}
		if f.intn(8) == 0 {
			n.StateSince = time.Time{}
		}
		if !f.chance(1) {
			n.InstanceID = fmt.Sprintf("i%d", f.intn(24))
		}
		s.Nodes = append(s.Nodes, n)
	}
	if len(s.Nodes) > 0 && f.chance(6) {
		s.Nodes[f.intn(len(s.Nodes))].Leader = true
	}
	nInstances := f.intn(24)
	for i := range nInstances {
		in := Instance{
			ID: fmt.Sprintf("i%d", i), PoolID: poolID(),
			CreatedAt: ago(time.Minute, 12), Running: f.chance(6),
		}
		if f.chance(4) && nNodes > 0 {
			in.NodeID = fmt.Sprintf("n%d", f.intn(nNodes))
		}
		if f.intn(16) == 0 {
			in.CreatedAt = time.Time{}
		}
		s.Instances = append(s.Instances, in)
	}

	kinds := []ActionKind{ReplaceNode, ReplaceNode, RemoveNode, TerminateInstance}
	var replaceKeys []string
	for range f.intn(6) {
		pool := poolID()
		a := Action{Kind: kinds[f.intn(len(kinds))], PoolID: pool, Role: roleOf(pool)}
		if f.chance(5) {
			a.NodeID = fmt.Sprintf("n%d", f.intn(16))
		}
		if f.chance(5) {
			a.InstanceID = fmt.Sprintf("i%d", f.intn(24))
		}
		if a.Kind == ReplaceNode && f.chance(6) {
			a.Replacement = fmt.Sprintf("i%d", f.intn(26))
		}
		if a.Kind != ReplaceNode && len(replaceKeys) > 0 && f.chance(5) {
			a.Completes = replaceKeys[f.intn(len(replaceKeys))]
		}
		a.Key = actionKey(a.Kind, a.PoolID, a.NodeID, a.InstanceID)
		if a.Kind == ReplaceNode {
			replaceKeys = append(replaceKeys, a.Key)
		}
		s.InFlight = append(s.InFlight, a)
	}

	if f.chance(3) {
		s.Backoff = map[string]Backoff{}
		for range 1 + f.intn(3) {
			s.Backoff[poolID()] = Backoff{Failures: f.intn(9), LastFailure: ago(30*time.Second, 30)}
		}
	}
	managers := f.intn(8)
	s.Quorum = Quorum{Managers: managers, Reachable: f.intn(managers + 1), LeaderPresent: f.chance(6)}
	if f.chance(4) { // mostly a healthy quorum, so manager paths are reached
		s.Quorum.Reachable = max(0, managers-f.intn(2))
	}
	return s
}

// FuzzHeal checks the plan invariants on random snapshots: sizes stay in
// bounds, at most one manager action and none without quorum, no node
// twice, no in-flight key repeated, a reason for every pool (and the rest
// of checkInvariants).
func FuzzHeal(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("\x02\x00\x02\x03\x04\x07\x07\x01\x02\x03\x13\x02\x07\x07\x0a\x02\x02\x00\x01\x04"))
	f.Add([]byte("a healthy cluster with a few failed nodes and a replacement in flight"))
	for i := range 16 {
		seed := make([]byte, 96)
		for j := range seed {
			seed[j] = byte(i*37 + j*11)
		}
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := fuzzSnapshot(data)
		checkInvariants(t, s, Heal(s))
	})
}

// TestFuzzSnapshotsAct makes sure the fuzz generator reaches the
// interesting paths, not only holds: a fuzzer that never sees an action
// proves nothing.
func TestFuzzSnapshotsAct(t *testing.T) {
	seen := map[ActionKind]int{}
	concluded, managerActs := 0, 0
	for i := range 20000 {
		data := make([]byte, 128)
		x := uint32(i*2654435761 + 1)
		for j := range data {
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			data[j] = byte(x)
		}
		s := fuzzSnapshot(data)
		p := Heal(s)
		checkInvariants(t, s, p)
		if t.Failed() {
			t.Fatalf("invariants broken for seed %d", i)
		}
		for _, a := range p.Actions {
			seen[a.Kind]++
			if a.Completes != "" {
				concluded++
			}
			if a.Role == policy.RoleManager {
				managerActs++
			}
		}
	}
	t.Logf("actions: %v, concluding: %d, manager: %d", seen, concluded, managerActs)
	for _, k := range []ActionKind{ReplaceNode, RemoveNode, TerminateInstance} {
		if seen[k] == 0 {
			t.Errorf("no %s in 20000 random snapshots", k)
		}
	}
	if concluded == 0 || managerActs == 0 {
		t.Errorf("%d concluding and %d manager actions in 20000 random snapshots", concluded, managerActs)
	}
}
