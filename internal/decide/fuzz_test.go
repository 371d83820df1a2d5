package decide

import (
	"fmt"
	"strings"
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
	s.InstancesAuthoritative = f.chance(2)
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
	concluded, managerActs, leaveFirst, quorumHolds := 0, 0, 0, 0
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
			if a.Refill {
				leaveFirst++
			}
		}
		for _, r := range p.Reasons {
			if strings.Contains(r.Message, "would violate quorum") {
				quorumHolds++
			}
		}
	}
	t.Logf("actions: %v, concluding: %d, manager: %d, leaving first: %d, held for quorum arithmetic: %d",
		seen, concluded, managerActs, leaveFirst, quorumHolds)
	for _, k := range []ActionKind{ReplaceNode, RemoveNode, TerminateInstance} {
		if seen[k] == 0 {
			t.Errorf("no %s in 20000 random snapshots", k)
		}
	}
	if concluded == 0 || managerActs == 0 || leaveFirst == 0 || quorumHolds == 0 {
		t.Errorf("%d concluding, %d manager, %d leaving-first actions and %d quorum holds in 20000 random snapshots",
			concluded, managerActs, leaveFirst, quorumHolds)
	}
}

// managerWorld is a model of one manager pool and its Raft group that
// carries out Heal's plans the way the agent does, one evaluation a
// minute, to check the managers' quorum at every step of a whole healing:
// after every planned step and every change of the world, the members the
// leader reaches are a quorum of the Raft group, counting a joining
// manager as a member that does not vote until it has caught up. The
// group is modelled as swarmkit keeps it: a demoted member leaves only if
// CanRemoveMember allows it, and a leader exists while a quorum is live.
type managerWorld struct {
	t      testing.TB
	target int
	// group: the platform is an instance group (authoritative instances;
	// terminating without shrinking makes it launch a replacement).
	group   bool
	desired int // the group's desired capacity
	now     time.Time
	step    int
	insts   []*simInstance // listed instances, in launch order
	journal []Action
	backoff map[string]Backoff
	fates   []byte // fate of each new instance, in launch order (0 past the end)
	started int
	// heldAtStart: quorum held when the test began; if not, nothing may
	// change at all.
	heldAtStart bool
}

// simInstance is an instance of the pool and, once it joined, its node.
type simInstance struct {
	id      string
	created time.Time
	running bool
	// fate of a new instance: 0 joins and catches up, 1 joins and dies
	// before it caught up, 2 never joins.
	fate   byte
	node   string
	member bool // a Raft member (a manager)
	live   bool // the leader reaches it
	ready  bool
	since  time.Time
	joined int // the step it joined at
}

const simPool = "c/managers"

func newManagerWorld(t testing.TB, managers int, dead uint8, group, hung bool, fates []byte) *managerWorld {
	w := &managerWorld{t: t, target: managers, group: group, desired: managers, now: t0,
		backoff: map[string]Backoff{}, fates: fates}
	for i := range managers {
		id := fmt.Sprintf("m%d", i+1)
		in := &simInstance{id: "i-" + id, created: t0.Add(-time.Hour), running: true, node: id,
			member: true, live: true, ready: true, since: t0.Add(-time.Hour)}
		if dead&(1<<i) != 0 {
			in.running, in.live, in.ready, in.since = hung, false, false, t0
		}
		w.insts = append(w.insts, in)
	}
	members, live := w.counts()
	w.heldAtStart = live*2 > members
	return w
}

func (w *managerWorld) counts() (members, live int) {
	for _, in := range w.insts {
		if in.member {
			members++
			if in.live {
				live++
			}
		}
	}
	return members, live
}

// leader is the first live member, while a quorum is live.
func (w *managerWorld) leader() *simInstance {
	if members, live := w.counts(); live*2 <= members {
		return nil
	}
	for _, in := range w.insts {
		if in.member && in.live {
			return in
		}
	}
	return nil
}

// check asserts the quorum after a step, and that the Raft group never
// grows beyond the pool's size: every failed manager of these runs is
// unreachable, so it leaves before its replacement joins.
func (w *managerWorld) check(what string) {
	w.t.Helper()
	members, live := w.counts()
	if w.heldAtStart && live < members/2+1 {
		w.t.Fatalf("evaluation %d, after %s: %d of %d members reachable, a quorum needs %d", w.step, what, live, members, members/2+1)
	}
	if members > w.target {
		w.t.Fatalf("evaluation %d, after %s: %d members, more than the pool's %d", w.step, what, members, w.target)
	}
	managerUnits := 0
	for _, a := range w.journal {
		if a.Kind == ReplaceNode {
			managerUnits++
		}
	}
	if managerUnits > 1 {
		w.t.Fatalf("evaluation %d, after %s: %d manager replacements in flight", w.step, what, managerUnits)
	}
}

func (w *managerWorld) launch() *simInstance {
	var fate byte
	if w.started < len(w.fates) {
		fate = w.fates[w.started] % 3
	}
	in := &simInstance{id: fmt.Sprintf("i-r%d", w.started), created: w.now, running: true, fate: fate}
	w.started++
	w.insts = append(w.insts, in)
	return in
}

func (w *managerWorld) find(pred func(*simInstance) bool) (int, *simInstance) {
	for i, in := range w.insts {
		if pred(in) {
			return i, in
		}
	}
	return -1, nil
}

func (w *managerWorld) snapshot() Snapshot {
	s := Snapshot{Now: w.now, Backoff: w.backoff, InstancesAuthoritative: w.group}
	addPool(&s, simPool, policy.RoleManager, w.target, w.target, w.target)
	s.Pools[0].Rules.MaxUnhealthyPercent = 100 // the breaker is not under test
	lead := w.leader()
	members, live := w.counts()
	s.Quorum = Quorum{Managers: members, Reachable: live, LeaderPresent: lead != nil}
	for _, in := range w.insts {
		s.Instances = append(s.Instances, Instance{ID: in.id, PoolID: simPool, CreatedAt: in.created, Running: in.running, NodeID: in.node})
		if in.node == "" {
			continue
		}
		n := Node{ID: in.node, PoolID: simPool, InstanceID: in.id, Role: policy.RoleWorker, State: NodeDown,
			Availability: "active", CreatedAt: in.created, StateSince: in.since, Leader: in == lead}
		if in.ready {
			n.State = NodeReady
		}
		if in.member {
			n.Role, n.ManagerReachability = policy.RoleManager, Unreachable
			if in.live {
				n.ManagerReachability = Reachable
			}
		}
		s.Nodes = append(s.Nodes, n)
	}
	s.InFlight = append(s.InFlight, w.journal...)
	return s
}

// terminate ends an instance; on a group, lowering its desired capacity
// unless refill says the group is to replace it.
func (w *managerWorld) terminate(id string, refill bool) {
	i, in := w.find(func(in *simInstance) bool { return in.id == id })
	if in == nil {
		return
	}
	if in.node != "" {
		w.t.Fatalf("evaluation %d: instance %s terminated while its node %s is in the swarm", w.step, id, in.node)
	}
	w.insts = append(w.insts[:i], w.insts[i+1:]...)
	if w.group && !refill {
		w.desired--
	}
}

func (w *managerWorld) finish(a Action) {
	if a.Completes == "" {
		return
	}
	for i, e := range w.journal {
		if e.Key == a.Completes {
			w.journal = append(w.journal[:i], w.journal[i+1:]...)
			break
		}
	}
	switch a.Outcome {
	case OutcomeReplaced:
		delete(w.backoff, a.PoolID)
	case OutcomeJoinFailed, OutcomeReplacementFailed:
		b := w.backoff[a.PoolID]
		b.Failures++
		b.LastFailure = w.now
		w.backoff[a.PoolID] = b
	}
}

// apply carries out a plan's actions in order, as the agent does.
func (w *managerWorld) apply(p Plan) {
	for _, a := range p.Actions {
		switch a.Kind {
		case ReplaceNode:
			if w.group {
				w.desired++
			}
			a.Replacement = w.launch().id
			w.journal = append(w.journal, a)
		case RemoveNode:
			if _, in := w.find(func(in *simInstance) bool { return in.node == a.NodeID }); in != nil {
				if in.member {
					members, live := w.counts()
					if in.live {
						live--
					}
					if !a.Demote || live < (members-1)/2+1 {
						w.t.Fatalf("evaluation %d: %s: swarm refuses to demote %s: %d reachable of %d members after (demote %t)", w.step, a.Key, a.NodeID, live, members-1, a.Demote)
					}
				}
				in.node, in.member, in.live = "", false, false
			}
			if a.InstanceID != "" {
				w.terminate(a.InstanceID, a.Refill)
			}
			w.finish(a)
		case TerminateInstance:
			w.terminate(a.InstanceID, false)
			w.finish(a)
		}
		w.check(a.Key)
	}
}

// advance moves the world on by one evaluation interval: joined managers
// catch up or die, started instances join, a group fills up to its
// desired capacity.
func (w *managerWorld) advance() {
	w.now = w.now.Add(time.Minute)
	w.step++
	for _, in := range w.insts {
		if in.node == "" || !in.member || in.live || !in.running || in.joined == 0 || in.joined == w.step {
			continue
		}
		switch in.fate {
		case 0:
			in.live = true
		case 1:
			in.running, in.ready, in.since = false, false, w.now
		}
		w.check("manager " + in.node + " caught up or died")
	}
	for _, in := range w.insts {
		if in.node == "" && in.running && in.fate != 2 && in.created.Before(w.now) && in.joined == 0 {
			in.node, in.member, in.ready, in.since, in.joined = "n-"+in.id, true, true, w.now, w.step
			w.check("manager " + in.node + " joined")
		}
	}
	for w.group && len(w.insts) < w.desired {
		w.launch()
	}
}

// settled: the pool is whole again, every member reachable, nothing left.
func (w *managerWorld) settled() bool {
	members, live := w.counts()
	if members != w.target || live != members || len(w.journal) > 0 || len(w.insts) != w.target {
		return false
	}
	for _, in := range w.insts {
		if !in.running || in.node == "" {
			return false
		}
	}
	return true
}

// run heals until the pool is whole, for at most steps evaluations.
func (w *managerWorld) run(steps int) {
	w.t.Helper()
	w.check("the failures")
	for range steps {
		w.advance()
		s := w.snapshot()
		p := Heal(s)
		checkInvariants(w.t, s, p)
		if !w.heldAtStart && len(p.Actions) > 0 {
			w.t.Fatalf("evaluation %d: actions %q without quorum", w.step, keys(p))
		}
		w.apply(p)
		if w.settled() {
			return
		}
	}
	if w.heldAtStart && w.leader() != nil {
		members, live := w.counts()
		w.t.Fatalf("not healed after %d evaluations: %d members, %d reachable, %d instances, journal %q",
			steps, members, live, len(w.insts), keys(Plan{Actions: w.journal}))
	}
}

// TestManagerHealingKeepsQuorum heals every pattern of dead managers of
// pools of 1, 3, 5 and 7 on both kinds of platform, with managers that are
// dead or hung (their instance still runs), and replacements that succeed,
// die before they catch up, or never join.
func TestManagerHealingKeepsQuorum(t *testing.T) {
	fatePatterns := [][]byte{nil, {1}, {2}, {1, 2, 1}}
	runs := 0
	for _, managers := range []int{1, 3, 5, 7} {
		for dead := range 1 << managers {
			for _, group := range []bool{false, true} {
				for _, hung := range []bool{false, true} {
					for fi, fates := range fatePatterns {
						name := fmt.Sprintf("%d managers, dead %0*b, group %t, hung %t, fates %d", managers, managers, dead, group, hung, fi)
						ok := t.Run(name, func(t *testing.T) {
							newManagerWorld(t, managers, uint8(dead), group, hung, fates).run(200)
						})
						if !ok {
							return
						}
						runs++
					}
				}
			}
		}
	}
	t.Logf("%d healings", runs)
}

// FuzzManagerHealing is TestManagerHealingKeepsQuorum on random pools,
// failures and fates.
func FuzzManagerHealing(f *testing.F) {
	f.Add([]byte{1, 0b010, 0, 1})
	f.Add([]byte{2, 0b00110, 1, 1, 2, 0, 1})
	f.Add([]byte{3, 0b1000101, 2, 2, 2, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &fuzzReader{b: data}
		managers := []int{1, 3, 5, 7}[r.intn(4)]
		dead := r.next() & (1<<managers - 1)
		flags := r.next()
		fates := r.b
		if len(fates) > 8 {
			fates = fates[:8] // a bounded number of failed attempts: it must converge
		}
		newManagerWorld(t, managers, dead, flags&1 != 0, flags&2 != 0, fates).run(300)
	})
}
