package decide

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

const (
	cpu2 = 2_000_000_000 // NanoCPUs
	gib  = 1 << 30
)

// scaleRules is the default scaling policy, parsed, with no check
// configured: the table tests pass samples without declaring them, except
// where a test is about a configured check that reports nothing.
func scaleRules() policy.ScalingRules {
	s := policy.DefaultScaling(workers)
	s.PendingTasks = &policy.PendingTasksCheck{}
	r, err := s.Rules()
	if err != nil {
		panic(err)
	}
	r.PendingTasks = false
	// The table tests are about the other rules (selection, drains, steps,
	// bounds), which remove several nodes at once: their pools are too
	// small for the default disruption budget of 10 %, which would allow
	// one node at a time. The budget has tests of its own
	// (scale_budget_test.go), with the default.
	r.MaxDisruptedPercent = 100
	return r
}

// scalePool is c/workers with bounds [1, 10] and n nodes w1..wn of 2 CPUs
// and 4 GiB, each running 2 tasks reserving 1 CPU and 1 GiB; w1 is the
// oldest, wn the newest, none unneeded.
func scalePool(n int) ScalePool {
	p := ScalePool{ID: workers, MinSize: 1, MaxSize: 10, Current: n, Rules: scaleRules(),
		NodeCapacity: Resources{NanoCPUs: cpu2, MemoryBytes: 4 * gib}}
	for i := 1; i <= n; i++ {
		p.Nodes = append(p.Nodes, ScaleNode{
			ID: fmt.Sprintf("w%d", i), InstanceID: fmt.Sprintf("i-w%d", i),
			CreatedAt:    t0.Add(-time.Duration(100-i) * time.Hour),
			RunningTasks: 2,
			Reserved:     Resources{NanoCPUs: cpu2 / 2, MemoryBytes: gib},
			Capacity:     Resources{NanoCPUs: cpu2, MemoryBytes: 4 * gib},
		})
	}
	return p
}

func scaleNode(p *ScalePool, id string) *ScaleNode {
	for i := range p.Nodes {
		if p.Nodes[i].ID == id {
			return &p.Nodes[i]
		}
	}
	panic("no node " + id)
}

// idle marks nodes as unneeded for ago, with no task.
func idle(p *ScalePool, ago time.Duration, ids ...string) {
	for _, id := range ids {
		n := scaleNode(p, id)
		n.UnneededSince = t0.Add(-ago)
		n.RunningTasks, n.Reserved = 0, Resources{}
	}
}

// idleAll marks every node unneeded for ago, keeping its tasks.
func idleAll(p *ScalePool, ago time.Duration) {
	for i := range p.Nodes {
		p.Nodes[i].UnneededSince = t0.Add(-ago)
	}
}

func fp(v float64) *float64 { return &v }

// target is a fresh target-tracking sample.
func target(name string, value, target float64) CheckSample {
	return CheckSample{Name: name, Kind: CheckPrometheus, Value: value, SampleTime: t0.Add(-5 * time.Second), Target: fp(target)}
}

// thresholds is a fresh threshold sample; a NaN bound is left unset.
func thresholds(name string, value, upper, lower float64, step int) CheckSample {
	c := CheckSample{Name: name, Kind: CheckPrometheus, Value: value, SampleTime: t0.Add(-5 * time.Second), Step: step}
	if !math.IsNaN(upper) {
		c.Upper = fp(upper)
	}
	if !math.IsNaN(lower) {
		c.Lower = fp(lower)
	}
	return c
}

func pending(tasks ...PendingTask) CheckSample {
	return CheckSample{Name: CheckPendingTasks, Kind: CheckPendingTasks, PendingTasks: tasks}
}

// tasks returns n pending tasks reserving cpu NanoCPUs and mem bytes each.
func tasks(n int, cpu, mem int64) []PendingTask {
	out := make([]PendingTask, n)
	for i := range out {
		out[i] = PendingTask{NanoCPUs: cpu, MemoryBytes: mem}
	}
	return out
}

func alert(name string, firing bool, step int) CheckSample {
	return CheckSample{Name: name, Kind: CheckAlert, Firing: firing, Step: step, ReceivedAt: t0.Add(-time.Minute)}
}

var nan = math.NaN()

// scaleCase is one table test: a pool of n nodes (default 4), an edit, and
// the decision expected.
type scaleCase struct {
	name   string
	n      int
	edit   func(p *ScalePool)
	dir    ScaleDirection
	to     int
	code   ScaleCode
	remove []string // nil: none
	forced bool
	// msg lists substrings of the message.
	msg   []string
	check func(t *testing.T, d ScaleDecision)
}

func runScaleCases(t *testing.T, cases []scaleCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := tc.n
			if n == 0 {
				n = 4
			}
			p := scalePool(n)
			if tc.edit != nil {
				tc.edit(&p)
			}
			s := ScaleSnapshot{Now: t0, Pools: []ScalePool{p}}
			plan := Scale(s)
			checkScaleInvariants(t, s, plan)
			d := plan.Decisions[0]
			if d.Direction != tc.dir || d.To != tc.to || d.Code != tc.code || d.Forced != tc.forced {
				t.Errorf("decision = %s %d -> %d (%s, forced %v)\nwant       %s to %d (%s, forced %v)\nmessage: %s",
					d.Direction, d.From, d.To, d.Code, d.Forced, tc.dir, tc.to, tc.code, tc.forced, d.Message)
			}
			if !slices.Equal(d.RemoveNodes, tc.remove) {
				t.Errorf("RemoveNodes = %q, want %q", d.RemoveNodes, tc.remove)
			}
			for _, m := range tc.msg {
				if !strings.Contains(d.Message, m) {
					t.Errorf("message %q does not contain %q", d.Message, m)
				}
			}
			if tc.check != nil {
				tc.check(t, d)
			}
			if t.Failed() {
				t.Logf("per check: %+v", d.PerCheck)
			}
		})
	}
}

func withChecks(cs ...CheckSample) func(p *ScalePool) {
	return func(p *ScalePool) { p.Checks = append(p.Checks, cs...) }
}

func TestScalePendingTasks(t *testing.T) {
	runScaleCases(t, []scaleCase{
		{name: "no check reported", dir: ScaleHold, to: 4, code: CodeNoData, msg: []string{"no check reported"}},
		{name: "nothing pending, nothing unneeded", edit: withChecks(pending()),
			dir: ScaleHold, to: 4, code: CodeWithinTarget, msg: []string{"no task is pending"}},
		{name: "cpu-bound tasks", edit: withChecks(pending(tasks(3, cpu2/2, 0)...)),
			dir: ScaleUp, to: 6, code: CodePendingTasks, msg: []string{"3 pending tasks", "need 2 new nodes", "grow from 4 to 6"}},
		{name: "memory-bound tasks", edit: withChecks(pending(tasks(3, 1, 3*gib)...)),
			dir: ScaleUp, to: 7, code: CodePendingTasks, msg: []string{"need 3 new nodes"}},
		{name: "tasks without reservations need one node", edit: withChecks(pending(tasks(5, 0, 0)...)),
			dir: ScaleUp, to: 5, code: CodePendingTasks},
		{name: "unknown node capacity asks one node", edit: func(p *ScalePool) {
			p.NodeCapacity = Resources{}
			p.Checks = []CheckSample{pending(tasks(9, cpu2, gib)...)}
		}, dir: ScaleUp, to: 5, code: CodePendingTasks},
		{name: "instances already starting are not asked twice", edit: func(p *ScalePool) {
			p.Current, p.Pending = 6, 2 // 4 nodes + 2 instances starting
			p.Checks = []CheckSample{pending(tasks(3, cpu2/2, 0)...)}
		}, dir: ScaleHold, to: 6, code: CodeWithinTarget, msg: []string{"2 instances already starting"}},
		{name: "only the work not covered by starting instances", edit: func(p *ScalePool) {
			p.Current, p.Pending = 5, 1
			p.Checks = []CheckSample{pending(tasks(3, cpu2/2, 0)...)}
		}, dir: ScaleUp, to: 6, code: CodePendingTasks},
		{name: "from an empty pool", n: -1, edit: func(p *ScalePool) {
			p.MinSize, p.Current, p.Nodes = 0, 0, nil
			p.Checks = []CheckSample{pending(PendingTask{NanoCPUs: cpu2 / 4})}
		}, dir: ScaleUp, to: 1, code: CodePendingTasks},
		{name: "limited by max_step", edit: withChecks(pending(tasks(20, cpu2, 0)...)),
			dir: ScaleUp, to: 9, code: CodePendingTasks, msg: []string{"asks for 24 nodes", "limited by max_step 5"}},
		{name: "max_step 1", edit: func(p *ScalePool) {
			p.Rules.MaxStep = 1
			p.Checks = []CheckSample{pending(tasks(20, cpu2, 0)...)}
		}, dir: ScaleUp, to: 5, code: CodePendingTasks},
		{name: "capped at max_size", n: 8, edit: withChecks(pending(tasks(5, cpu2, 0)...)),
			dir: ScaleUp, to: 10, code: CodePendingTasks, msg: []string{"capped at max_size 10"}},
		{name: "at max_size", n: 10, edit: withChecks(pending(tasks(5, cpu2, 0)...)),
			dir: ScaleHold, to: 10, code: CodeMaxSize, msg: []string{"at max_size 10"}},
		{name: "huge reservations do not overflow", edit: withChecks(pending(tasks(4, math.MaxInt64, math.MaxInt64)...)),
			dir: ScaleUp, to: 9, code: CodePendingTasks},
	})
}

func TestScaleCooldowns(t *testing.T) {
	grow := pending(tasks(2, cpu2, 0)...)
	runScaleCases(t, []scaleCase{
		{name: "no scale-up within cooldown_up", edit: func(p *ScalePool) {
			p.LastScaleUp = t0.Add(-10 * time.Second)
			p.Checks = []CheckSample{grow}
		}, dir: ScaleHold, to: 4, code: CodeCooldownUp, msg: []string{"grew 10s ago, within cooldown_up 30s"}},
		{name: "scale-up once cooldown_up is over", edit: func(p *ScalePool) {
			p.LastScaleUp = t0.Add(-30 * time.Second)
			p.Checks = []CheckSample{grow}
		}, dir: ScaleUp, to: 6, code: CodePendingTasks},
		{name: "a recent scale-down does not delay a scale-up", edit: func(p *ScalePool) {
			p.LastScaleDown = t0.Add(-time.Second)
			p.Checks = []CheckSample{grow}
		}, dir: ScaleUp, to: 6, code: CodePendingTasks},
		{name: "a last scale-up in the future counts as cooling", edit: func(p *ScalePool) {
			p.LastScaleUp = t0.Add(time.Hour)
			p.Checks = []CheckSample{grow}
		}, dir: ScaleHold, to: 4, code: CodeCooldownUp},
		{name: "no scale-down within cooldown_down of the last one", edit: func(p *ScalePool) {
			idle(p, time.Hour, "w4")
			p.LastScaleDown = t0.Add(-time.Minute)
			p.Checks = []CheckSample{pending()}
		}, dir: ScaleHold, to: 4, code: CodeCooldownDown, msg: []string{"shrank 1m0s ago, within cooldown_down 5m0s"}},
		{name: "no scale-down right after growing", edit: func(p *ScalePool) {
			idle(p, time.Hour, "w4")
			p.LastScaleUp = t0.Add(-4 * time.Minute)
			p.Checks = []CheckSample{pending()}
		}, dir: ScaleHold, to: 4, code: CodeCooldownDown, msg: []string{"grew 4m0s ago, within cooldown_down 5m0s"}},
		{name: "scale-down once both cooldowns are over", edit: func(p *ScalePool) {
			idle(p, time.Hour, "w4")
			p.LastScaleUp, p.LastScaleDown = t0.Add(-5*time.Minute), t0.Add(-5*time.Minute)
			p.Checks = []CheckSample{pending()}
		}, dir: ScaleDown, to: 3, code: CodePendingTasks, remove: []string{"w4"}},
		{name: "no scale-down while instances are starting", edit: func(p *ScalePool) {
			idle(p, time.Hour, "w4")
			p.Current, p.Pending = 5, 1
			p.Checks = []CheckSample{pending()}
		}, dir: ScaleHold, to: 5, code: CodeCooldownDown, msg: []string{"instances asked for are still starting (1)"}},
	})
}

func TestScaleTargetTracking(t *testing.T) {
	runScaleCases(t, []scaleCase{
		{name: "above target", edit: withChecks(target("cpu", 0.9, 0.6)),
			dir: ScaleUp, to: 6, code: CodeTargetTracking, msg: []string{`prometheus check "cpu": value 0.9 against target_value 0.6 over 4 ready nodes, so it asks for 6 nodes`}},
		{name: "at target", edit: withChecks(target("cpu", 0.6, 0.6)),
			dir: ScaleHold, to: 4, code: CodeWithinTarget},
		{name: "float noise is not a node", n: 10, edit: withChecks(target("cpu", 0.1*7, 0.7)),
			dir: ScaleHold, to: 10, code: CodeWithinTarget},
		{name: "just above target rounds up", n: 9, edit: withChecks(target("cpu", 0.61, 0.6)),
			dir: ScaleUp, to: 10, code: CodeTargetTracking, check: func(t *testing.T, d ScaleDecision) {
				if d.PerCheck[0].Desired != 10 {
					t.Errorf("desired = %d, want 10", d.PerCheck[0].Desired)
				}
			}},
		{name: "starting instances count as capacity", edit: func(p *ScalePool) {
			p.Current, p.Pending = 6, 2
			p.Checks = []CheckSample{target("cpu", 0.9, 0.6)}
		}, dir: ScaleHold, to: 6, code: CodeWithinTarget, msg: []string{"over 4 ready nodes"}},
		{name: "empty pool with load grows to one", n: -1, edit: func(p *ScalePool) {
			p.MinSize, p.Current, p.Nodes = 0, 0, nil
			p.Checks = []CheckSample{target("rps", 5, 100)}
		}, dir: ScaleUp, to: 1, code: CodeTargetTracking},
		{name: "empty pool without load stays empty", n: -1, edit: func(p *ScalePool) {
			p.MinSize, p.Current, p.Nodes = 0, 0, nil
			p.Checks = []CheckSample{target("rps", 0, 100)}
		}, dir: ScaleHold, to: 0, code: CodeWithinTarget},
		{name: "huge value is capped", edit: withChecks(target("cpu", 1e300, 1e-300)),
			dir: ScaleUp, to: 9, code: CodeTargetTracking},
		{name: "below target, every node unneeded", n: 6, edit: func(p *ScalePool) {
			idleAll(p, 3*time.Minute)
			p.Checks = []CheckSample{target("cpu", 0.3, 0.6)}
		}, dir: ScaleDown, to: 5, code: CodeScaleInAfter, remove: []string{"w6"},
			msg: []string{"every trusted check allows 3 nodes", "only 1 node can go now: one busy node drains at a time"}},
		{name: "below target, empty nodes unneeded", n: 6, edit: func(p *ScalePool) {
			idle(p, 3*time.Minute, "w2", "w3", "w5")
			p.Checks = []CheckSample{target("cpu", 0.3, 0.6)}
		}, dir: ScaleDown, to: 3, code: CodeTargetTracking, remove: []string{"w5", "w3", "w2"},
			msg: []string{"shrink from 6 to 3, removing w5, w3, w2"}},
		{name: "below target, fewer nodes unneeded than the metric allows", n: 6, edit: func(p *ScalePool) {
			idle(p, 3*time.Minute, "w2", "w5")
			p.Checks = []CheckSample{target("cpu", 0.3, 0.6)}
		}, dir: ScaleDown, to: 4, code: CodeScaleInAfter, remove: []string{"w5", "w2"},
			msg: []string{"only 2 nodes unneeded for scale_in_after 2m0s"}},
		{name: "unneeded for less than scale_in_after", n: 6, edit: func(p *ScalePool) {
			idle(p, time.Minute, "w2", "w5")
			p.Checks = []CheckSample{target("cpu", 0.3, 0.6)}
		}, dir: ScaleHold, to: 6, code: CodeScaleInAfter, msg: []string{"no node has been unneeded for scale_in_after 2m0s"}},
		{name: "scale_in_after zero", n: 6, edit: func(p *ScalePool) {
			p.Rules.ScaleInAfter = 0
			idle(p, 0, "w2", "w5")
			p.Checks = []CheckSample{target("cpu", 0.3, 0.6)}
		}, dir: ScaleDown, to: 4, code: CodeScaleInAfter, remove: []string{"w5", "w2"}},
		{name: "no deeper than min_size", edit: func(p *ScalePool) {
			p.MinSize = 3
			idle(p, time.Hour, "w1", "w2", "w3", "w4")
			p.Checks = []CheckSample{target("cpu", 0, 0.6)}
		}, dir: ScaleDown, to: 3, code: CodeTargetTracking, remove: []string{"w4"}, msg: []string{"stopping at min_size 3"}},
		{name: "at min_size", edit: func(p *ScalePool) {
			p.MinSize = 4
			idle(p, time.Hour, "w1", "w2", "w3", "w4")
			p.Checks = []CheckSample{target("cpu", 0, 0.6)}
		}, dir: ScaleHold, to: 4, code: CodeMinSize, msg: []string{"at min_size 4"}},
	})
}

func TestScaleMaxStepDown(t *testing.T) {
	runScaleCases(t, []scaleCase{
		{name: "scale-in limited by max_step", n: 10, edit: func(p *ScalePool) {
			p.Rules.MaxStep = 3
			idle(p, time.Hour, "w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8", "w9", "w10")
			p.Checks = []CheckSample{target("cpu", 0.1, 0.6)}
		}, dir: ScaleDown, to: 7, code: CodeTargetTracking, remove: []string{"w10", "w9", "w8"},
			msg: []string{"limited by max_step 3"}},
	})
}

func TestScaleMetricTrust(t *testing.T) {
	shrinkable := func(p *ScalePool) { idle(p, time.Hour, "w3", "w4") }
	stale := target("cpu", 0.3, 0.6)
	stale.SampleTime = t0.Add(-30 * time.Second)
	failed := target("cpu", 0.3, 0.6)
	failed.Err = "Post \"http://prometheus:9090/api/v1/query\": connection refused"
	empty := target("cpu", 0, 0.6)
	empty.Empty = true
	timeless := target("cpu", 0.3, 0.6)
	timeless.SampleTime = time.Time{}
	runScaleCases(t, []scaleCase{
		{name: "stale metric holds", edit: func(p *ScalePool) { shrinkable(p); p.Checks = []CheckSample{stale} },
			dir: ScaleHold, to: 4, code: CodeStaleMetric, msg: []string{"30s old, more than max_sample_age 20s"},
			check: func(t *testing.T, d ScaleDecision) {
				if d.PerCheck[0].Trusted {
					t.Error("a stale sample is trusted")
				}
			}},
		{name: "stale metric vetoes a scale-in the others agree on", edit: func(p *ScalePool) {
			shrinkable(p)
			p.Checks = []CheckSample{pending(), target("mem", 0.1, 0.6), stale}
		}, dir: ScaleHold, to: 4, code: CodeStaleMetric, msg: []string{"never shrink on it"}},
		{name: "a longer max_sample_age trusts it", edit: func(p *ScalePool) {
			shrinkable(p)
			p.Rules.MaxSampleAge = time.Minute
			p.Checks = []CheckSample{stale}
		}, dir: ScaleDown, to: 2, code: CodeTargetTracking, remove: []string{"w4", "w3"}},
		{name: "max_sample_age unset is twice the evaluation interval", edit: func(p *ScalePool) {
			shrinkable(p)
			p.Rules.MaxSampleAge, p.Rules.EvaluationInterval = 0, 20*time.Second
			p.Checks = []CheckSample{stale}
		}, dir: ScaleDown, to: 2, code: CodeTargetTracking, remove: []string{"w4", "w3"}},
		{name: "failed query", edit: func(p *ScalePool) { shrinkable(p); p.Checks = []CheckSample{failed} },
			dir: ScaleHold, to: 4, code: CodeNoData, msg: []string{"the query failed: Post"}},
		{name: "empty result", edit: func(p *ScalePool) { shrinkable(p); p.Checks = []CheckSample{empty} },
			dir: ScaleHold, to: 4, code: CodeNoData, msg: []string{"no series"}},
		{name: "NaN", edit: func(p *ScalePool) { shrinkable(p); p.Checks = []CheckSample{target("cpu", nan, 0.6)} },
			dir: ScaleHold, to: 4, code: CodeNoData, msg: []string{"returned NaN"}},
		{name: "+Inf does not grow the pool", edit: func(p *ScalePool) {
			p.Checks = []CheckSample{target("cpu", math.Inf(1), 0.6)}
		}, dir: ScaleHold, to: 4, code: CodeNoData, msg: []string{"returned +Inf"}},
		{name: "-Inf", edit: func(p *ScalePool) { shrinkable(p); p.Checks = []CheckSample{target("cpu", math.Inf(-1), 0.6)} },
			dir: ScaleHold, to: 4, code: CodeNoData},
		{name: "no sample time", edit: func(p *ScalePool) { shrinkable(p); p.Checks = []CheckSample{timeless} },
			dir: ScaleHold, to: 4, code: CodeNoData, msg: []string{"no time"}},
		{name: "a stale metric does not stop a scale-up others ask for", edit: func(p *ScalePool) {
			p.Checks = []CheckSample{stale, pending(tasks(1, cpu2, 0)...)}
		}, dir: ScaleUp, to: 5, code: CodePendingTasks},
		{name: "a stale metric never grows the pool", edit: func(p *ScalePool) {
			s := target("cpu", 5, 0.6)
			s.SampleTime = t0.Add(-time.Hour)
			p.Checks = []CheckSample{s}
		}, dir: ScaleHold, to: 4, code: CodeStaleMetric},
		{name: "stale while the others are satisfied", edit: func(p *ScalePool) {
			p.Checks = []CheckSample{target("mem", 0.6, 0.6), stale}
		}, dir: ScaleHold, to: 4, code: CodeStaleMetric, msg: []string{"satisfied at 4 nodes"}},
		{name: "a configured check without a sample has no data", edit: func(p *ScalePool) {
			shrinkable(p)
			p.Rules.Prometheus = []policy.PrometheusRule{{Name: "cpu", TargetValue: fp(0.6)}, {Name: "latency", Upper: fp(1), Step: 1}}
			p.Checks = []CheckSample{target("cpu", 0.1, 0.6)}
		}, dir: ScaleHold, to: 4, code: CodeNoData, msg: []string{`"latency" is not trusted: the check is configured but reported no sample`}},
		{name: "configured pending_tasks without a sample", edit: func(p *ScalePool) {
			shrinkable(p)
			p.Rules.PendingTasks = true
			p.Checks = []CheckSample{target("cpu", 0.1, 0.6)}
		}, dir: ScaleHold, to: 4, code: CodeNoData},
		{name: "a check without target or thresholds", edit: func(p *ScalePool) {
			shrinkable(p)
			c := target("cpu", 0.1, 0.6)
			c.Target = nil
			p.Checks = []CheckSample{c}
		}, dir: ScaleHold, to: 4, code: CodeNoData},
		{name: "unknown check kind", edit: func(p *ScalePool) {
			shrinkable(p)
			p.Checks = []CheckSample{pending(), {Name: "x", Kind: "datadog"}}
		}, dir: ScaleHold, to: 4, code: CodeNoData, msg: []string{`"datadog" is unknown`}},
	})
}

func TestScaleThresholds(t *testing.T) {
	runScaleCases(t, []scaleCase{
		{name: "above upper", edit: withChecks(thresholds("queue", 150, 100, 10, 2)),
			dir: ScaleUp, to: 6, code: CodeThreshold, msg: []string{"value 150 is above upper 100"}},
		{name: "above upper, step defaults to 1", edit: withChecks(thresholds("queue", 150, 100, 10, 0)),
			dir: ScaleUp, to: 5, code: CodeThreshold},
		{name: "above upper with an instance starting", edit: func(p *ScalePool) {
			p.Current, p.Pending = 5, 1
			p.Checks = []CheckSample{thresholds("queue", 150, 100, 10, 2)}
		}, dir: ScaleUp, to: 6, code: CodeThreshold},
		{name: "below lower", edit: func(p *ScalePool) {
			idle(p, time.Hour, "w3", "w4")
			p.Checks = []CheckSample{thresholds("queue", 5, 100, 10, 2)}
		}, dir: ScaleDown, to: 2, code: CodeThreshold, remove: []string{"w4", "w3"}},
		{name: "within", edit: func(p *ScalePool) {
			idle(p, time.Hour, "w3", "w4")
			p.Checks = []CheckSample{thresholds("queue", 50, 100, 10, 2)}
		}, dir: ScaleHold, to: 4, code: CodeWithinTarget, msg: []string{"within [10, 100]"}},
		{name: "at upper is not above", edit: withChecks(thresholds("queue", 100, 100, 10, 2)),
			dir: ScaleHold, to: 4, code: CodeWithinTarget},
		{name: "upper only lets unneeded nodes go", edit: func(p *ScalePool) {
			idle(p, time.Hour, "w4")
			p.Checks = []CheckSample{thresholds("queue", 50, 100, nan, 1)}
		}, dir: ScaleDown, to: 3, code: CodeThreshold, remove: []string{"w4"}},
		{name: "lower only keeps the size above lower", edit: func(p *ScalePool) {
			idle(p, time.Hour, "w4")
			p.Checks = []CheckSample{thresholds("queue", 50, nan, 10, 1)}
		}, dir: ScaleHold, to: 4, code: CodeWithinTarget, msg: []string{"not below lower 10"}},
		{name: "infinite threshold is not trusted", edit: withChecks(thresholds("queue", 50, math.Inf(1), nan, 1)),
			dir: ScaleHold, to: 4, code: CodeNoData},
	})
}

func TestScaleAlerts(t *testing.T) {
	runScaleCases(t, []scaleCase{
		{name: "firing", edit: withChecks(alert("HighLoad", true, 3)),
			dir: ScaleUp, to: 7, code: CodeAlert, msg: []string{`alert check "HighLoad": the alert is firing (last heard 1m0s ago)`}},
		{name: "firing, covered by starting instances", edit: func(p *ScalePool) {
			p.Current, p.Pending = 7, 3
			p.Checks = []CheckSample{alert("HighLoad", true, 3)}
		}, dir: ScaleHold, to: 7, code: CodeWithinTarget},
		{name: "quiet alert lets unneeded nodes go", edit: func(p *ScalePool) {
			idle(p, time.Hour, "w1")
			p.Checks = []CheckSample{alert("HighLoad", false, 3)}
		}, dir: ScaleDown, to: 3, code: CodeAlert, remove: []string{"w1"}},
		{name: "a configured alert without a sample is not firing", edit: func(p *ScalePool) {
			idle(p, time.Hour, "w1")
			p.Rules.Alert = []policy.AlertRule{{Name: "HighLoad", Step: 1}}
		}, dir: ScaleDown, to: 3, code: CodeAlert, remove: []string{"w1"}},
	})
}

func TestScaleDisagreement(t *testing.T) {
	runScaleCases(t, []scaleCase{
		{name: "the most capacity wins", edit: withChecks(pending(tasks(2, cpu2, 0)...), target("cpu", 1.2, 0.6)),
			dir: ScaleUp, to: 8, code: CodeTargetTracking, check: func(t *testing.T, d ScaleDecision) {
				if d.PerCheck[0].Desired != 6 || d.PerCheck[1].Desired != 8 {
					t.Errorf("per check = %+v", d.PerCheck)
				}
			}},
		{name: "a firing alert beats a metric that would shrink", edit: func(p *ScalePool) {
			idle(p, time.Hour, "w3", "w4")
			p.Checks = []CheckSample{target("cpu", 0.1, 0.6), alert("HighLoad", true, 1)}
		}, dir: ScaleUp, to: 5, code: CodeAlert},
		{name: "no scale-in unless every check agrees", edit: func(p *ScalePool) {
			idle(p, time.Hour, "w3", "w4")
			p.Checks = []CheckSample{target("cpu", 0.1, 0.6), thresholds("queue", 50, 100, 10, 1)}
		}, dir: ScaleHold, to: 4, code: CodeWithinTarget},
		{name: "the least shrinking wins", edit: func(p *ScalePool) {
			idle(p, time.Hour, "w2", "w3", "w4")
			p.Checks = []CheckSample{target("cpu", 0.1, 0.6), thresholds("queue", 5, 100, 10, 1)}
		}, dir: ScaleDown, to: 3, code: CodeThreshold, remove: []string{"w4"}},
		{name: "quiet checks limit the shrinking to the unneeded nodes", edit: func(p *ScalePool) {
			idle(p, time.Hour, "w4")
			p.Checks = []CheckSample{pending(), target("cpu", 0.1, 0.6)}
		}, dir: ScaleDown, to: 3, code: CodeScaleInAfter, remove: []string{"w4"},
			msg: []string{`as prometheus check "cpu"`, "asks for 1 and no more nodes have been unneeded"}},
		{name: "quiet checks and no unneeded node", edit: withChecks(pending(), target("cpu", 0.1, 0.6)),
			dir: ScaleHold, to: 4, code: CodeScaleInAfter, msg: []string{"no node has been unneeded"}},
	})
}

func TestScaleNodeSelectors(t *testing.T) {
	// Six nodes, all unneeded: w1 oldest ... w6 newest, with different
	// loads; the metric allows removing two.
	setup := func(selector string) func(p *ScalePool) {
		return func(p *ScalePool) {
			p.Rules.NodeSelector = selector
			idleAll(p, time.Hour)
			load := []struct {
				tasks  int
				cpu    int64
				memGiB int64
			}{{0, 0, 0}, {3, cpu2 / 4, 1}, {1, cpu2 / 10, 3}, {0, 0, 0}, {5, cpu2 / 20, 0}, {2, cpu2, 0}}
			for i, l := range load {
				n := &p.Nodes[i]
				n.RunningTasks, n.Reserved = l.tasks, Resources{NanoCPUs: l.cpu, MemoryBytes: l.memGiB * gib}
			}
			p.Checks = []CheckSample{target("cpu", 0.4, 0.6)} // ceil(6 × 0.4 / 0.6) = 4
		}
	}
	runScaleCases(t, []scaleCase{
		{name: "empty_first: the empty ones, newest first", n: 6, edit: setup(policy.NodeSelectorEmptyFirst),
			dir: ScaleDown, to: 4, code: CodeTargetTracking, remove: []string{"w4", "w1"}},
		{name: "least_busy: the smallest reserved share", n: 6, edit: func(p *ScalePool) {
			setup(policy.NodeSelectorLeastBusy)(p)
			p.Checks = []CheckSample{target("cpu", 0.2, 0.6)} // 2 nodes, remove 4 (one busy at most)
		}, dir: ScaleDown, to: 3, code: CodeScaleInAfter, remove: []string{"w4", "w1", "w5"}},
		{name: "oldest", n: 6, edit: setup(policy.NodeSelectorOldest),
			dir: ScaleDown, to: 4, code: CodeTargetTracking, remove: []string{"w1", "w2"}},
		{name: "oldest with empty nodes behind a busy one", n: 6, edit: func(p *ScalePool) {
			setup(policy.NodeSelectorOldest)(p)
			p.Nodes[0].RunningTasks = 1
			p.Nodes[3].RunningTasks = 0
		}, dir: ScaleDown, to: 4, code: CodeTargetTracking, remove: []string{"w1", "w4"}},
		{name: "newest", n: 6, edit: setup(policy.NodeSelectorNewest),
			dir: ScaleDown, to: 4, code: CodeTargetTracking, remove: []string{"w6", "w4"}},
	})
}

func TestScaleDraining(t *testing.T) {
	runScaleCases(t, []scaleCase{
		{name: "draining nodes are on their way out", n: 6, edit: func(p *ScalePool) {
			scaleNode(p, "w6").Draining = true
			scaleNode(p, "w5").Draining = true
			scaleNode(p, "w5").RunningTasks = 0
			p.Checks = []CheckSample{target("cpu", 0.6, 0.6)}
		}, dir: ScaleHold, to: 4, code: CodeWithinTarget, check: func(t *testing.T, d ScaleDecision) {
			if d.From != 4 {
				t.Errorf("From = %d, want 6 - 2 draining", d.From)
			}
		}},
		{name: "draining nodes are never chosen again", n: 6, edit: func(p *ScalePool) {
			idle(p, time.Hour, "w1", "w2", "w6")
			scaleNode(p, "w6").Draining = true
			p.Checks = []CheckSample{target("cpu", 0.1, 0.6)}
		}, dir: ScaleDown, to: 3, code: CodeScaleInAfter, remove: []string{"w2", "w1"}},
		{name: "only empty nodes while a busy one drains", n: 6, edit: func(p *ScalePool) {
			idleAll(p, time.Hour)
			idle(p, time.Hour, "w2")
			scaleNode(p, "w6").Draining = true
			p.Checks = []CheckSample{target("cpu", 0.1, 0.6)}
		}, dir: ScaleDown, to: 4, code: CodeScaleInAfter, remove: []string{"w2"},
			msg: []string{"node w6 is draining with running tasks, so only empty nodes go"}},
		{name: "a busy node draining holds busy candidates", n: 6, edit: func(p *ScalePool) {
			idleAll(p, time.Hour)
			scaleNode(p, "w6").Draining = true
			p.Checks = []CheckSample{target("cpu", 0.1, 0.6)}
		}, dir: ScaleHold, to: 5, code: CodeDraining, msg: []string{"node w6 is draining with 2 running tasks"}},
		{name: "one busy node at a time", n: 6, edit: func(p *ScalePool) {
			idleAll(p, time.Hour)
			p.Checks = []CheckSample{target("cpu", 0.1, 0.6)}
		}, dir: ScaleDown, to: 5, code: CodeScaleInAfter, remove: []string{"w6"}},
		{name: "a draining empty node does not hold busy ones", n: 6, edit: func(p *ScalePool) {
			idleAll(p, time.Hour)
			idle(p, time.Hour, "w6")
			scaleNode(p, "w6").Draining = true
			p.Checks = []CheckSample{target("cpu", 0.1, 0.6)}
		}, dir: ScaleDown, to: 4, code: CodeScaleInAfter, remove: []string{"w5"}},
	})
}

func TestScaleBounds(t *testing.T) {
	runScaleCases(t, []scaleCase{
		{name: "below min_size grows whatever the checks and cooldowns say", n: 1, edit: func(p *ScalePool) {
			p.MinSize = 3
			p.LastScaleUp = t0.Add(-time.Second)
			s := target("cpu", 0, 0.6)
			s.SampleTime = time.Time{}
			p.Checks = []CheckSample{s}
		}, dir: ScaleUp, to: 3, code: CodeMinSize, forced: true, msg: []string{"fewer than min_size 3"}},
		{name: "far below min_size grows by max_step", n: -1, edit: func(p *ScalePool) {
			p.MinSize, p.Current, p.Nodes = 8, 0, nil
		}, dir: ScaleUp, to: 5, code: CodeMinSize, forced: true, msg: []string{"limited by max_step 5"}},
		{name: "above max_size shrinks whatever the checks and cooldowns say", n: 8, edit: func(p *ScalePool) {
			p.MaxSize = 6
			idle(p, time.Minute, "w3", "w5") // empty, not unneeded for long
			p.LastScaleDown = t0.Add(-time.Second)
			s := target("cpu", 0.9, 0.6)
			s.Err = "unreachable"
			p.Checks = []CheckSample{s, pending(tasks(3, cpu2, 0)...)}
		}, dir: ScaleDown, to: 6, code: CodeMaxSize, forced: true, remove: []string{"w5", "w3"},
			msg: []string{"more than max_size 6"}},
		{name: "far above max_size shrinks by max_step", n: 10, edit: func(p *ScalePool) {
			p.MaxSize = 2
			for i := range p.Nodes {
				p.Nodes[i].RunningTasks = 0
			}
		}, dir: ScaleDown, to: 5, code: CodeMaxSize, forced: true, remove: []string{"w10", "w9", "w8", "w7", "w6"},
			msg: []string{"limited by max_step 5"}},
		{name: "above max_size, one busy node at a time", n: 6, edit: func(p *ScalePool) {
			p.MaxSize = 3
		}, dir: ScaleDown, to: 5, code: CodeMaxSize, forced: true, remove: []string{"w6"},
			msg: []string{"one busy node at a time"}},
		{name: "draining nodes do not count against max_size", n: 6, edit: func(p *ScalePool) {
			p.MaxSize, p.Current = 3, 8
			for i := range p.Nodes {
				p.Nodes[i].Draining, p.Nodes[i].RunningTasks = true, 0
			}
			p.Checks = []CheckSample{pending()}
		}, dir: ScaleHold, to: 2, code: CodeWithinTarget, check: func(t *testing.T, d ScaleDecision) {
			// 8 instances less 6 draining nodes: 2, within [1, 3].
			if d.From != 2 {
				t.Errorf("From = %d, want 2", d.From)
			}
		}},
		{name: "above max_size with every node draining", n: 6, edit: func(p *ScalePool) {
			p.MaxSize, p.Current = 3, 10
			for i := range p.Nodes {
				p.Nodes[i].Draining = true
			}
		}, dir: ScaleHold, to: 4, code: CodeMaxSize, msg: []string{"every node is draining already"}},
	})
}

// A node promoted by hand to manager inside a worker pool is never a
// scale-in candidate, nor removable capacity, even unneeded for long or
// with the pool above max_size.
func TestScaleManagers(t *testing.T) {
	manager := func(ids ...string) func(p *ScalePool) {
		return func(p *ScalePool) {
			for _, id := range ids {
				scaleNode(p, id).Role = policy.RoleManager
			}
		}
	}
	runScaleCases(t, []scaleCase{
		{name: "an unneeded manager is never chosen", edit: func(p *ScalePool) {
			idle(p, time.Hour, "w1", "w2", "w3", "w4")
			manager("w4")(p)
			p.Checks = []CheckSample{target("cpu", 0.1, 0.6)}
		}, dir: ScaleDown, to: 1, code: CodeTargetTracking, remove: []string{"w3", "w2", "w1"}},
		{name: "an unneeded manager is no removable capacity", edit: func(p *ScalePool) {
			idle(p, time.Hour, "w4")
			manager("w4")(p)
			p.Checks = []CheckSample{pending()}
		}, dir: ScaleHold, to: 4, code: CodeWithinTarget, msg: []string{"no task is pending"},
			check: func(t *testing.T, d ScaleDecision) {
				if d.PerCheck[0].Desired != 4 {
					t.Errorf("pending_tasks asks for %d, want 4: the manager cannot go", d.PerCheck[0].Desired)
				}
			}},
		{name: "only managers unneeded: hold", edit: func(p *ScalePool) {
			idle(p, time.Hour, "w3", "w4")
			manager("w3", "w4")(p)
			p.Checks = []CheckSample{target("cpu", 0.1, 0.6)}
		}, dir: ScaleHold, to: 4, code: CodeScaleInAfter, msg: []string{"no node has been unneeded"}},
		{name: "above max_size, managers stay", edit: func(p *ScalePool) {
			p.MaxSize = 2
			idle(p, time.Hour, "w3", "w4")
			manager("w3", "w4")(p)
		}, dir: ScaleDown, to: 3, code: CodeMaxSize, forced: true, remove: []string{"w2"}},
		{name: "above max_size with only managers left", n: 3, edit: func(p *ScalePool) {
			p.MaxSize = 1
			manager("w1", "w2")(p)
			scaleNode(p, "w3").Draining = true
			p.Current = 4
		}, dir: ScaleHold, to: 3, code: CodeMaxSize, msg: []string{"every node is draining already or is a manager (2 managers, never scaled in)"}},
	})
}

func TestScaleHolds(t *testing.T) {
	runScaleCases(t, []scaleCase{
		{name: "disabled", edit: func(p *ScalePool) {
			p.Rules.Enabled = false
			p.Checks = []CheckSample{pending(tasks(5, cpu2, 0)...)}
		}, dir: ScaleHold, to: 4, code: CodeDisabled},
		{name: "disabled below min_size", edit: func(p *ScalePool) {
			p.Rules.Enabled = false
			p.MinSize = 6
		}, dir: ScaleHold, to: 4, code: CodeDisabled},
		{name: "bounds upside down", edit: func(p *ScalePool) { p.MinSize, p.MaxSize = 5, 2 },
			dir: ScaleHold, to: 4, code: CodeInvalid, msg: []string{"bounds [5, 2]"}},
		{name: "max_step 0", edit: func(p *ScalePool) { p.Rules.MaxStep = 0 },
			dir: ScaleHold, to: 4, code: CodeInvalid, msg: []string{"max_step 0"}},
		{name: "unknown node selector", edit: func(p *ScalePool) { p.Rules.NodeSelector = "random" },
			dir: ScaleHold, to: 4, code: CodeInvalid},
		{name: "negative pending", edit: func(p *ScalePool) { p.Pending = -1 },
			dir: ScaleHold, to: 4, code: CodeInvalid},
	})
}

func TestScaleRepeatedPoolID(t *testing.T) {
	a, b := scalePool(4), scalePool(2)
	a.Checks = []CheckSample{pending(tasks(1, cpu2, 0)...)}
	b.Checks = a.Checks
	s := ScaleSnapshot{Now: t0, Pools: []ScalePool{a, b}}
	plan := Scale(s)
	checkScaleInvariants(t, s, plan)
	if d := plan.Decisions[0]; d.Direction != ScaleUp {
		t.Errorf("first pool: %+v", d)
	}
	if d := plan.Decisions[1]; d.Code != CodeInvalid || d.To != 2 {
		t.Errorf("repeated pool: %+v", d)
	}
}

// Every hold explains itself, and every decision names its checks.
func TestScaleMessages(t *testing.T) {
	p := scalePool(4)
	p.Checks = []CheckSample{pending(), target("cpu", 0.6, 0.6), alert("HighLoad", false, 1)}
	d := Scale(ScaleSnapshot{Now: t0, Pools: []ScalePool{p}}).Decisions[0]
	if len(d.PerCheck) != 3 {
		t.Fatalf("per check = %+v", d.PerCheck)
	}
	for _, c := range d.PerCheck {
		if c.Name == "" || c.Kind == "" || c.Reason == "" || !c.Trusted || c.Desired != 4 {
			t.Errorf("check result %+v", c)
		}
	}
	if strings.Contains(d.Message, "\n") || !strings.HasSuffix(d.Message, ": hold") {
		t.Errorf("message %q", d.Message)
	}
}

func TestUnneeded(t *testing.T) {
	c := Resources{NanoCPUs: cpu2, MemoryBytes: 4 * gib}
	tests := []struct {
		name  string
		n     ScaleNode
		share float64
		want  bool
	}{
		{"no task", ScaleNode{Capacity: c}, 0, true},
		{"no task, unknown capacity", ScaleNode{}, 0, true},
		{"tasks without reservations", ScaleNode{RunningTasks: 3, Capacity: c}, 0, true},
		{"cpu below half", ScaleNode{RunningTasks: 1, Capacity: c, Reserved: Resources{NanoCPUs: cpu2 / 4}}, 0.25, true},
		{"cpu at half", ScaleNode{RunningTasks: 1, Capacity: c, Reserved: Resources{NanoCPUs: cpu2 / 2}}, 0.5, false},
		{"memory above half", ScaleNode{RunningTasks: 1, Capacity: c, Reserved: Resources{NanoCPUs: 1, MemoryBytes: 3 * gib}}, 0.75, false},
		{"reserved on unknown capacity", ScaleNode{RunningTasks: 1, Reserved: Resources{MemoryBytes: 1}}, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ReservedShare(tt.n); got != tt.share {
				t.Errorf("ReservedShare = %v, want %v", got, tt.share)
			}
			if got := Unneeded(tt.n, 0.5); got != tt.want {
				t.Errorf("Unneeded(0.5) = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestScaleSimulatedHour runs the pure core for an hour of one-second
// evaluations against a load that swings ±20% around the target every five
// minutes, feeding each decision back as the pool's size, with Prometheus
// silent for a minute every ten. The size must stay in bounds, step at most
// max_step, never shrink on a stale sample, and change no more often than
// the cooldowns allow.
func TestScaleSimulatedHour(t *testing.T) {
	const (
		lo, hi   = 2, 40
		tgt      = 0.6
		baseLoad = 12.0 // CPUs of work: 20 nodes at the target
	)
	rules := scaleRules()
	rules.Prometheus = []policy.PrometheusRule{{Name: "cpu", TargetValue: fp(tgt)}}
	maxAge := rules.MaxSampleAge

	current := 20
	var nodes []ScaleNode
	serial := 0
	addNode := func(at time.Time) {
		serial++
		nodes = append(nodes, ScaleNode{ID: fmt.Sprintf("s%d", serial), InstanceID: fmt.Sprintf("i-s%d", serial), CreatedAt: at})
	}
	for range current {
		addNode(t0.Add(-time.Hour))
	}
	var lastUp, lastDown, lowSince, sampleTime time.Time
	var value float64
	ups, downs, staleHolds, minSize, maxSize := 0, 0, 0, current, current
	for sec := range 3600 {
		now := t0.Add(time.Duration(sec) * time.Second)
		load := baseLoad * (1 + 0.2*math.Sin(2*math.Pi*float64(sec)/300))
		if silent := sec%600 >= 300 && sec%600 < 360; !silent {
			value, sampleTime = load/float64(current), now.Add(-time.Second)
		}
		if value < tgt {
			if lowSince.IsZero() {
				lowSince = now
			}
		} else {
			lowSince = time.Time{}
		}
		for i := range nodes {
			nodes[i].UnneededSince = time.Time{}
			if !lowSince.IsZero() {
				nodes[i].UnneededSince = lowSince
				if nodes[i].CreatedAt.After(lowSince) {
					nodes[i].UnneededSince = nodes[i].CreatedAt
				}
			}
		}
		s := ScaleSnapshot{Now: now, Pools: []ScalePool{{
			ID: workers, MinSize: lo, MaxSize: hi, Current: current, Rules: rules,
			LastScaleUp: lastUp, LastScaleDown: lastDown, Nodes: slices.Clone(nodes),
			Checks: []CheckSample{{Name: "cpu", Kind: CheckPrometheus, Value: value, SampleTime: sampleTime, Target: fp(tgt)}},
		}}}
		d := Scale(s).Decisions[0]
		if sec%60 == 0 {
			checkScaleInvariants(t, s, ScalePlan{Decisions: []ScaleDecision{d}})
		}
		if d.From != current {
			t.Fatalf("t=%ds: From = %d, want %d", sec, d.From, current)
		}
		if d.To < lo || d.To > hi || abs(d.To-current) > rules.MaxStep {
			t.Fatalf("t=%ds: %d -> %d leaves [%d, %d] or steps more than %d: %s", sec, current, d.To, lo, hi, rules.MaxStep, d.Message)
		}
		stale := now.Sub(sampleTime) > maxAge
		if stale && d.To < current {
			t.Fatalf("t=%ds: shrinks on a sample %s old: %s", sec, now.Sub(sampleTime), d.Message)
		}
		if stale && d.Code == CodeStaleMetric {
			staleHolds++
		}
		switch {
		case d.To > current:
			for range d.To - current {
				addNode(now)
			}
			lastUp = now
			ups++
		case d.To < current:
			if len(d.RemoveNodes) != current-d.To {
				t.Fatalf("t=%ds: removes %q for %d -> %d", sec, d.RemoveNodes, current, d.To)
			}
			nodes = slices.DeleteFunc(nodes, func(n ScaleNode) bool { return slices.Contains(d.RemoveNodes, n.ID) })
			lastDown = now
			downs++
		}
		current = d.To
		minSize, maxSize = min(minSize, current), max(maxSize, current)
		if len(nodes) != current {
			t.Fatalf("t=%ds: %d nodes for size %d", sec, len(nodes), current)
		}
	}
	bound := int(time.Hour/rules.CooldownUp) + int(time.Hour/rules.CooldownDown)
	t.Logf("one hour: %d scale-ups, %d scale-downs (bound %d), size %d..%d, %d holds on a stale sample",
		ups, downs, bound, minSize, maxSize, staleHolds)
	if ups+downs > bound {
		t.Errorf("%d size changes in an hour, more than the cooldowns allow (%d)", ups+downs, bound)
	}
	if ups == 0 || downs == 0 || staleHolds == 0 {
		t.Errorf("the simulation did not exercise the core: %d ups, %d downs, %d stale holds", ups, downs, staleHolds)
	}
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
