package decide

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// scaleSim is one worker pool driven through the scaling core on a fake
// clock, the way the agent drives it: every evaluation observes the pool,
// builds the snapshot (BuildScaleSnapshot, keeping the unneeded clocks),
// adds the journal's actions and the remembered recommendations, decides
// (Scale) and carries the decision out. New instances join as Ready nodes
// joinDelay after their launch; a scale-in drains its nodes for drainTime,
// then terminates them and ends their journal entries.
type scaleSim struct {
	t     *testing.T
	now   time.Time
	rules policy.ScalingRules
	// Pool bounds.
	minSize, maxSize     int
	joinDelay, drainTime time.Duration
	capacity             Resources

	nodes    []*scaleSimNode
	seq      int
	lastUp   time.Time
	lastDown time.Time
	unneeded map[string]time.Time
	recs     []Recommendation
	journal  []Action // in flight: scale-in removals and injected healing

	// The world: what runs on a node, which tasks pend, what the checks
	// read. Any may be nil.
	load    func(s *scaleSim, n *scaleSimNode) (running int, reserved Resources)
	pending func(s *scaleSim) []ObservedTask
	samples func(s *scaleSim) []CheckSample

	// What happened.
	last       ScaleDecision
	changes    int            // decisions that changed the pool's size
	directions int            // changes whose direction differs from the previous change's
	lastDir    ScaleDirection // of the last change
	shortest   time.Duration  // shortest life of a node chosen for removal
	removed    int
	maxDeletes int // most nodes one decision removed
}

type scaleSimNode struct {
	id, inst   string
	launched   time.Time
	joinAt     time.Time
	draining   bool
	removeAt   time.Time
	journalKey string
}

func newScaleSim(t *testing.T, rules policy.ScalingRules, minSize, maxSize, nodes int) *scaleSim {
	s := &scaleSim{t: t, now: t0, rules: rules, minSize: minSize, maxSize: maxSize,
		joinDelay: time.Minute, drainTime: time.Minute, capacity: Resources{NanoCPUs: cpu2, MemoryBytes: 4 * gib},
		shortest: time.Duration(math.MaxInt64)}
	for range nodes {
		n := s.launch()
		// Joined long ago.
		n.launched, n.joinAt = t0.Add(-24*time.Hour), t0.Add(-24*time.Hour)
	}
	return s
}

func (s *scaleSim) launch() *scaleSimNode {
	s.seq++
	n := &scaleSimNode{id: fmt.Sprintf("w%03d", s.seq), inst: fmt.Sprintf("i-%03d", s.seq), launched: s.now, joinAt: s.now.Add(s.joinDelay)}
	s.nodes = append(s.nodes, n)
	return n
}

// size counts the pool's running instances, joined or not.
func (s *scaleSim) size() int { return len(s.nodes) }

// ready counts the Ready nodes that are not on their way out.
func (s *scaleSim) ready() int {
	k := 0
	for _, n := range s.nodes {
		if !s.now.Before(n.joinAt) && !n.draining {
			k++
		}
	}
	return k
}

// draining counts the nodes a scale-in is draining or removing.
func (s *scaleSim) draining() int {
	k := 0
	for _, n := range s.nodes {
		if n.draining {
			k++
		}
	}
	return k
}

// step runs one evaluation at s.now and advances the clock by the
// evaluation interval.
func (s *scaleSim) step() ScaleDecision {
	t := s.t
	// Removals whose drain is over: terminated, and their entries end.
	kept := s.nodes[:0]
	for _, n := range s.nodes {
		if n.draining && !s.now.Before(n.removeAt) {
			s.endAction(n.journalKey)
			continue
		}
		kept = append(kept, n)
	}
	s.nodes = kept

	inFlight := map[string]bool{}
	for _, a := range s.journal {
		inFlight[a.NodeID] = true
	}
	po := PoolObservation{ID: workers, Rules: s.rules, PoolMinSize: s.minSize, PoolMaxSize: s.maxSize,
		LastScaleUp: s.lastUp, LastScaleDown: s.lastDown}
	for _, n := range s.nodes {
		po.Instances = append(po.Instances, ObservedInstance{ID: n.inst, Running: true, InFlight: inFlight[n.id]})
		if s.now.Before(n.joinAt) {
			continue
		}
		on := ObservedNode{ID: n.id, InstanceID: n.inst, State: NodeReady, Role: policy.RoleWorker, Availability: "active",
			InFlight: inFlight[n.id], CreatedAt: n.joinAt, Capacity: s.capacity}
		if n.draining {
			on.Availability = "drain"
		} else if s.load != nil {
			on.RunningTasks, on.Reserved = s.load(s, n)
		}
		po.Nodes = append(po.Nodes, on)
	}
	if s.pending != nil {
		po.PendingTasks = s.pending(s)
	}
	if s.samples != nil {
		po.Samples = s.samples(s)
	}
	snap, unneeded := BuildScaleSnapshot(ScaleObservation{Now: s.now, Pools: []PoolObservation{po}, UnneededSince: s.unneeded})
	s.unneeded = unneeded
	for _, a := range s.journal {
		if a.PoolID == workers {
			snap.Pools[0].InFlight = append(snap.Pools[0].InFlight, a)
		}
	}
	snap.Pools[0].Recommendations = s.recs
	d := Scale(snap).Decisions[0]
	s.recs = Remember(s.recs, d, s.now, s.rules.CooldownDown)
	s.last = d

	if d.To < d.From && d.Direction != ScaleDown || d.To > d.From && d.Direction != ScaleUp {
		t.Fatalf("%s: decision %s %d -> %d is inconsistent", s.now.Sub(t0), d.Direction, d.From, d.To)
	}
	switch d.Direction {
	case ScaleUp:
		for i := d.From; i < d.To; i++ {
			s.launch()
		}
		s.lastUp = s.now
		s.change(ScaleUp)
	case ScaleDown:
		acts := ScaleInActions(d, snap.Pools[0])
		if len(acts) != d.From-d.To {
			t.Fatalf("%s: %d scale-in actions for %d -> %d", s.now.Sub(t0), len(acts), d.From, d.To)
		}
		s.maxDeletes = max(s.maxDeletes, len(acts))
		for _, a := range acts {
			n := s.node(a.NodeID)
			if n == nil || n.draining {
				t.Fatalf("%s: scale-in chose node %s, which is gone or draining already", s.now.Sub(t0), a.NodeID)
			}
			n.draining, n.removeAt, n.journalKey = true, s.now.Add(s.drainTime), a.Key
			s.journal = append(s.journal, a)
			s.shortest = min(s.shortest, s.now.Sub(n.launched))
			s.removed++
		}
		s.lastDown = s.now
		s.change(ScaleDown)
	}
	s.now = s.now.Add(s.rules.EvaluationInterval)
	return d
}

func (s *scaleSim) change(dir ScaleDirection) {
	s.changes++
	if s.lastDir != "" && s.lastDir != dir {
		s.directions++
	}
	s.lastDir = dir
}

func (s *scaleSim) node(id string) *scaleSimNode {
	for _, n := range s.nodes {
		if n.id == id {
			return n
		}
	}
	return nil
}

func (s *scaleSim) endAction(key string) {
	kept := s.journal[:0]
	for _, a := range s.journal {
		if a.Key != key {
			kept = append(kept, a)
		}
	}
	s.journal = kept
}

// simRules is the default scaling policy with the given checks.
func simRules(t *testing.T, edit func(s *policy.Scaling)) policy.ScalingRules {
	t.Helper()
	s := policy.DefaultScaling(workers)
	edit(&s)
	r, err := s.Rules()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestScaleRunawayUnschedulable is reliability scenario R7 (F1): tasks pend
// with a constraint the pool's declared labels satisfy (MatchesPool), but
// the nodes the pool gets join without the label, so the tasks are never
// placed on them. Without the runaway guard every new node looked like
// capacity that never counts, and the pool grew by the pending tasks' need
// every cooldown_up up to max_size. Over 30 simulated minutes the node
// count must stay below min(max_size, current + 2 × max_step), checked at
// every evaluation, and the pool must say why it holds.
func TestScaleRunawayUnschedulable(t *testing.T) {
	rules := simRules(t, func(s *policy.Scaling) { s.PendingTasks = &policy.PendingTasksCheck{} })
	const current, maxSize = 2, 50
	s := newScaleSim(t, rules, 1, maxSize, current)
	// The two old nodes carry the service that is there already.
	s.load = func(_ *scaleSim, n *scaleSimNode) (int, Resources) {
		if n.joinAt.Before(t0) {
			return 2, Resources{NanoCPUs: cpu2 * 3 / 4, MemoryBytes: 3 * gib}
		}
		return 0, Resources{} // the new nodes: nothing is ever placed there
	}
	s.pending = func(*scaleSim) []ObservedTask {
		return []ObservedTask{
			{Reservation: Resources{NanoCPUs: cpu2 / 2, MemoryBytes: gib}, MatchesPool: true},
			{Reservation: Resources{NanoCPUs: cpu2 / 2, MemoryBytes: gib}, MatchesPool: true},
			{Reservation: Resources{NanoCPUs: cpu2 / 2, MemoryBytes: gib}, MatchesPool: true},
		}
	}
	bound := min(maxSize, current+2*rules.MaxStep)
	most := 0
	for s.now.Before(t0.Add(30 * time.Minute)) {
		d := s.step()
		most = max(most, s.size())
		if s.size() >= bound {
			t.Fatalf("%s: the pool has %d nodes, not below min(max_size %d, %d + 2 x max_step %d) = %d; last decision: %s %s: %s",
				s.now.Sub(t0), s.size(), maxSize, current, rules.MaxStep, bound, d.Direction, d.Code, d.Message)
		}
	}
	t.Logf("R7: at most %d nodes over 30 minutes (bound: below %d); %d scale-outs; last decision %s: %s",
		most, bound, s.changes, s.last.Code, s.last.Message)
	if s.last.Code != CodeUnschedulable || s.last.Direction != ScaleHold {
		t.Errorf("last decision %s %s, want a hold with code %s: %s", s.last.Direction, s.last.Code, CodeUnschedulable, s.last.Message)
	}
	if s.changes != 1 {
		t.Errorf("%d scale-outs, want exactly 1 (the one the pending tasks asked for before any new node joined)", s.changes)
	}

	// The pool changes: the operator fixes the labels, and the new nodes
	// take the tasks. Nothing pends any more, and nothing more is asked.
	s.load = func(*scaleSim, *scaleSimNode) (int, Resources) {
		return 1, Resources{NanoCPUs: cpu2 * 3 / 4, MemoryBytes: 3 * gib}
	}
	s.pending = nil
	if d := s.step(); d.Direction == ScaleUp {
		t.Errorf("after the tasks were placed: %s %s: %s", d.Direction, d.Code, d.Message)
	}
	// The pending set changes: a larger task that no idle node could take
	// pends. It asks for a node again: the guard judges tasks, not pools.
	s.load = func(_ *scaleSim, n *scaleSimNode) (int, Resources) {
		if n.joinAt.Before(t0) {
			return 2, Resources{NanoCPUs: cpu2 * 3 / 4, MemoryBytes: 3 * gib}
		}
		return 0, Resources{}
	}
	s.capacity = Resources{NanoCPUs: cpu2, MemoryBytes: 4 * gib}
	s.pending = func(*scaleSim) []ObservedTask {
		return []ObservedTask{{Reservation: Resources{NanoCPUs: cpu2 / 2, MemoryBytes: gib}, MatchesPool: true}}
	}
	if d := s.step(); d.Code != CodeUnschedulable {
		t.Errorf("the same kind of task again: %s %s, want %s: %s", d.Direction, d.Code, CodeUnschedulable, d.Message)
	}
}

// TestScaleRunawayGuard pins the guard's edges on single decisions.
func TestScaleRunawayGuard(t *testing.T) {
	lastUp := t0.Add(-5 * time.Minute)
	base := func(p *ScalePool) {
		p.LastScaleUp = lastUp
		p.Checks = []CheckSample{pending(tasks(2, cpu2/2, gib)...)}
	}
	runScaleCases(t, []scaleCase{
		{
			name: "an empty settled node of the last scale-out holds the pending tasks",
			edit: func(p *ScalePool) {
				base(p)
				n := scaleNode(p, "w4")
				n.CreatedAt, n.RunningTasks, n.Reserved = lastUp.Add(time.Minute), 0, Resources{}
			},
			dir: ScaleHold, to: 4, code: CodeUnschedulable,
			msg: []string{"node w4, added by the last scale-out 5m0s ago", "no node is asked for them", "until the pool or the pending tasks change"},
		},
		{
			name: "an empty node older than the last scale-out does not: new nodes may join with new labels",
			edit: func(p *ScalePool) {
				base(p)
				n := scaleNode(p, "w4")
				n.CreatedAt, n.RunningTasks, n.Reserved = lastUp.Add(-time.Minute), 0, Resources{}
			},
			dir: ScaleUp, to: 5, code: CodePendingTasks,
		},
		{
			name: "a node still settling does not",
			edit: func(p *ScalePool) {
				base(p)
				n := scaleNode(p, "w4")
				n.CreatedAt, n.RunningTasks, n.Reserved = t0.Add(-SettleWindow/2), 0, Resources{}
			},
			dir: ScaleUp, to: 5, code: CodePendingTasks,
		},
		{
			name: "a new node that took a task does not",
			edit: func(p *ScalePool) {
				base(p)
				scaleNode(p, "w4").CreatedAt = lastUp.Add(time.Minute)
			},
			dir: ScaleUp, to: 5, code: CodePendingTasks,
		},
		{
			name: "a draining new node does not",
			edit: func(p *ScalePool) {
				base(p)
				n := scaleNode(p, "w4")
				n.CreatedAt, n.RunningTasks, n.Reserved, n.Draining = lastUp.Add(time.Minute), 0, Resources{}, true
				p.Current = 5
			},
			dir: ScaleUp, to: 5, code: CodePendingTasks,
		},
		{
			name: "tasks too large for the idle node still ask",
			edit: func(p *ScalePool) {
				base(p)
				p.NodeCapacity = Resources{NanoCPUs: 2 * cpu2, MemoryBytes: 8 * gib}
				p.Checks = []CheckSample{pending(append(tasks(1, cpu2/2, gib), tasks(1, 3*cpu2/2, gib)...)...)}
				n := scaleNode(p, "w4")
				n.CreatedAt, n.RunningTasks, n.Reserved = lastUp.Add(time.Minute), 0, Resources{}
			},
			dir: ScaleUp, to: 5, code: CodePendingTasks,
			msg: []string{"1 pending task reserving 3 CPUs", "1 pending task more wait although node w4"},
		},
	})
}

// TestScaleFlapping is reliability scenario R8 (F3): the load swings ±15 %
// around a Prometheus target with a 2-minute period for 6 simulated hours,
// with the default policy (cooldown_up 30s, cooldown_down 5m,
// scale_in_after 2m, max_step 5). The value the check reads is the load
// over the Ready nodes, so target tracking asks for 9 to 12 nodes in turn.
// Without the stabilisation window the pool grew at every peak and shrank
// in the trough after each cooldown_down. The pool must change at most
// 6h / (10m + 10m) = 18 times, change direction at most once per change
// less one, and no node may be removed less than 10 minutes after its
// launch. Then the load halves for good, and the pool must shrink to what
// it needs: the window delays a scale-in, it never forbids one.
func TestScaleFlapping(t *testing.T) {
	const targetValue = 0.6
	rules := simRules(t, func(s *policy.Scaling) {
		s.Prometheus = []policy.PrometheusCheck{{Name: "cpu", Address: "http://prometheus:9090", Query: "avg(cpu)", TargetValue: fp(targetValue)}}
	})
	s := newScaleSim(t, rules, 1, 30, 10)
	base := 10 * targetValue // the load, in nodes at the target
	swing := 0.15
	s.load = func(*scaleSim, *scaleSimNode) (int, Resources) { return 1, Resources{} } // unneeded by reservations
	s.samples = func(s *scaleSim) []CheckSample {
		phase := 2 * math.Pi * float64(s.now.Sub(t0)) / float64(2*time.Minute)
		total := base * (1 + swing*math.Sin(phase))
		v := total / float64(max(s.ready(), 1))
		return []CheckSample{{Name: "cpu", Kind: CheckPrometheus, Value: v, SampleTime: s.now.Add(-5 * time.Second), Target: fp(targetValue)}}
	}
	sizes := map[int]int{}
	for s.now.Before(t0.Add(6 * time.Hour)) {
		s.step()
		sizes[s.size()]++
	}
	t.Logf("R8: over 6 hours the pool changed %d times with %d direction changes; sizes seen (size: evaluations) %v; shortest life of a removed node %v (%d removed)",
		s.changes, s.directions, sizes, s.shortestOrNone(), s.removed)
	if s.changes > 18 {
		t.Errorf("the pool changed %d times in 6 hours, want at most 18", s.changes)
	}
	if s.changes > 0 && s.directions > s.changes-1 || s.directions > 2 {
		t.Errorf("%d direction changes in %d changes, want at most 2", s.directions, s.changes)
	}
	if s.removed > 0 && s.shortest < 10*time.Minute {
		t.Errorf("a node was removed %v after its launch, want at least 10m", s.shortest)
	}

	// The load halves for good: the pool shrinks to what it needs.
	base /= 2
	swing = 0
	need := int(math.Ceil(base / targetValue))
	for end := s.now.Add(time.Hour); s.now.Before(end) && s.size() > need; {
		s.step()
	}
	if s.size() != need {
		t.Errorf("an hour after the load halved the pool has %d nodes, want %d; last decision %s %s: %s", s.size(), need, s.last.Direction, s.last.Code, s.last.Message)
	}
}

func (s *scaleSim) shortestOrNone() any {
	if s.removed == 0 {
		return "none"
	}
	return s.shortest
}

// TestScaleDisruptionBudget is reliability scenario S3 (F4): a pool of 20
// idle nodes loses all demand. At every evaluation at most max(1, 10 %) of
// its nodes (2 of 20) are being disrupted, scale-in drains and a healing
// replacement in flight counted together; no decision deletes more than 10
// empty nodes; and the pool still reaches its min_size. Drains take 3
// simulated minutes; the policy is the default one (cooldown_down 5m,
// max_step 5) with the pending_tasks check and no pending task.
func TestScaleDisruptionBudget(t *testing.T) {
	rules := simRules(t, func(s *policy.Scaling) { s.PendingTasks = &policy.PendingTasksCheck{} })
	const minSize = 2
	s := newScaleSim(t, rules, minSize, 30, 20)
	s.drainTime = 3 * time.Minute
	worst, samples := 0, 0
	var healStart time.Time
	for end := t0.Add(4 * time.Hour); s.now.Before(end) && s.size() > minSize; {
		// A node fails at minute 12; its healing replacement starts as
		// soon as Heal's share of the budget allows (scale-in removals in
		// flight plus replacements below it) and runs for 8 minutes.
		heal := ActionKey(ReplaceNode, workers, "dead-1", "i-dead-1")
		switch at := s.now.Sub(t0); {
		case at >= 12*time.Minute && healStart.IsZero() && len(s.journal) < DisruptionBudget(s.size(), 0):
			healStart = s.now
			s.journal = append(s.journal, Action{Kind: ReplaceNode, Key: heal, PoolID: workers, Role: policy.RoleWorker,
				NodeID: "dead-1", InstanceID: "i-dead-1", Replacement: "i-new-1"})
		case !healStart.IsZero() && s.now.Sub(healStart) == 8*time.Minute:
			s.endAction(heal)
		}
		d := s.step()
		// Every journal entry disrupts one node: a scale-in removal
		// draining it, or the healing replacement of the failed node.
		disrupted := len(s.journal)
		samples++
		worst = max(worst, disrupted)
		if disrupted > 2 || disrupted > max(1, s.size()/10) {
			t.Fatalf("%s: %d of the pool's %d nodes are being disrupted, more than max(1, 10 %%); decision %s %s: %s",
				s.now.Sub(t0), disrupted, s.size(), d.Direction, d.Code, d.Message)
		}
	}
	t.Logf("S3: the pool went from 20 to %d nodes in %s; at most %d nodes disrupted at once over %d samples; at most %d empty nodes deleted by one decision; healing ran from %s",
		s.size(), s.now.Sub(t0), worst, samples, s.maxDeletes, healStart.Sub(t0))
	if s.size() != minSize {
		t.Errorf("after 4 hours the pool has %d nodes, want min_size %d; last decision %s %s: %s", s.size(), minSize, s.last.Direction, s.last.Code, s.last.Message)
	}
	if s.maxDeletes > 10 {
		t.Errorf("one decision deleted %d empty nodes, want at most 10", s.maxDeletes)
	}
	if worst != 2 {
		t.Errorf("at most %d nodes were disrupted at once, want the budget of 2 used", worst)
	}
}
