package agent

import (
	"slices"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/decide"
)

// conditionsOf reads from a status what to tell people: the leader's pool
// conditions, quorum lost, a missing leader's agent, and a check untrusted
// only once it has been for untrustedAfter.
func TestConditionsOf(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	healthy := Status{Leader: true, Quorum: QuorumStatus{Managers: 3, Reachable: 3, Leader: true, Held: true}, LeaderAgent: LeaderAgentStatus{Up: true}}
	with := func(edit func(*Status)) Status {
		s := healthy
		s.Pools = nil
		edit(&s)
		return s
	}
	scaling := func(code decide.ScaleCode, dir decide.ScaleDirection, checks ...decide.CheckResult) *ScaleStatus {
		return &ScaleStatus{From: 3, To: 3, Direction: string(dir), Code: string(code), Message: "the decision's reasoning", Checks: checks}
	}
	stale := decide.CheckResult{Name: "cpu", Kind: "prometheus", Trusted: false, Reason: "sample 10m old"}
	cases := []struct {
		name            string
		s               Status
		cluster, pools  []string // condition keys
		prevUntrustedAt time.Time
	}{
		{name: "healthy", s: healthy},
		{name: "quorum lost", s: with(func(s *Status) { s.Leader, s.Quorum = false, QuorumStatus{} }), cluster: []string{"quorum_lost"}},
		{name: "leader agent down, just now", s: with(func(s *Status) { s.Leader, s.LeaderAgent = false, LeaderAgentStatus{Error: "refused"} })},
		{name: "pool at max", s: with(func(s *Status) {
			s.Pools = []PoolStatus{{ID: "c/web", Scaling: scaling(decide.CodeMaxSize, decide.ScaleHold)}}
		}), pools: []string{"pool_at_max/c/web"}},
		{name: "forced back under max is no condition", s: with(func(s *Status) {
			s.Pools = []PoolStatus{{ID: "c/web", Scaling: scaling(decide.CodeMaxSize, decide.ScaleDown)}}
		})},
		{name: "breaker, healing backoff, stuck", s: with(func(s *Status) {
			s.Pools = []PoolStatus{{ID: "c/a", Reason: string(decide.ReasonCircuitBreaker)}, {ID: "c/b", Reason: string(decide.ReasonBackoff), Stuck: []string{"drain failed"}}}
		}), pools: []string{"circuit_breaker_open/c/a", "replacements_failing/c/b", "action_stuck/c/b"}},
		{name: "launch backoff, unschedulable", s: with(func(s *Status) {
			s.Pools = []PoolStatus{{ID: "c/a", Scaling: scaling(decide.CodeBackoff, decide.ScaleHold)}, {ID: "c/b", Scaling: scaling(decide.CodeUnschedulable, decide.ScaleHold)}}
		}), pools: []string{"launch_backoff/c/a", "tasks_unschedulable/c/b"}},
		{name: "check untrusted, not for long", s: with(func(s *Status) {
			s.Pools = []PoolStatus{{ID: "c/web", Scaling: scaling(decide.CodeStaleMetric, decide.ScaleHold, stale)}}
		}), prevUntrustedAt: t0.Add(-4 * time.Minute)},
		{name: "check untrusted for untrustedAfter", s: with(func(s *Status) {
			s.Pools = []PoolStatus{{ID: "c/web", Scaling: scaling(decide.CodeStaleMetric, decide.ScaleHold, stale)}}
		}), prevUntrustedAt: t0.Add(-5 * time.Minute), pools: []string{"check_untrusted/c/web/cpu"}},
		{name: "services: at max, refused, failing writes, a check untrusted", s: with(func(s *Status) {
			s.Services = []ServiceStatus{
				{Name: "api", Direction: string(decide.ScaleHold), Code: string(decide.CodeMaxSize), MaxReplicas: 8, Checks: []decide.CheckResult{stale}},
				{Name: "agentd", Direction: string(decide.ScaleHold), Code: string(decide.CodeNotReplicated)},
				{Name: "web", Direction: string(decide.ScaleUp), Code: string(decide.CodeAlert), Error: "update out of sequence"},
				{Name: "ok", Direction: string(decide.ScaleHold), Code: string(decide.CodeWithinTarget), Checks: []decide.CheckResult{{Name: "rps", Trusted: true}}},
			}
		}), prevUntrustedAt: t0.Add(-time.Hour), pools: []string{"service_at_max/api", "check_untrusted/service/api/cpu", "service_refused/agentd", "service_scale_failing/web"}},
	}
	for _, c := range cases {
		prev := map[string]time.Time{}
		if !c.prevUntrustedAt.IsZero() {
			prev["check_untrusted/c/web/cpu"] = c.prevUntrustedAt
			prev["check_untrusted/service/api/cpu"] = c.prevUntrustedAt
		}
		got := conditionsOf(c.s, t0, prev, 5*time.Minute, 30*time.Second)
		var cl, pl []string
		for _, x := range got.cluster {
			if x.Key != "" || x.Summary == "" {
				t.Errorf("%s: cluster condition %+v: want one per cluster, with a summary", c.name, x)
			}
			cl = append(cl, x.Name)
		}
		for _, x := range got.pools {
			pl = append(pl, x.Key)
			if x.Summary == "" || (x.Pool == "") == (x.Service == "") {
				t.Errorf("%s: condition %+v lacks its summary, or its pool or service", c.name, x)
			}
		}
		if !slices.Equal(cl, c.cluster) || !slices.Equal(pl, c.pools) {
			t.Errorf("%s: cluster %q pools %q, want %q and %q", c.name, cl, pl, c.cluster, c.pools)
		}
		if !c.prevUntrustedAt.IsZero() && len(c.s.Pools) > 0 && !got.since["check_untrusted/c/web/cpu"].Equal(c.prevUntrustedAt) {
			t.Errorf("%s: the untrusted clock restarted: %v", c.name, got.since)
		}
	}

	// The leader's agent missing is told once it has been for the delay,
	// counted from the first round that saw it.
	down := with(func(s *Status) {
		s.Leader, s.LeaderAgent = false, LeaderAgentStatus{Address: "10.0.0.1:9910", Error: "refused"}
	})
	r1 := conditionsOf(down, t0, nil, time.Minute, 30*time.Second)
	r2 := conditionsOf(down, t0.Add(29*time.Second), r1.since, time.Minute, 30*time.Second)
	r3 := conditionsOf(down, t0.Add(30*time.Second), r2.since, time.Minute, 30*time.Second)
	if len(r1.cluster)+len(r2.cluster) != 0 || len(r3.cluster) != 1 || r3.cluster[0].Name != "leader_agent_down" {
		t.Fatalf("leader agent down: %v, %v, %v; want it told at 30s only", r1.cluster, r2.cluster, r3.cluster)
	}
	// Once it answers again the clock is forgotten.
	if r4 := conditionsOf(healthy, t0.Add(31*time.Second), r3.since, time.Minute, 30*time.Second); len(r4.since) != 0 || len(r4.cluster) != 0 {
		t.Fatalf("after the leader's agent is back: %+v", r4)
	}
}
