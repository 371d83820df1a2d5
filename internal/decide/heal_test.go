package decide

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

func TestQuorumHeld(t *testing.T) {
	tests := []struct {
		q    Quorum
		want bool
	}{
		{Quorum{Managers: 1, Reachable: 1, LeaderPresent: true}, true},
		{Quorum{Managers: 3, Reachable: 2, LeaderPresent: true}, true},
		{Quorum{Managers: 3, Reachable: 1, LeaderPresent: true}, false},
		{Quorum{Managers: 4, Reachable: 2, LeaderPresent: true}, false},
		{Quorum{Managers: 5, Reachable: 3, LeaderPresent: true}, true},
		{Quorum{Managers: 3, Reachable: 3, LeaderPresent: false}, false},
		{Quorum{Managers: 0, Reachable: 0, LeaderPresent: true}, false},
	}
	for _, tt := range tests {
		if got := tt.q.Held(); got != tt.want {
			t.Errorf("%+v.Held() = %v, want %v", tt.q, got, tt.want)
		}
	}
}

func TestBackoffDelay(t *testing.T) {
	tests := []struct {
		failures int
		want     time.Duration
	}{
		{-1, 0}, {0, 0},
		{1, 10 * time.Second}, {2, 20 * time.Second}, {3, 40 * time.Second},
		{6, 320 * time.Second}, {7, 10 * time.Minute}, {8, 10 * time.Minute},
		{1000, 10 * time.Minute},
	}
	for _, tt := range tests {
		if got := BackoffDelay(tt.failures); got != tt.want {
			t.Errorf("BackoffDelay(%d) = %v, want %v", tt.failures, got, tt.want)
		}
	}
}

// healCase is one table test: a cluster, an edit, and the expected plan.
type healCase struct {
	name string
	m, w int // managers and workers of the base cluster (default 3 and 5)
	edit func(s *Snapshot)
	// want lists the keys of the planned actions, in order.
	want []string
	// reasons lists expected reason codes by pool (others are not checked).
	reasons map[string]ReasonCode
	// check inspects the plan further.
	check func(t *testing.T, p Plan)
}

func runHealCases(t *testing.T, cases []healCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, w := tc.m, tc.w
			if m == 0 {
				m = 3
			}
			if w == 0 {
				w = 5
			}
			s := cluster(m, w)
			if tc.edit != nil {
				tc.edit(&s)
			}
			p := Heal(s)
			if got := keys(p); !slices.Equal(got, tc.want) && (len(got) > 0 || len(tc.want) > 0) {
				t.Fatalf("actions = %q\nwant      %q\nreasons: %+v", got, tc.want, p.Reasons)
			}
			got := codes(p)
			for pool, code := range tc.reasons {
				if got[pool] != code {
					t.Errorf("reason of %s = %q, want %q (all: %+v)", pool, got[pool], code, p.Reasons)
				}
			}
			if tc.check != nil {
				tc.check(t, p)
			}
			checkInvariants(t, s, p)
		})
	}
}

func setRules(s *Snapshot, poolID string, edit func(r *policy.HealingRules)) {
	edit(&findPool(s, poolID).Rules)
}

func reasonOf(p Plan, poolID string) Reason {
	for _, r := range p.Reasons {
		if r.PoolID == poolID {
			return r
		}
	}
	return Reason{}
}

func messageContains(poolID, want string) func(t *testing.T, p Plan) {
	return func(t *testing.T, p Plan) {
		t.Helper()
		if r := reasonOf(p, poolID); !strings.Contains(r.Message, want) {
			t.Errorf("reason of %s = %q, want it to contain %q", poolID, r.Message, want)
		}
	}
}

const (
	replaceW1 = "replace_node/c/workers/node:w1"
	replaceW2 = "replace_node/c/workers/node:w2"
	replaceW3 = "replace_node/c/workers/node:w3"
	removeW1  = "remove_node/c/workers/node:w1"
)

func TestHealWorkerFailure(t *testing.T) {
	runHealCases(t, []healCase{
		{
			name:    "all healthy",
			reasons: map[string]ReasonCode{managers: ReasonHealthy, workers: ReasonHealthy},
		},
		{
			name:    "down for less than unhealthy_after waits",
			edit:    func(s *Snapshot) { fail(s, "w1", NodeDown, 29*time.Second) },
			reasons: map[string]ReasonCode{workers: ReasonWaiting},
			check:   messageContains(workers, "node w1 has been down for 29s, less than unhealthy_after (30s)"),
		},
		{
			name:    "down for exactly unhealthy_after is failed",
			edit:    func(s *Snapshot) { fail(s, "w1", NodeDown, 30*time.Second) },
			want:    []string{replaceW1},
			reasons: map[string]ReasonCode{workers: ReasonHealing, managers: ReasonHealthy},
			check: func(t *testing.T, p Plan) {
				a := p.Actions[0]
				want := Action{Kind: ReplaceNode, Key: replaceW1, PoolID: workers, Role: policy.RoleWorker,
					NodeID: "w1", InstanceID: "i-w1",
					Reason: "node w1 has been down for 30s (unhealthy_after 30s): start a replacement, then remove the node once it is ready"}
				if a != want {
					t.Errorf("action = %+v\nwant     %+v", a, want)
				}
			},
		},
		{
			name: "authoritative instances: down and instance terminated is failed at once",
			edit: func(s *Snapshot) {
				s.InstancesAuthoritative = true
				fail(s, "w1", NodeDown, time.Second)
				findInstance(s, "i-w1").Running = false
			},
			want: []string{replaceW1},
		},
		{
			name: "authoritative instances: down and instance no longer listed is failed at once",
			edit: func(s *Snapshot) {
				s.InstancesAuthoritative = true
				fail(s, "w1", NodeDown, time.Second)
				for i := range s.Instances {
					if s.Instances[i].ID == "i-w1" {
						s.Instances = append(s.Instances[:i], s.Instances[i+1:]...)
						break
					}
				}
			},
			want: []string{replaceW1},
		},
		{
			name: "authoritative instances: down while the instance runs waits for unhealthy_after",
			edit: func(s *Snapshot) {
				s.InstancesAuthoritative = true
				fail(s, "w1", NodeDown, time.Second)
			},
			reasons: map[string]ReasonCode{workers: ReasonWaiting},
		},
		{
			name: "instances not authoritative: a terminated instance still waits for unhealthy_after",
			edit: func(s *Snapshot) {
				fail(s, "w1", NodeDown, time.Second)
				findInstance(s, "i-w1").Running = false
			},
			reasons: map[string]ReasonCode{workers: ReasonWaiting},
		},
		{
			name: "unknown state is a failure",
			edit: func(s *Snapshot) { fail(s, "w1", NodeUnknown, time.Minute) },
			want: []string{replaceW1},
		},
		{
			name: "disconnected state is a failure",
			edit: func(s *Snapshot) { fail(s, "w1", NodeDisconnected, time.Minute) },
			want: []string{replaceW1},
		},
		{
			name:    "a state healing does not know is not a failure",
			edit:    func(s *Snapshot) { fail(s, "w1", "error", time.Hour) },
			reasons: map[string]ReasonCode{workers: ReasonWaiting},
		},
		{
			name: "unknown StateSince is not judged",
			edit: func(s *Snapshot) {
				fail(s, "w1", NodeDown, 0)
				findNode(s, "w1").StateSince = time.Time{}
			},
			reasons: map[string]ReasonCode{workers: ReasonWaiting},
		},
		{
			name:    "StateSince in the future is not judged",
			edit:    func(s *Snapshot) { fail(s, "w1", NodeDown, -time.Minute) },
			reasons: map[string]ReasonCode{workers: ReasonWaiting},
		},
		{
			name: "zero unhealthy_after fails at once",
			edit: func(s *Snapshot) {
				setRules(s, workers, func(r *policy.HealingRules) { r.UnhealthyAfter = 0 })
				fail(s, "w1", NodeDown, 0)
			},
			want: []string{replaceW1},
		},
		{
			name: "younger than min_node_age holds",
			edit: func(s *Snapshot) {
				setRules(s, workers, func(r *policy.HealingRules) { r.MinNodeAge = 2 * time.Hour })
				fail(s, "w1", NodeDown, time.Minute)
			},
			reasons: map[string]ReasonCode{workers: ReasonMinNodeAge},
			check:   messageContains(workers, "node w1 is down but younger than min_node_age (2h0m0s)"),
		},
		{
			name: "exactly min_node_age old is judged",
			edit: func(s *Snapshot) {
				setRules(s, workers, func(r *policy.HealingRules) { r.MinNodeAge = time.Hour })
				fail(s, "w1", NodeDown, time.Minute)
			},
			want: []string{replaceW1},
		},
		{
			name: "min_node_age falls back to the instance's age",
			edit: func(s *Snapshot) {
				setRules(s, workers, func(r *policy.HealingRules) { r.MinNodeAge = 2 * time.Hour })
				fail(s, "w1", NodeDown, time.Minute)
				findNode(s, "w1").CreatedAt = time.Time{}
				findInstance(s, "i-w1").CreatedAt = t0.Add(-3 * time.Hour)
			},
			want: []string{replaceW1},
		},
		{
			name: "unknown age is young while min_node_age is set",
			edit: func(s *Snapshot) {
				setRules(s, workers, func(r *policy.HealingRules) { r.MinNodeAge = time.Minute })
				fail(s, "w1", NodeDown, time.Minute)
				findNode(s, "w1").CreatedAt = time.Time{}
				findInstance(s, "i-w1").CreatedAt = time.Time{}
			},
			reasons: map[string]ReasonCode{workers: ReasonMinNodeAge},
		},
		{
			name: "a node with running tasks is replaced; its removal drains",
			edit: func(s *Snapshot) {
				fail(s, "w1", NodeDown, time.Minute)
				findNode(s, "w1").RunningTasks = 3
			},
			want: []string{replaceW1},
		},
		{
			name: "nodes and instances of unknown pools are left alone",
			edit: func(s *Snapshot) {
				addInstance(s, "i-x", "c/gone", time.Hour, true, "x")
				n := addNode(s, "x", "c/gone", policy.RoleWorker, "i-x")
				n.State, n.StateSince = NodeDown, t0.Add(-time.Hour)
				addInstance(s, "i-y", "", time.Hour, true, "")
			},
			reasons: map[string]ReasonCode{managers: ReasonHealthy, workers: ReasonHealthy},
		},
	})
}

func TestHealDisabled(t *testing.T) {
	runHealCases(t, []healCase{
		{
			name: "no policy",
			edit: func(s *Snapshot) {
				findPool(s, workers).HasPolicy = false
				fail(s, "w1", NodeDown, time.Hour)
			},
			reasons: map[string]ReasonCode{workers: ReasonDisabled, managers: ReasonHealthy},
			check:   messageContains(workers, "no healing policy"),
		},
		{
			name: "policy disabled",
			edit: func(s *Snapshot) {
				setRules(s, workers, func(r *policy.HealingRules) { r.Enabled = false })
				fail(s, "w1", NodeDown, time.Hour)
			},
			reasons: map[string]ReasonCode{workers: ReasonDisabled},
			check:   messageContains(workers, "disabled"),
		},
		{
			name: "disabled pool does not conclude its units either",
			edit: func(s *Snapshot) {
				fail(s, "w1", NodeDown, time.Hour)
				addInstance(s, "i-w6", workers, time.Minute, true, "w6")
				addNode(s, "w6", workers, policy.RoleWorker, "i-w6")
				inFlight(s, ReplaceNode, workers, "w1", "i-w1", "i-w6", "")
				findPool(s, workers).HasPolicy = false
			},
			reasons: map[string]ReasonCode{workers: ReasonDisabled},
		},
		{
			name: "bounds that are not a range",
			edit: func(s *Snapshot) {
				p := findPool(s, workers)
				p.MinSize, p.MaxSize = 5, 3
				fail(s, "w1", NodeDown, time.Hour)
			},
			reasons: map[string]ReasonCode{workers: ReasonInvalid},
		},
		{
			name: "unknown role",
			edit: func(s *Snapshot) {
				findPool(s, workers).Role = "robot"
				fail(s, "w1", NodeDown, time.Hour)
			},
			reasons: map[string]ReasonCode{workers: ReasonInvalid},
		},
		{
			name: "rules that were never validated",
			edit: func(s *Snapshot) {
				findPool(s, workers).Rules = policy.HealingRules{Enabled: true}
				fail(s, "w1", NodeDown, time.Hour)
			},
			reasons: map[string]ReasonCode{workers: ReasonInvalid},
		},
		{
			name: "a repeated pool id is invalid, the first one heals",
			edit: func(s *Snapshot) {
				s.Pools = append(s.Pools, s.Pools[1])
				fail(s, "w1", NodeDown, time.Hour)
			},
			want: []string{replaceW1},
			check: func(t *testing.T, p Plan) {
				if len(p.Reasons) != 3 || p.Reasons[1].Code != ReasonHealing || p.Reasons[2].Code != ReasonInvalid {
					t.Errorf("reasons = %+v", p.Reasons)
				}
			},
		},
	})
}

func TestHealCircuitBreaker(t *testing.T) {
	runHealCases(t, []healCase{
		{
			name: "one failed node never trips it, even in a pool of one",
			w:    1,
			edit: func(s *Snapshot) { fail(s, "w1", NodeDown, time.Minute) },
			want: []string{replaceW1},
		},
		{
			name: "exactly the share heals",
			w:    10,
			edit: func(s *Snapshot) {
				setRules(s, workers, func(r *policy.HealingRules) { r.MaxConcurrentReplacements = 2 })
				fail(s, "w1", NodeDown, time.Minute)
				fail(s, "w2", NodeDown, time.Minute)
			},
			want: []string{replaceW1, replaceW2},
		},
		{
			name: "more than the share of the pool stops healing",
			w:    10,
			edit: func(s *Snapshot) {
				fail(s, "w1", NodeDown, time.Minute)
				fail(s, "w2", NodeDown, time.Minute)
				fail(s, "w3", NodeDown, 5*time.Second) // unhealthy, not failed yet: still counts
			},
			// 3 of the cluster's 13 nodes is more than 20% too.
			reasons: map[string]ReasonCode{workers: ReasonCircuitBreaker, managers: ReasonCircuitBreaker},
			check:   messageContains(workers, "3 of 10 nodes of the pool are unhealthy, more than max_unhealthy_percent (20%)"),
		},
		{
			name: "the breaker also stops concluding units",
			w:    10,
			edit: func(s *Snapshot) {
				fail(s, "w1", NodeDown, time.Minute)
				fail(s, "w2", NodeDown, time.Minute)
				fail(s, "w3", NodeDown, time.Minute)
				inFlight(s, ReplaceNode, workers, "w1", "i-w1", "i-w4", "")
			},
			reasons: map[string]ReasonCode{workers: ReasonCircuitBreaker},
		},
		{
			name: "more than the share of the cluster stops healing in every pool",
			edit: func(s *Snapshot) {
				addPool(s, "c/batch", policy.RoleWorker, 1, 10, 5)
				addNodes(s, "c/batch", "b", 5)
				// batch tolerates anything in itself, not the cluster's share.
				setRules(s, "c/batch", func(r *policy.HealingRules) { r.MaxUnhealthyPercent = 100 })
				for _, id := range []string{"b1", "b2", "b3", "b4"} {
					fail(s, id, NodeDown, time.Minute)
				}
				fail(s, "w1", NodeDown, time.Minute)
			},
			want: []string{"replace_node/c/batch/node:b1"},
			reasons: map[string]ReasonCode{
				workers: ReasonCircuitBreaker, managers: ReasonCircuitBreaker, "c/batch": ReasonHealing,
			},
			check: messageContains(workers, "5 of 13 nodes of the cluster are unhealthy"),
		},
		{
			name: "max_unhealthy_percent 100 never trips",
			edit: func(s *Snapshot) {
				setRules(s, workers, func(r *policy.HealingRules) {
					r.MaxUnhealthyPercent = 100
					r.MaxConcurrentReplacements = 10
				})
				setRules(s, managers, func(r *policy.HealingRules) { r.MaxUnhealthyPercent = 100 })
				for _, id := range []string{"w1", "w2", "w3", "w4", "w5"} {
					fail(s, id, NodeDown, time.Minute)
				}
			},
			want: []string{replaceW1, replaceW2, replaceW3, "replace_node/c/workers/node:w4", "replace_node/c/workers/node:w5"},
			check: func(t *testing.T, p Plan) {
				if r := reasonOf(p, workers); !strings.Contains(r.Message, "; and 2 more") {
					t.Errorf("reason = %q, want at most three actions listed", r.Message)
				}
			},
		},
	})
}

func TestHealBudgetAndBackoff(t *testing.T) {
	runHealCases(t, []healCase{
		{
			name: "oldest failure first, the rest waits for the budget",
			w:    10,
			edit: func(s *Snapshot) {
				fail(s, "w1", NodeDown, 2*time.Minute)
				fail(s, "w2", NodeDown, 5*time.Minute)
			},
			want:    []string{replaceW2},
			reasons: map[string]ReasonCode{workers: ReasonHealing},
			check:   messageContains(workers, "holding: 1 replacements in flight or planned, max_concurrent_replacements is 1"),
		},
		{
			name: "ties broken by node id",
			w:    10,
			edit: func(s *Snapshot) {
				fail(s, "w2", NodeDown, time.Minute)
				fail(s, "w1", NodeDown, time.Minute)
			},
			want: []string{replaceW1},
		},
		{
			name: "replacements in flight count against the budget",
			w:    10,
			edit: func(s *Snapshot) {
				fail(s, "w1", NodeDown, 5*time.Minute)
				fail(s, "w2", NodeDown, time.Minute)
				addInstance(s, "i-w11", workers, time.Minute, true, "")
				inFlight(s, ReplaceNode, workers, "w1", "i-w1", "i-w11", "")
			},
			reasons: map[string]ReasonCode{workers: ReasonBudget},
		},
		{
			name: "a larger budget starts more",
			w:    10,
			edit: func(s *Snapshot) {
				setRules(s, workers, func(r *policy.HealingRules) { r.MaxConcurrentReplacements = 3 })
				fail(s, "w1", NodeDown, 5*time.Minute)
				fail(s, "w2", NodeDown, time.Minute)
				addInstance(s, "i-w11", workers, time.Minute, true, "")
				inFlight(s, ReplaceNode, workers, "w1", "i-w1", "i-w11", "")
			},
			want: []string{replaceW2},
		},
		{
			name: "backoff holds new replacements",
			edit: func(s *Snapshot) {
				fail(s, "w1", NodeDown, time.Minute)
				s.Backoff = map[string]Backoff{workers: {Failures: 1, LastFailure: t0.Add(-5 * time.Second)}}
			},
			reasons: map[string]ReasonCode{workers: ReasonBackoff},
			check:   messageContains(workers, "1 failed replacements in a row: no new one before 2025-06-01T12:00:05Z (in 5s)"),
		},
		{
			name: "backoff over",
			edit: func(s *Snapshot) {
				fail(s, "w1", NodeDown, time.Minute)
				s.Backoff = map[string]Backoff{workers: {Failures: 1, LastFailure: t0.Add(-10 * time.Second)}}
			},
			want: []string{replaceW1},
		},
		{
			name: "backoff doubles",
			edit: func(s *Snapshot) {
				fail(s, "w1", NodeDown, time.Minute)
				s.Backoff = map[string]Backoff{workers: {Failures: 3, LastFailure: t0.Add(-39 * time.Second)}}
			},
			reasons: map[string]ReasonCode{workers: ReasonBackoff},
		},
		{
			name: "backoff is capped at ten minutes",
			edit: func(s *Snapshot) {
				fail(s, "w1", NodeDown, time.Hour)
				s.Backoff = map[string]Backoff{workers: {Failures: 50, LastFailure: t0.Add(-10 * time.Minute)}}
			},
			want: []string{replaceW1},
		},
		{
			name: "backoff is per pool",
			edit: func(s *Snapshot) {
				fail(s, "w1", NodeDown, time.Minute)
				s.Backoff = map[string]Backoff{managers: {Failures: 5, LastFailure: t0}}
			},
			want: []string{replaceW1},
		},
		{
			name: "backoff does not hold concluding a unit",
			edit: func(s *Snapshot) {
				fail(s, "w1", NodeDown, time.Hour)
				addInstance(s, "i-w6", workers, time.Minute, true, "w6")
				addNode(s, "w6", workers, policy.RoleWorker, "i-w6")
				inFlight(s, ReplaceNode, workers, "w1", "i-w1", "i-w6", "")
				s.Backoff = map[string]Backoff{workers: {Failures: 2, LastFailure: t0}}
			},
			want: []string{removeW1},
		},
	})
}

func TestHealUnits(t *testing.T) {
	// w1 is down for an hour and a replacement for it is in flight.
	replacingW1 := func(s *Snapshot, rep string) string {
		fail(s, "w1", NodeDown, time.Hour)
		return inFlight(s, ReplaceNode, workers, "w1", "i-w1", rep, "")
	}
	runHealCases(t, []healCase{
		{
			name: "replacement ready: remove the dead node",
			edit: func(s *Snapshot) {
				replacingW1(s, "i-w6")
				addInstance(s, "i-w6", workers, time.Minute, true, "w6")
				addNode(s, "w6", workers, policy.RoleWorker, "i-w6")
				findNode(s, "w1").RunningTasks = 2
			},
			want:    []string{removeW1},
			reasons: map[string]ReasonCode{workers: ReasonHealing},
			check: func(t *testing.T, p Plan) {
				a := p.Actions[0]
				want := Action{Kind: RemoveNode, Key: removeW1, PoolID: workers, Role: policy.RoleWorker,
					NodeID: "w1", InstanceID: "i-w1", Completes: "replace_node/c/workers/node:w1", Outcome: OutcomeReplaced, Drain: true,
					Reason: "replacement node w6 is ready: remove node w1"}
				if a != want {
					t.Errorf("action = %+v\nwant     %+v", a, want)
				}
			},
		},
		{
			name: "replacement found through the node's instance link alone",
			edit: func(s *Snapshot) {
				replacingW1(s, "i-w6")
				addInstance(s, "i-w6", workers, time.Minute, true, "")
				addNode(s, "w6", workers, policy.RoleWorker, "i-w6")
			},
			want: []string{removeW1},
		},
		{
			name: "dead node already gone: the unit is still concluded",
			edit: func(s *Snapshot) {
				replacingW1(s, "i-w6")
				addInstance(s, "i-w6", workers, time.Minute, true, "w6")
				addNode(s, "w6", workers, policy.RoleWorker, "i-w6")
				s.Nodes = slices.DeleteFunc(s.Nodes, func(n Node) bool { return n.ID == "w1" })
			},
			want: []string{removeW1},
		},
		{
			name:    "replacement not recorded yet",
			edit:    func(s *Snapshot) { replacingW1(s, "") },
			reasons: map[string]ReasonCode{workers: ReasonInFlight},
			check:   messageContains(workers, "waiting for the journal to record the instance replacing node w1"),
		},
		{
			name:    "replacement not observed yet",
			edit:    func(s *Snapshot) { replacingW1(s, "i-w6") },
			reasons: map[string]ReasonCode{workers: ReasonInFlight},
			check:   messageContains(workers, "waiting for replacement instance i-w6 of node w1 to appear"),
		},
		{
			name: "replacement joining",
			edit: func(s *Snapshot) {
				replacingW1(s, "i-w6")
				addInstance(s, "i-w6", workers, 4*time.Minute, true, "")
			},
			reasons: map[string]ReasonCode{workers: ReasonInFlight},
			check:   messageContains(workers, "replacement instance i-w6 for node w1 is joining (4m0s of join_timeout 5m0s)"),
		},
		{
			name: "replacement joined, not ready yet",
			edit: func(s *Snapshot) {
				replacingW1(s, "i-w6")
				addInstance(s, "i-w6", workers, time.Minute, true, "w6")
				n := addNode(s, "w6", workers, policy.RoleWorker, "i-w6")
				n.State, n.StateSince = NodeUnknown, t0.Add(-5*time.Second)
			},
			reasons: map[string]ReasonCode{workers: ReasonInFlight},
		},
		{
			name: "replacement never joined: terminate it as a join failure",
			edit: func(s *Snapshot) {
				replacingW1(s, "i-w6")
				addInstance(s, "i-w6", workers, 5*time.Minute, true, "")
			},
			want: []string{"terminate_instance/c/workers/instance:i-w6"},
			check: func(t *testing.T, p Plan) {
				a := p.Actions[0]
				if a.Outcome != OutcomeJoinFailed || a.Completes != "replace_node/c/workers/node:w1" || a.NodeID != "" {
					t.Errorf("action = %+v", a)
				}
			},
		},
		{
			name: "replacement vanished before joining",
			edit: func(s *Snapshot) {
				replacingW1(s, "i-w6")
				addInstance(s, "i-w6", workers, time.Minute, false, "")
			},
			want: []string{"terminate_instance/c/workers/instance:i-w6"},
			check: func(t *testing.T, p Plan) {
				if a := p.Actions[0]; a.Outcome != OutcomeJoinFailed {
					t.Errorf("action = %+v, want a join failure", a)
				}
			},
		},
		{
			name: "replacement joined and failed: remove it, not the dead node",
			edit: func(s *Snapshot) {
				replacingW1(s, "i-w6")
				addInstance(s, "i-w6", workers, 10*time.Minute, true, "w6")
				addNode(s, "w6", workers, policy.RoleWorker, "i-w6")
				fail(s, "w6", NodeDown, time.Minute)
			},
			want: []string{"remove_node/c/workers/node:w6"},
			check: func(t *testing.T, p Plan) {
				if a := p.Actions[0]; a.Outcome != OutcomeReplacementFailed || a.Completes != "replace_node/c/workers/node:w1" {
					t.Errorf("action = %+v", a)
				}
			},
		},
		{
			name: "a unit being concluded is left alone",
			edit: func(s *Snapshot) {
				k := replacingW1(s, "i-w6")
				addInstance(s, "i-w6", workers, time.Minute, true, "w6")
				addNode(s, "w6", workers, policy.RoleWorker, "i-w6")
				inFlight(s, RemoveNode, workers, "w1", "i-w1", "", k)
			},
			reasons: map[string]ReasonCode{workers: ReasonInFlight},
			check:   messageContains(workers, "the replacement of node w1 is being concluded"),
		},
		{
			name: "an action in flight is never repeated",
			edit: func(s *Snapshot) {
				fail(s, "w1", NodeDown, time.Hour)
				inFlight(s, RemoveNode, workers, "w1", "i-w1", "", "")
			},
			reasons: map[string]ReasonCode{workers: ReasonHealthy},
		},
		{
			name: "a unit journaled twice is concluded once",
			edit: func(s *Snapshot) {
				replacingW1(s, "i-w6")
				inFlight(s, ReplaceNode, workers, "w1", "i-w1", "i-w7", "")
				addInstance(s, "i-w6", workers, time.Minute, true, "w6")
				addNode(s, "w6", workers, policy.RoleWorker, "i-w6")
				addInstance(s, "i-w7", workers, time.Hour, true, "")
			},
			want: []string{removeW1},
		},
		{
			name: "the dead node recovered: the unit still concludes, draining it",
			edit: func(s *Snapshot) {
				inFlight(s, ReplaceNode, workers, "w1", "i-w1", "i-w6", "")
				addInstance(s, "i-w6", workers, time.Minute, true, "w6")
				addNode(s, "w6", workers, policy.RoleWorker, "i-w6")
				findNode(s, "w1").RunningTasks = 1
			},
			want: []string{removeW1},
			check: func(t *testing.T, p Plan) {
				if !p.Actions[0].Drain {
					t.Errorf("action = %+v, want Drain", p.Actions[0])
				}
			},
		},
	})
}

func TestHealStuckInstances(t *testing.T) {
	const replaceX = "replace_node/c/workers/instance:i-x"
	runHealCases(t, []healCase{
		{
			name:    "an instance joining within join_timeout is fine",
			edit:    func(s *Snapshot) { addInstance(s, "i-x", workers, 4*time.Minute, true, "") },
			reasons: map[string]ReasonCode{workers: ReasonHealthy},
		},
		{
			name: "an instance that has not joined within join_timeout is replaced",
			edit: func(s *Snapshot) { addInstance(s, "i-x", workers, 5*time.Minute, true, "") },
			want: []string{replaceX},
			check: func(t *testing.T, p Plan) {
				a := p.Actions[0]
				if a.NodeID != "" || a.InstanceID != "i-x" ||
					a.Reason != "instance i-x has not joined the swarm 5m0s after it was created (join_timeout 5m0s): start a replacement, then terminate it once the replacement is ready" {
					t.Errorf("action = %+v", a)
				}
			},
		},
		{
			name: "a stopped instance is not replaced",
			edit: func(s *Snapshot) { addInstance(s, "i-x", workers, time.Hour, false, "") },
		},
		{
			name: "an instance of unknown age is not judged",
			edit: func(s *Snapshot) { addInstance(s, "i-x", workers, 0, true, "").CreatedAt = time.Time{} },
		},
		{
			name: "an instance whose node lists it has joined",
			edit: func(s *Snapshot) { findInstance(s, "i-w1").NodeID = "" },
		},
		{
			name: "stuck instances wait for backoff",
			edit: func(s *Snapshot) {
				addInstance(s, "i-x", workers, time.Hour, true, "")
				s.Backoff = map[string]Backoff{workers: {Failures: 4, LastFailure: t0.Add(-time.Minute)}}
			},
			reasons: map[string]ReasonCode{workers: ReasonBackoff},
		},
		{
			name: "failed nodes go before stuck instances within the budget",
			edit: func(s *Snapshot) {
				addInstance(s, "i-x", workers, time.Hour, true, "")
				fail(s, "w1", NodeDown, time.Minute)
			},
			want: []string{replaceW1},
		},
		{
			name: "replacement ready: terminate the stuck instance",
			edit: func(s *Snapshot) {
				addInstance(s, "i-x", workers, time.Hour, true, "")
				inFlight(s, ReplaceNode, workers, "", "i-x", "i-w6", "")
				addInstance(s, "i-w6", workers, time.Minute, true, "w6")
				addNode(s, "w6", workers, policy.RoleWorker, "i-w6")
			},
			want: []string{"terminate_instance/c/workers/instance:i-x"},
			check: func(t *testing.T, p Plan) {
				if a := p.Actions[0]; a.Completes != replaceX || a.Outcome != OutcomeReplaced {
					t.Errorf("action = %+v", a)
				}
			},
		},
		{
			name: "replacement ready, the stuck instance joined late: remove its node",
			edit: func(s *Snapshot) {
				addInstance(s, "i-x", workers, time.Hour, true, "x")
				addNode(s, "x", workers, policy.RoleWorker, "i-x")
				inFlight(s, ReplaceNode, workers, "", "i-x", "i-w6", "")
				addInstance(s, "i-w6", workers, time.Minute, true, "w6")
				addNode(s, "w6", workers, policy.RoleWorker, "i-w6")
			},
			want: []string{"remove_node/c/workers/node:x"},
		},
		{
			name: "the replacement of a replacement is not a stuck instance of its own",
			edit: func(s *Snapshot) {
				addInstance(s, "i-x", workers, time.Hour, true, "")
				inFlight(s, ReplaceNode, workers, "", "i-x", "i-y", "")
				addInstance(s, "i-y", workers, 6*time.Minute, true, "")
			},
			want: []string{"terminate_instance/c/workers/instance:i-y"},
		},
	})
}

func TestHealSize(t *testing.T) {
	runHealCases(t, []healCase{
		{
			name: "a replacement is allowed at max size",
			edit: func(s *Snapshot) {
				p := findPool(s, workers)
				p.MaxSize, p.DesiredSize = 5, 5
				fail(s, "w1", NodeDown, time.Minute)
			},
			want: []string{replaceW1},
		},
		{
			name: "instance gone and the pool below its desired size: replace",
			edit: func(s *Snapshot) {
				fail(s, "w1", NodeDown, time.Minute)
				findInstance(s, "i-w1").Running = false
			},
			want: []string{replaceW1},
		},
		{
			name: "instance unknown to the platform: replace",
			edit: func(s *Snapshot) {
				fail(s, "w1", NodeDown, time.Minute)
				s.Instances = slices.DeleteFunc(s.Instances, func(in Instance) bool { return in.ID == "i-w1" })
			},
			want: []string{replaceW1},
		},
		{
			name: "instance gone, the platform replaced it already: only remove the node",
			edit: func(s *Snapshot) {
				fail(s, "w1", NodeDown, time.Minute)
				findInstance(s, "i-w1").Running = false
				addInstance(s, "i-w6", workers, time.Minute, true, "w6")
				addNode(s, "w6", workers, policy.RoleWorker, "i-w6")
			},
			want: []string{removeW1},
			check: func(t *testing.T, p Plan) {
				if a := p.Actions[0]; a.Completes != "" ||
					a.Reason != "node w1 has been down for 1m0s and its instance is gone, while the pool already has its desired 5 instances: remove the node" {
					t.Errorf("action = %+v", a)
				}
			},
		},
		{
			name: "cleanup removals do not wait for backoff or budget",
			edit: func(s *Snapshot) {
				fail(s, "w1", NodeDown, time.Minute)
				findInstance(s, "i-w1").Running = false
				findPool(s, workers).DesiredSize = 4
				s.Backoff = map[string]Backoff{workers: {Failures: 4, LastFailure: t0}}
			},
			want: []string{removeW1},
		},
		{
			name: "lost capacity is restored only up to the desired size",
			w:    10,
			edit: func(s *Snapshot) {
				setRules(s, workers, func(r *policy.HealingRules) { r.MaxConcurrentReplacements = 2 })
				findPool(s, workers).DesiredSize = 9
				fail(s, "w1", NodeDown, 2*time.Minute)
				fail(s, "w2", NodeDown, time.Minute)
				findInstance(s, "i-w1").Running = false
				findInstance(s, "i-w2").Running = false
			},
			want: []string{replaceW1, "remove_node/c/workers/node:w2"},
		},
		{
			name: "desired size above max counts as max",
			edit: func(s *Snapshot) {
				p := findPool(s, workers)
				p.MaxSize, p.DesiredSize = 4, 9
				fail(s, "w1", NodeDown, time.Minute)
				findInstance(s, "i-w1").Running = false
			},
			want: []string{removeW1},
		},
	})
}

func TestHealManagers(t *testing.T) {
	const removeM2 = "remove_node/c/managers/node:m2"
	quorum := func(s *Snapshot, total, reachable int, leader bool) {
		s.Quorum = Quorum{Managers: total, Reachable: reachable, LeaderPresent: leader}
	}
	// m2 is down and a replacement manager m4 (on i-m4) is in flight for it.
	replacingM2 := func(s *Snapshot) string {
		fail(s, "m2", NodeDown, time.Hour)
		addInstance(s, "i-m4", managers, time.Minute, true, "m4")
		addNode(s, "m4", managers, policy.RoleManager, "i-m4")
		quorum(s, 4, 3, true)
		return inFlight(s, ReplaceNode, managers, "m2", "i-m2", "i-m4", "")
	}
	runHealCases(t, []healCase{
		{
			name: "a failed manager is healed while quorum holds: it leaves first",
			edit: func(s *Snapshot) {
				fail(s, "m2", NodeDown, time.Minute)
				quorum(s, 3, 2, true)
			},
			want:    []string{removeM2},
			reasons: map[string]ReasonCode{managers: ReasonHealing, workers: ReasonHealthy},
			check: func(t *testing.T, p Plan) {
				if a := p.Actions[0]; a.Role != policy.RoleManager || !a.Refill || !a.Demote {
					t.Errorf("action = %+v", a)
				}
			},
		},
		{
			name: "quorum lost: no manager action at all",
			w:    20,
			edit: func(s *Snapshot) {
				fail(s, "m2", NodeDown, time.Hour)
				fail(s, "m3", NodeDown, time.Hour)
				quorum(s, 3, 1, true)
			},
			reasons: map[string]ReasonCode{managers: ReasonQuorum, workers: ReasonHealthy},
			check:   messageContains(managers, "1 of 3 managers are reachable, a quorum needs 2"),
		},
		{
			name: "quorum lost: not even concluding a unit",
			edit: func(s *Snapshot) {
				replacingM2(s)
				quorum(s, 4, 2, true)
			},
			reasons: map[string]ReasonCode{managers: ReasonQuorum},
		},
		{
			name: "no leader: no manager action",
			edit: func(s *Snapshot) {
				fail(s, "m2", NodeDown, time.Hour)
				quorum(s, 3, 2, false)
			},
			reasons: map[string]ReasonCode{managers: ReasonQuorum},
			check:   messageContains(managers, "no leader"),
		},
		{
			name: "workers heal while the managers have no quorum",
			w:    20,
			edit: func(s *Snapshot) {
				quorum(s, 3, 1, true)
				fail(s, "w1", NodeDown, time.Hour)
			},
			want:    []string{replaceW1},
			reasons: map[string]ReasonCode{managers: ReasonQuorum},
		},
		{
			name: "two failed managers: one change per plan",
			m:    5,
			edit: func(s *Snapshot) {
				setRules(s, managers, func(r *policy.HealingRules) {
					r.MaxUnhealthyPercent = 50
					r.MaxConcurrentReplacements = 3
				})
				setRules(s, workers, func(r *policy.HealingRules) { r.MaxUnhealthyPercent = 50 })
				fail(s, "m3", NodeDown, time.Minute)
				fail(s, "m2", NodeDown, 2*time.Minute)
				quorum(s, 5, 3, true)
			},
			want:    []string{removeM2},
			reasons: map[string]ReasonCode{managers: ReasonHealing},
			check:   messageContains(managers, "holding: this plan already holds a manager change: one at a time"),
		},
		{
			name: "a manager replacement in flight blocks another",
			m:    5,
			edit: func(s *Snapshot) {
				setRules(s, managers, func(r *policy.HealingRules) {
					r.MaxUnhealthyPercent = 50
					r.MaxConcurrentReplacements = 3
				})
				setRules(s, workers, func(r *policy.HealingRules) { r.MaxUnhealthyPercent = 50 })
				fail(s, "m2", NodeDown, time.Hour)
				fail(s, "m3", NodeDown, time.Hour)
				addInstance(s, "i-m6", managers, time.Minute, true, "")
				quorum(s, 5, 3, true)
				inFlight(s, ReplaceNode, managers, "m2", "i-m2", "i-m6", "")
			},
			reasons: map[string]ReasonCode{managers: ReasonInFlight},
			check:   messageContains(managers, "is joining (1m0s of join_timeout 5m0s) (and 1 more like it)"),
		},
		{
			name: "replacement manager ready and reachable: demote and remove",
			edit: func(s *Snapshot) { replacingM2(s) },
			want: []string{removeM2},
			check: func(t *testing.T, p Plan) {
				a := p.Actions[0]
				if !a.Demote || a.Completes != "replace_node/c/managers/node:m2" || a.Outcome != OutcomeReplaced ||
					a.Reason != "replacement node m4 is ready: demote and remove node m2" {
					t.Errorf("action = %+v", a)
				}
			},
		},
		{
			name: "replacement manager ready but not reachable: wait",
			edit: func(s *Snapshot) {
				replacingM2(s)
				findNode(s, "m4").ManagerReachability = ""
			},
			reasons: map[string]ReasonCode{managers: ReasonInFlight},
			check:   messageContains(managers, "replacement node m4 for node m2 is ready but not a reachable manager, not ready yet"),
		},
		{
			name: "replacement joined as a worker: wait",
			edit: func(s *Snapshot) {
				replacingM2(s)
				findNode(s, "m4").Role = policy.RoleWorker
			},
			reasons: map[string]ReasonCode{managers: ReasonInFlight},
		},
		{
			name: "a manager removal in flight blocks every manager action",
			edit: func(s *Snapshot) {
				k := replacingM2(s)
				inFlight(s, RemoveNode, managers, "m2", "i-m2", "", k)
				addInstance(s, "i-x", managers, time.Hour, true, "")
			},
			reasons: map[string]ReasonCode{managers: ReasonInFlight},
		},
		{
			name: "a manager action in flight does not block workers",
			w:    20,
			edit: func(s *Snapshot) {
				replacingM2(s)
				fail(s, "w1", NodeDown, time.Minute)
			},
			want: []string{removeM2, replaceW1},
		},
		{
			name: "two manager pools: still one manager change",
			edit: func(s *Snapshot) {
				addPool(s, "c/managers2", policy.RoleManager, 1, 3, 3)
				addNodes(s, "c/managers2", "n", 3)
				setRules(s, managers, func(r *policy.HealingRules) { r.MaxUnhealthyPercent = 50 })
				setRules(s, "c/managers2", func(r *policy.HealingRules) { r.MaxUnhealthyPercent = 50 })
				setRules(s, workers, func(r *policy.HealingRules) { r.MaxUnhealthyPercent = 50 })
				fail(s, "m2", NodeDown, time.Minute)
				fail(s, "n2", NodeDown, time.Minute)
				quorum(s, 6, 4, true)
			},
			want:    []string{removeM2},
			reasons: map[string]ReasonCode{managers: ReasonHealing, "c/managers2": ReasonBudget},
		},
		{
			name: "a manager that never joined is replaced like any stuck instance",
			edit: func(s *Snapshot) { addInstance(s, "i-x", managers, time.Hour, true, "") },
			want: []string{"replace_node/c/managers/instance:i-x"},
		},
		{
			name: "the leader is never replaced, whatever its state says",
			edit: func(s *Snapshot) {
				fail(s, "m1", NodeDown, time.Hour)
				findNode(s, "m1").ManagerReachability = Reachable
				quorum(s, 3, 3, true)
			},
			reasons: map[string]ReasonCode{managers: ReasonInFlight},
			check:   messageContains(managers, "node m1 leads the Raft group"),
		},
		{
			name: "unreachable managers count toward the breaker",
			edit: func(s *Snapshot) {
				findNode(s, "m2").ManagerReachability = Unreachable
				findNode(s, "m3").ManagerReachability = Unreachable
				quorum(s, 3, 1, true)
				fail(s, "w1", NodeDown, time.Minute)
			},
			reasons: map[string]ReasonCode{workers: ReasonCircuitBreaker, managers: ReasonQuorum},
		},
	})
}

func TestHealReasonForEveryPool(t *testing.T) {
	s := cluster(3, 5)
	for i := range 20 {
		id := "c/p" + string(rune('a'+i))
		addPool(&s, id, policy.RoleWorker, 0, 5, 0)
	}
	p := Heal(s)
	if len(p.Reasons) != len(s.Pools) {
		t.Fatalf("%d reasons for %d pools", len(p.Reasons), len(s.Pools))
	}
	for i, r := range p.Reasons {
		if r.PoolID != s.Pools[i].ID || r.Code != ReasonHealthy || r.Message != "no failed node among 0 nodes" && i >= 2 {
			t.Errorf("reason %d = %+v", i, r)
		}
	}
	checkInvariants(t, s, p)
}

func TestHealDoesNotModifyTheSnapshot(t *testing.T) {
	s := cluster(3, 5)
	fail(&s, "w1", NodeDown, time.Hour)
	fail(&s, "m2", NodeDown, time.Hour)
	s.Quorum.Reachable = 2
	before := cluster(3, 5)
	fail(&before, "w1", NodeDown, time.Hour)
	fail(&before, "m2", NodeDown, time.Hour)
	before.Quorum.Reachable = 2
	_ = Heal(s)
	if !slices.Equal(s.Nodes, before.Nodes) || !slices.Equal(s.Instances, before.Instances) || !slices.Equal(s.Pools, before.Pools) {
		t.Fatal("Heal modified its snapshot")
	}
}

// TestHealManagerOrder: which of a failed manager and its replacement
// changes the Raft group first (managerOrder), for groups of 1 to 7 with
// one or more dead members.
func TestHealManagerOrder(t *testing.T) {
	const (
		removeM2  = "remove_node/c/managers/node:m2"
		replaceM2 = "replace_node/c/managers/node:m2"
	)
	// down fails managers for a minute and sets the Raft view from the
	// nodes; the breaker is not under test here.
	down := func(s *Snapshot, ids ...string) {
		setRules(s, managers, func(r *policy.HealingRules) { r.MaxUnhealthyPercent = 100 })
		setRules(s, workers, func(r *policy.HealingRules) { r.MaxUnhealthyPercent = 100 })
		for i, id := range ids {
			fail(s, id, NodeDown, time.Duration(len(ids)-i)*time.Minute) // the first is the oldest failure
			findInstance(s, "i-"+id).Running = false
		}
		syncQuorum(s)
	}
	leaves := func(subject string, local bool) func(t *testing.T, p Plan) {
		return func(t *testing.T, p Plan) {
			t.Helper()
			a := p.Actions[0]
			want := Action{Kind: RemoveNode, Key: "remove_node/c/managers/node:" + subject, PoolID: managers, Role: policy.RoleManager,
				NodeID: subject, Demote: true, Refill: true, Reason: a.Reason}
			if !local {
				want.InstanceID = "i-" + subject
			}
			if a != want {
				t.Errorf("action = %+v\nwant     %+v", a, want)
			}
		}
	}
	runHealCases(t, []healCase{
		{
			name:    "3 members, 1 dead: joining first needs 3 of 4, so it leaves first",
			edit:    func(s *Snapshot) { down(s, "m2") },
			want:    []string{removeM2},
			reasons: map[string]ReasonCode{managers: ReasonHealing},
			check: func(t *testing.T, p Plan) {
				leaves("m2", true)(t, p)
				if want := "node m2 has been down for 1m0s and the leader does not reach it: demote and remove it before its replacement joins, then refill the pool (3 members, 2 reachable: the 2 left after it need 2, while 4 with a joining replacement would need 3)"; p.Actions[0].Reason != want {
					t.Errorf("reason = %q\nwant     %q", p.Actions[0].Reason, want)
				}
			},
		},
		{
			name: "3 members, 1 dead, on a group: the removal terminates the instance, and the group refills",
			edit: func(s *Snapshot) {
				s.InstancesAuthoritative = true
				down(s, "m2")
			},
			want:  []string{removeM2},
			check: leaves("m2", false),
		},
		{
			name:  "5 members, 1 dead: join first would be safe with no margin, leaving first keeps one",
			m:     5,
			edit:  func(s *Snapshot) { down(s, "m2") },
			want:  []string{removeM2},
			check: leaves("m2", true),
		},
		{
			name: "5 members, 2 dead: the older failure leaves first, one change at a time",
			m:    5,
			edit: func(s *Snapshot) { down(s, "m2", "m3") },
			want: []string{removeM2},
			check: func(t *testing.T, p Plan) {
				leaves("m2", true)(t, p)
				messageContains(managers, "(5 members, 3 reachable: the 4 left after it need 3, while 6 with a joining replacement would need 4); holding: this plan already holds a manager change: one at a time")(t, p)
			},
		},
		{
			name:  "7 members, 3 dead: 4 of 7 still leave 4 of 6",
			m:     7,
			edit:  func(s *Snapshot) { down(s, "m2", "m3", "m4") },
			want:  []string{removeM2},
			check: leaves("m2", true),
		},
		{
			name:    "3 members, 2 dead: quorum is lost, nothing at all",
			edit:    func(s *Snapshot) { down(s, "m2", "m3") },
			reasons: map[string]ReasonCode{managers: ReasonQuorum},
			check:   messageContains(managers, "1 of 3 managers are reachable, a quorum needs 2: no manager changes until it is back"),
		},
		{
			name:    "5 members, 3 dead: quorum is lost",
			m:       5,
			edit:    func(s *Snapshot) { down(s, "m2", "m3", "m4") },
			reasons: map[string]ReasonCode{managers: ReasonQuorum},
		},
		{
			name:    "1 member: it leads, and is never touched",
			m:       1,
			edit:    func(s *Snapshot) { down(s, "m1"); s.Quorum = Quorum{Managers: 1, Reachable: 1, LeaderPresent: true} },
			reasons: map[string]ReasonCode{managers: ReasonInFlight},
			check:   messageContains(managers, "node m1 leads the Raft group: it is never replaced or removed"),
		},
		{
			name:    "1 member: a second manager never joins it (2 members need 2)",
			m:       1,
			edit:    func(s *Snapshot) { addInstance(s, "i-x", managers, time.Hour, true, "") },
			reasons: map[string]ReasonCode{managers: ReasonQuorum},
			check: messageContains(managers,
				"would violate quorum: 1 members, 1 reachable; a manager joining makes 2 members, which need 2 reachable should it never catch up"),
		},
		{
			name: "a member that is unreachable but maybe alive (its instance runs) leaves first too, its instance kept",
			edit: func(s *Snapshot) {
				down(s, "m2")
				findInstance(s, "i-m2").Running = true
			},
			want:  []string{removeM2},
			check: leaves("m2", true),
		},
		{
			name: "a failed manager the leader still reaches keeps its vote: its replacement joins first",
			edit: func(s *Snapshot) {
				down(s, "m2")
				findNode(s, "m2").ManagerReachability = Reachable
				syncQuorum(s)
			},
			want: []string{replaceM2},
		},
		{
			name: "a failed manager the leader still reaches, with another unreachable: neither order keeps quorum",
			edit: func(s *Snapshot) {
				down(s, "m2")
				findNode(s, "m2").ManagerReachability = Reachable
				findNode(s, "m3").ManagerReachability = Unreachable
				syncQuorum(s)
			},
			reasons: map[string]ReasonCode{managers: ReasonQuorum},
			check: messageContains(managers,
				"would violate quorum: 3 members, 2 reachable; replacing node m2, which the leader reaches, needs 3 reachable, whether its replacement joins first (4 members) or it leaves first (1 reachable of 2 members after)"),
		},
		{
			name: "a stale leader flag on an unreachable manager: still never removed",
			edit: func(s *Snapshot) {
				down(s, "m2")
				findNode(s, "m1").Leader = false
				findNode(s, "m2").Leader = true
				s.Quorum.LeaderPresent = true
			},
			reasons: map[string]ReasonCode{managers: ReasonInFlight},
			check:   messageContains(managers, "node m2 leads the Raft group"),
		},
		{
			name: "a failed node of the manager pool that is no Raft member leaves first: it costs nothing",
			edit: func(s *Snapshot) {
				down(s, "m2")
				n := findNode(s, "m2")
				n.Role, n.ManagerReachability = policy.RoleWorker, ""
				syncQuorum(s) // 2 of 2
			},
			want:  []string{removeM2},
			check: leaves("m2", true),
		},
		{
			name: "a dead manager whose place is refilled already is only removed",
			edit: func(s *Snapshot) {
				s.InstancesAuthoritative = true
				down(s, "m2")
				addInstance(s, "i-m4", managers, time.Minute, true, "m4")
				addNode(s, "m4", managers, policy.RoleManager, "i-m4")
				syncQuorum(s) // 3 of 4
			},
			want: []string{removeM2},
			check: func(t *testing.T, p Plan) {
				if a := p.Actions[0]; a.Refill || !a.Demote || a.InstanceID != "i-m2" {
					t.Errorf("action = %+v, want a plain demote and remove", a)
				}
			},
		},
		{
			name: "a removal in flight: nothing else (one manager change at a time)",
			m:    5,
			edit: func(s *Snapshot) {
				down(s, "m2", "m3")
				inFlight(s, RemoveNode, managers, "m2", "", "", "")
			},
			reasons: map[string]ReasonCode{managers: ReasonInFlight},
			check:   messageContains(managers, "a manager change is in flight: one at a time"),
		},
		{
			name: "a manager replacement in flight: no manager leaves meanwhile",
			m:    5,
			edit: func(s *Snapshot) {
				down(s, "m3")
				leaveFirst(s, "m2")
				addInstance(s, "i-m6", managers, time.Minute, true, "")
				inFlight(s, ReplaceNode, managers, "", "i-m2", "i-m6", "")
			},
			reasons: map[string]ReasonCode{managers: ReasonInFlight},
			// The second hold of its kind is m3's.
			check: messageContains(managers, "replacement instance i-m6 for instance i-m2 is joining (1m0s of join_timeout 5m0s) (and 1 more like it)"),
		},
	})
}

// TestHealManagerRefill: after a manager left first, its pool is refilled
// through the instance it left behind, one manager change at a time and
// only while a joining manager leaves quorum intact; on a group, the group
// refills it.
func TestHealManagerRefill(t *testing.T) {
	const refillM2 = "replace_node/c/managers/instance:i-m2"
	runHealCases(t, []healCase{
		{
			name:    "3 members, 1 left first: 2 of 3 with a joining manager is a quorum: refill",
			edit:    func(s *Snapshot) { leaveFirst(s, "m2") },
			want:    []string{refillM2},
			reasons: map[string]ReasonCode{managers: ReasonHealing},
			check: func(t *testing.T, p Plan) {
				a := p.Actions[0]
				want := Action{Kind: ReplaceNode, Key: refillM2, PoolID: managers, Role: policy.RoleManager, InstanceID: "i-m2",
					Reason: "the pool has 2 of its desired 3 instances and instance i-m2 no longer runs nor has a node (its manager left first): start a replacement, then terminate the instance once the replacement is ready"}
				if a != want {
					t.Errorf("action = %+v\nwant     %+v", a, want)
				}
			},
		},
		{
			name: "on a group the group refills: nothing for Heal",
			edit: func(s *Snapshot) {
				s.InstancesAuthoritative = true
				leaveFirst(s, "m2")
			},
			reasons: map[string]ReasonCode{managers: ReasonHealthy},
		},
		{
			name: "5 members, 2 left first: one refill at a time",
			m:    5,
			edit: func(s *Snapshot) {
				setRules(s, managers, func(r *policy.HealingRules) { r.MaxConcurrentReplacements = 2 })
				leaveFirst(s, "m2")
				leaveFirst(s, "m3")
			},
			want:  []string{refillM2},
			check: messageContains(managers, "holding: this plan already holds a manager change: one at a time"),
		},
		{
			name: "a failed manager goes before a refill",
			m:    5,
			edit: func(s *Snapshot) {
				setRules(s, managers, func(r *policy.HealingRules) { r.MaxUnhealthyPercent = 100 })
				leaveFirst(s, "m2")
				fail(s, "m3", NodeDown, time.Minute)
				syncQuorum(s)
			},
			want: []string{"remove_node/c/managers/node:m3"},
		},
		{
			name: "no refill while a joining manager would break quorum: 2 of 3 reachable would be 2 of 4",
			m:    5,
			edit: func(s *Snapshot) {
				leaveFirst(s, "m2")
				leaveFirst(s, "m3")
				findNode(s, "m4").ManagerReachability = Unreachable // ready, yet Raft does not reach it
				syncQuorum(s)
			},
			reasons: map[string]ReasonCode{managers: ReasonQuorum},
			check: messageContains(managers,
				"would violate quorum: 3 members, 2 reachable; a manager joining makes 4 members, which need 3 reachable should it never catch up (and 1 more like it)"),
		},
		{
			name: "a refill waits for backoff",
			edit: func(s *Snapshot) {
				leaveFirst(s, "m2")
				s.Backoff = map[string]Backoff{managers: {Failures: 1, LastFailure: t0}}
			},
			reasons: map[string]ReasonCode{managers: ReasonBackoff},
		},
		{
			name: "a refill waits while a manager change is in flight",
			edit: func(s *Snapshot) {
				leaveFirst(s, "m2")
				inFlight(s, RemoveNode, managers, "m3", "", "", "")
			},
			reasons: map[string]ReasonCode{managers: ReasonInFlight},
			check:   messageContains(managers, "a manager change is in flight: one at a time"),
		},
		{
			name: "an instance record younger than unhealthy_after is not a place to refill: it may be starting",
			edit: func(s *Snapshot) {
				leaveFirst(s, "m2")
				findInstance(s, "i-m2").CreatedAt = t0.Add(-29 * time.Second)
			},
			reasons: map[string]ReasonCode{managers: ReasonHealthy},
		},
		{
			name: "a manager that died young is refilled once its record is unhealthy_after old",
			edit: func(s *Snapshot) {
				leaveFirst(s, "m2")
				findInstance(s, "i-m2").CreatedAt = t0.Add(-30 * time.Second)
			},
			want: []string{refillM2},
		},
		{
			name: "a dead record while the pool is whole is left alone",
			edit: func(s *Snapshot) {
				addInstance(s, "i-old", managers, time.Hour, false, "")
			},
			reasons: map[string]ReasonCode{managers: ReasonHealthy},
		},
		{
			name: "worker pools are not refilled from dead records",
			edit: func(s *Snapshot) {
				findPool(s, workers).DesiredSize = 6
				addInstance(s, "i-old", workers, time.Hour, false, "")
			},
			reasons: map[string]ReasonCode{workers: ReasonHealthy},
		},
		{
			name: "the refill is joining: wait",
			edit: func(s *Snapshot) {
				leaveFirst(s, "m2")
				addInstance(s, "i-m4", managers, time.Minute, true, "m4")
				n := addNode(s, "m4", managers, policy.RoleManager, "i-m4")
				n.ManagerReachability = Unreachable // catching up
				syncQuorum(s)
				inFlight(s, ReplaceNode, managers, "", "i-m2", "i-m4", "")
			},
			reasons: map[string]ReasonCode{managers: ReasonInFlight},
			check:   messageContains(managers, "replacement node m4 for instance i-m2 is ready but not a reachable manager, not ready yet"),
		},
		{
			name: "the refill is a reachable manager: terminate the instance left behind",
			edit: func(s *Snapshot) {
				leaveFirst(s, "m2")
				addInstance(s, "i-m4", managers, time.Minute, true, "m4")
				addNode(s, "m4", managers, policy.RoleManager, "i-m4")
				syncQuorum(s)
				inFlight(s, ReplaceNode, managers, "", "i-m2", "i-m4", "")
			},
			want: []string{"terminate_instance/c/managers/instance:i-m2"},
			check: func(t *testing.T, p Plan) {
				a := p.Actions[0]
				if a.Completes != refillM2 || a.Outcome != OutcomeReplaced || a.Refill ||
					a.Reason != "replacement node m4 is ready: terminate instance i-m2, which no longer runs" {
					t.Errorf("action = %+v", a)
				}
			},
		},
		{
			name: "the refill never joined: it goes, the place is refilled again after backoff",
			edit: func(s *Snapshot) {
				leaveFirst(s, "m2")
				addInstance(s, "i-m4", managers, 5*time.Minute, true, "")
				inFlight(s, ReplaceNode, managers, "", "i-m2", "i-m4", "")
			},
			want: []string{"terminate_instance/c/managers/instance:i-m4"},
			check: func(t *testing.T, p Plan) {
				if a := p.Actions[0]; a.Outcome != OutcomeJoinFailed {
					t.Errorf("action = %+v", a)
				}
			},
		},
		{
			name: "the refill joined and died: demote and remove it (2 of 3 leave 2 of 2)",
			edit: func(s *Snapshot) {
				leaveFirst(s, "m2")
				addInstance(s, "i-m4", managers, 10*time.Minute, true, "m4")
				addNode(s, "m4", managers, policy.RoleManager, "i-m4")
				fail(s, "m4", NodeDown, time.Minute)
				syncQuorum(s)
				inFlight(s, ReplaceNode, managers, "", "i-m2", "i-m4", "")
			},
			want: []string{"remove_node/c/managers/node:m4"},
			check: func(t *testing.T, p Plan) {
				if a := p.Actions[0]; a.Outcome != OutcomeReplacementFailed || !a.Demote || a.Refill {
					t.Errorf("action = %+v", a)
				}
			},
		},
		{
			name: "a manager that left first while its hung instance still runs: that instance is replaced once join_timeout passed",
			edit: func(s *Snapshot) {
				leaveFirst(s, "m2")
				findInstance(s, "i-m2").Running = true
			},
			want:  []string{refillM2},
			check: messageContains(managers, "instance i-m2 has not joined the swarm 1h0m0s after it was created"),
		},
	})
}
