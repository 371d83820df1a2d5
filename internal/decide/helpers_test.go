package decide

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// t0 is the fake clock of every test.
var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

const (
	managers = "c/managers"
	workers  = "c/workers"
)

// defaultRules are the tests' healing rules: the defaults but quick to
// judge, as tests set them (30 s Down, no minimum age). The production
// defaults are TestHealProductionDefaults'.
func defaultRules() policy.HealingRules {
	h := policy.DefaultHealing(workers)
	h.UnhealthyAfter, h.MinNodeAge = "30s", "0s"
	r, err := h.Rules()
	if err != nil {
		panic(err)
	}
	return r
}

// cluster builds a healthy cluster: m managers (m1 leads) in c/managers and
// w workers in c/workers (bounds [1, 10], desired w), every node an hour old.
func cluster(m, w int) Snapshot {
	s := Snapshot{Now: t0, Quorum: Quorum{Managers: m, Reachable: m, LeaderPresent: true}}
	addPool(&s, managers, policy.RoleManager, m, m, m)
	addNodes(&s, managers, "m", m)
	s.Nodes[0].Leader = true
	addPool(&s, workers, policy.RoleWorker, 1, 10, w)
	addNodes(&s, workers, "w", w)
	return s
}

func addPool(s *Snapshot, id, role string, minSize, maxSize, desired int) {
	s.Pools = append(s.Pools, PoolState{ID: id, Role: role, MinSize: minSize, MaxSize: maxSize,
		DesiredSize: desired, Rules: defaultRules(), HasPolicy: true})
}

// addNodes adds n ready nodes prefix1..prefixN on instances i-prefix1...
func addNodes(s *Snapshot, poolID, prefix string, n int) {
	role := policy.RoleWorker
	if p := findPool(s, poolID); p != nil {
		role = p.Role
	}
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("%s%d", prefix, i)
		addInstance(s, "i-"+id, poolID, time.Hour, true, id)
		addNode(s, id, poolID, role, "i-"+id)
	}
}

func addNode(s *Snapshot, id, poolID, role, instanceID string) *Node {
	n := Node{ID: id, PoolID: poolID, InstanceID: instanceID, Role: role, State: NodeReady,
		Availability: "active", CreatedAt: t0.Add(-time.Hour), StateSince: t0.Add(-time.Hour)}
	if role == policy.RoleManager {
		n.ManagerReachability = Reachable
	}
	s.Nodes = append(s.Nodes, n)
	return &s.Nodes[len(s.Nodes)-1]
}

func addInstance(s *Snapshot, id, poolID string, age time.Duration, running bool, nodeID string) *Instance {
	s.Instances = append(s.Instances, Instance{ID: id, PoolID: poolID, CreatedAt: t0.Add(-age), Running: running, NodeID: nodeID})
	return &s.Instances[len(s.Instances)-1]
}

func findPool(s *Snapshot, id string) *PoolState {
	for i := range s.Pools {
		if s.Pools[i].ID == id {
			return &s.Pools[i]
		}
	}
	return nil
}

func findNode(s *Snapshot, id string) *Node {
	for i := range s.Nodes {
		if s.Nodes[i].ID == id {
			return &s.Nodes[i]
		}
	}
	panic("no node " + id)
}

func findInstance(s *Snapshot, id string) *Instance {
	for i := range s.Instances {
		if s.Instances[i].ID == id {
			return &s.Instances[i]
		}
	}
	panic("no instance " + id)
}

// fail puts a node in state for the last ago.
func fail(s *Snapshot, id, state string, ago time.Duration) {
	n := findNode(s, id)
	n.State = state
	n.StateSince = t0.Add(-ago)
	if n.Role == policy.RoleManager {
		n.ManagerReachability = Unreachable
	}
}

// syncQuorum sets the snapshot's Raft view from its nodes, as the agent
// does: every manager is a member, the reachable ones are live.
func syncQuorum(s *Snapshot) {
	q := Quorum{}
	for _, n := range s.Nodes {
		if n.Role != policy.RoleManager {
			continue
		}
		q.Managers++
		if n.ManagerReachability == Reachable {
			q.Reachable++
		}
		if n.Leader {
			q.LeaderPresent = true
		}
	}
	s.Quorum = q
}

// leaveFirst makes manager id leave first, as a Refill removal did: its
// node is gone from the swarm, its instance is listed, no longer running.
func leaveFirst(s *Snapshot, id string) {
	s.Nodes = slices.DeleteFunc(s.Nodes, func(n Node) bool { return n.ID == id })
	in := findInstance(s, "i-"+id)
	in.Running, in.NodeID = false, ""
	syncQuorum(s)
}

// inFlight journals a started action and returns its key.
func inFlight(s *Snapshot, kind ActionKind, poolID, nodeID, instanceID, replacement, completes string) string {
	role := policy.RoleWorker
	if p := findPool(s, poolID); p != nil {
		role = p.Role
	}
	a := Action{Kind: kind, PoolID: poolID, Role: role, NodeID: nodeID, InstanceID: instanceID,
		Replacement: replacement, Completes: completes, Key: actionKey(kind, poolID, nodeID, instanceID)}
	s.InFlight = append(s.InFlight, a)
	return a.Key
}

func keys(p Plan) []string {
	out := []string{}
	for _, a := range p.Actions {
		out = append(out, a.Key)
	}
	return out
}

func codes(p Plan) map[string]ReasonCode {
	out := map[string]ReasonCode{}
	for _, r := range p.Reasons {
		out[r.PoolID] = r.Code
	}
	return out
}

// checkInvariants asserts the safety rules every plan keeps, whatever the
// snapshot. The table tests and FuzzHeal share it.
func checkInvariants(t testing.TB, s Snapshot, p Plan) {
	t.Helper()
	if again := Heal(s); !reflect.DeepEqual(again, p) {
		t.Errorf("Heal is not deterministic:\n first %+v\nsecond %+v", p, again)
	}

	// Every pool has exactly one reason, in order.
	if len(p.Reasons) != len(s.Pools) {
		t.Fatalf("%d reasons for %d pools: %+v", len(p.Reasons), len(s.Pools), p.Reasons)
	}
	pools := map[string]*PoolState{}
	reasons := map[string]Reason{}
	for i, r := range p.Reasons {
		if r.PoolID != s.Pools[i].ID || r.Code == "" || r.Message == "" {
			t.Errorf("reason %d = %+v for pool %q", i, r, s.Pools[i].ID)
		}
		if _, dup := pools[r.PoolID]; !dup {
			pools[r.PoolID] = &s.Pools[i]
			reasons[r.PoolID] = r
		}
	}

	// Links as Heal documents them: either side may name the other, both
	// must be in the snapshot, and each side's own field wins.
	nodes := map[string]*Node{}
	for i := range s.Nodes {
		nodes[s.Nodes[i].ID] = &s.Nodes[i]
	}
	instances := map[string]*Instance{}
	for i := range s.Instances {
		instances[s.Instances[i].ID] = &s.Instances[i]
	}
	nodeOf := map[string]*Node{}         // by instance ID
	instanceOf := map[string]*Instance{} // by node ID
	for i := range s.Instances {
		in := &s.Instances[i]
		if n := nodes[in.NodeID]; n != nil && in.NodeID != "" {
			nodeOf[in.ID] = n
			instanceOf[n.ID] = in
		}
	}
	for i := range s.Nodes {
		n := &s.Nodes[i]
		if in := instances[n.InstanceID]; in != nil && n.InstanceID != "" {
			instanceOf[n.ID] = in
			if nodeOf[in.ID] == nil {
				nodeOf[in.ID] = n
			}
		}
	}
	subjectInstance := func(a *Action) *Instance {
		if in := instances[a.InstanceID]; in != nil && a.InstanceID != "" {
			return in
		}
		if a.NodeID != "" {
			return instanceOf[a.NodeID]
		}
		return nil
	}
	runningIn := func(in *Instance, poolID string) bool { return in != nil && in.Running && in.PoolID == poolID }

	inflight := map[string]*Action{}
	firstKey := map[string]*Action{} // the entry that speaks for a repeated key
	concluding := map[string]bool{}
	managerBusy, managerReplacing := false, false
	for i := range s.InFlight {
		a := &s.InFlight[i]
		inflight[a.Key] = a
		if firstKey[a.Key] == nil {
			firstKey[a.Key] = a
		}
		manager := a.Role == policy.RoleManager || (pools[a.PoolID] != nil && pools[a.PoolID].Role == policy.RoleManager)
		if a.Kind == ReplaceNode {
			managerReplacing = managerReplacing || manager
			continue
		}
		managerBusy = managerBusy || manager
		if a.Completes != "" {
			concluding[a.Completes] = true
		}
	}

	// Keys, subjects, manager changes, conclusions.
	seenKeys := map[string]bool{}
	seenNodes := map[string]bool{}
	seenInstances := map[string]bool{}
	concluded := map[string]bool{}
	managerActions := 0
	perPool := map[string][]Action{}
	for _, a := range p.Actions {
		pool := pools[a.PoolID]
		if pool == nil {
			t.Fatalf("action %+v for a pool not in the snapshot", a)
		}
		perPool[a.PoolID] = append(perPool[a.PoolID], a)
		if a.Key != actionKey(a.Kind, a.PoolID, a.NodeID, a.InstanceID) || a.Role != pool.Role || a.Reason == "" {
			t.Errorf("malformed action %+v", a)
		}
		if seenKeys[a.Key] {
			t.Errorf("key %s twice in the plan", a.Key)
		}
		seenKeys[a.Key] = true
		if inflight[a.Key] != nil {
			t.Errorf("action %s repeats an action in flight", a.Key)
		}
		if a.NodeID != "" {
			if seenNodes[a.NodeID] {
				t.Errorf("two actions for node %s", a.NodeID)
			}
			seenNodes[a.NodeID] = true
			if n := nodes[a.NodeID]; n != nil && n.Leader {
				t.Errorf("action %s touches the leader", a.Key)
			}
		}
		if a.InstanceID != "" {
			if seenInstances[a.InstanceID] {
				t.Errorf("two actions for instance %s", a.InstanceID)
			}
			seenInstances[a.InstanceID] = true
		}
		if a.Refill {
			n := nodes[a.NodeID]
			switch {
			case a.Kind != RemoveNode || pool.Role != policy.RoleManager || a.Completes != "":
				t.Errorf("refill on %s: only a manager's removal that concludes nothing leaves before its replacement", a.Key)
			case a.InstanceID != "" && !s.InstancesAuthoritative:
				t.Errorf("refill %s terminates instance %s where no group refills the pool", a.Key, a.InstanceID)
			case n == nil || (n.Role == policy.RoleManager && n.ManagerReachability == Reachable):
				t.Errorf("refill %s: the subject must be a listed node the leader does not reach", a.Key)
			}
		}
		if pool.Role == policy.RoleManager {
			managerActions++
			if !s.Quorum.Held() {
				t.Errorf("manager action %s without quorum %+v", a.Key, s.Quorum)
			}
			// Quorum after the step, whatever comes next: a joining
			// manager is a member before it is reachable; a removed one
			// takes its vote, if it had one, with it.
			q := s.Quorum
			switch n := nodes[a.NodeID]; {
			case a.Kind == ReplaceNode && q.Reachable < (q.Managers+1)/2+1:
				t.Errorf("manager replacement %s joins with %d of %d members reachable: %d of %d if it never catches up", a.Key, q.Reachable, q.Managers, q.Reachable, q.Managers+1)
			case a.Kind == RemoveNode && n != nil && n.Role == policy.RoleManager:
				live := 0
				if n.ManagerReachability == Reachable {
					live = 1
				}
				if after, members := q.Reachable-live, q.Managers-1; after*2 <= members {
					t.Errorf("manager removal %s leaves %d reachable of %d members", a.Key, after, members)
				}
			}
			if managerBusy {
				t.Errorf("manager action %s while a manager change is in flight", a.Key)
			}
			if managerReplacing && a.Completes == "" {
				t.Errorf("manager action %s starts a change while a manager replacement is in flight", a.Key)
			}
			if a.Kind == RemoveNode && !a.Demote {
				t.Errorf("manager removal %s does not demote first", a.Key)
			}
		}
		if n := nodes[a.NodeID]; a.Kind == RemoveNode && n != nil && n.RunningTasks > 0 && !a.Drain {
			t.Errorf("removal %s of a node with %d running tasks does not drain", a.Key, n.RunningTasks)
		}
		if a.Kind == ReplaceNode && a.Completes != "" {
			t.Errorf("replacement %s claims to conclude %s", a.Key, a.Completes)
		}
		if (a.Completes == "") != (a.Outcome == "") {
			t.Errorf("action %s concludes %q with outcome %q", a.Key, a.Completes, a.Outcome)
		}
		if a.Completes != "" {
			r := inflight[a.Completes]
			switch {
			case r == nil || r.Kind != ReplaceNode || r.PoolID != a.PoolID:
				t.Errorf("action %s concludes %q, not a replacement in flight in its pool", a.Key, a.Completes)
			case concluding[a.Completes]:
				t.Errorf("action %s concludes %s, which is being concluded already", a.Key, a.Completes)
			case concluded[a.Completes]:
				t.Errorf("two actions conclude %s", a.Completes)
			}
			concluded[a.Completes] = true
		}
	}
	if managerActions > 1 {
		t.Errorf("%d manager actions in one plan", managerActions)
	}

	for id, pool := range pools {
		acts := perPool[id]
		code := reasons[id].Code
		if (code == ReasonHealing) != (len(acts) > 0) {
			t.Errorf("pool %s: reason %q with %d actions", id, code, len(acts))
		}
		if len(acts) == 0 {
			continue
		}
		if !pool.HasPolicy || !pool.Rules.Enabled {
			t.Errorf("pool %s acts without an enabled policy", id)
		}
		if pool.Role == policy.RoleManager && !s.Quorum.Held() {
			t.Errorf("manager pool %s acts without quorum", id)
		}

		// Circuit breaker, pool and cluster; replacements in flight do not
		// count as unhealthy.
		replacements := map[string]bool{}
		for _, a := range s.InFlight {
			if n := nodeOf[a.Replacement]; a.Kind == ReplaceNode && a.Replacement != "" && n != nil {
				replacements[n.ID] = true
			}
		}
		bad, all, cbad := 0, 0, 0
		for i := range s.Nodes {
			n := &s.Nodes[i]
			u := (n.State != NodeReady || n.ManagerReachability == Unreachable) && !replacements[n.ID]
			if u {
				cbad++
			}
			if n.PoolID == id {
				all++
				if u {
					bad++
				}
			}
		}
		pct := pool.Rules.MaxUnhealthyPercent
		if (bad > 1 && bad*100 > pct*all) || (cbad > 1 && cbad*100 > pct*len(s.Nodes)) {
			t.Errorf("pool %s acts with %d/%d unhealthy in the pool, %d/%d in the cluster, max %d%%", id, bad, all, cbad, len(s.Nodes), pct)
		}

		// Budget and backoff.
		replacing, started := 0, 0
		for _, a := range firstKey {
			if a.Kind == ReplaceNode && a.PoolID == id {
				replacing++
			}
		}
		for _, a := range acts {
			if a.Kind == ReplaceNode {
				started++
			}
		}
		if started > 0 && replacing+started > pool.Rules.MaxConcurrentReplacements {
			t.Errorf("pool %s: %d replacements in flight + %d started > max %d", id, replacing, started, pool.Rules.MaxConcurrentReplacements)
		}
		if b := s.Backoff[id]; started > 0 && b.Failures > 0 && !b.LastFailure.IsZero() && s.Now.Before(b.LastFailure.Add(BackoffDelay(b.Failures))) {
			t.Errorf("pool %s starts replacements during backoff %+v", id, b)
		}

		// Size. eff is the pool's size less the temporary extra instance of
		// each unit in progress; target is the desired size within bounds.
		eff := 0
		for _, in := range s.Instances {
			if runningIn(&in, id) {
				eff++
			}
		}
		for _, a := range firstKey {
			if a.Kind != ReplaceNode || a.PoolID != id || a.Replacement == "" {
				continue
			}
			rep, subj := instances[a.Replacement], subjectInstance(a)
			if runningIn(rep, id) && runningIn(subj, id) && rep != subj {
				eff--
			}
		}
		target := min(max(pool.DesiredSize, pool.MinSize), pool.MaxSize)
		if target < pool.MinSize || target > pool.MaxSize {
			t.Fatalf("pool %s: bounds [%d, %d] are broken but it acts", id, pool.MinSize, pool.MaxSize)
		}
		for _, a := range acts {
			switch {
			case a.Kind == ReplaceNode:
				// A replacement of something still running is one unit:
				// +1 now, -1 when it concludes. Anything else grows the
				// pool for good and must stay within its target.
				if runningIn(instances[a.InstanceID], id) {
					continue
				}
				if eff >= target {
					t.Errorf("pool %s: %s grows the pool beyond %d (size %d)", id, a.Key, target, eff)
				}
				eff++
			case a.Completes != "":
				// Concludes a unit: takes back its extra instance.
			case a.Kind == TerminateInstance:
				t.Errorf("pool %s: %s shrinks the pool without concluding a replacement", id, a.Key)
			case a.Kind == RemoveNode && a.Refill:
				// Leaves before its replacement: the pool is refilled
				// after (by its group, or by a later replacement).
			case a.Kind == RemoveNode:
				if in := subjectInstance(&a); runningIn(in, id) {
					t.Errorf("pool %s: %s removes a running instance without concluding a replacement", id, a.Key)
				}
			}
		}
	}
}
