package decide

import (
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// productionRules are the healing policy's defaults, as a user who sets
// nothing gets them.
func productionRules(t *testing.T) policy.HealingRules {
	t.Helper()
	r, err := policy.DefaultHealing(workers).Rules()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestHealProductionDefaults: with the defaults a partition, a reboot or a
// dockerd restart of a few minutes replaces nothing, and a node that fails
// young is not replaced in a loop; a node Down for longer than the
// defaults is replaced. With 30 s and 0 s (the defaults before) every one
// of the waits below would have replaced the node.
func TestHealProductionDefaults(t *testing.T) {
	withDefaults := func(s *Snapshot) {
		for i := range s.Pools {
			s.Pools[i].Rules = productionRules(t)
		}
	}
	runHealCases(t, []healCase{
		{
			name: "a 2-minute partition of a worker waits",
			edit: func(s *Snapshot) {
				withDefaults(s)
				fail(s, "w1", NodeDown, 2*time.Minute)
			},
			reasons: map[string]ReasonCode{workers: ReasonWaiting},
			check:   messageContains(workers, "less than unhealthy_after (5m0s)"),
		},
		{
			name: "a 4m59s outage of a worker waits",
			edit: func(s *Snapshot) {
				withDefaults(s)
				fail(s, "w1", NodeUnknown, 5*time.Minute-time.Second)
			},
			reasons: map[string]ReasonCode{workers: ReasonWaiting},
		},
		{
			name: "down for 5 minutes is replaced",
			edit: func(s *Snapshot) {
				withDefaults(s)
				fail(s, "w1", NodeDown, 5*time.Minute)
			},
			want:    []string{replaceW1},
			reasons: map[string]ReasonCode{workers: ReasonHealing},
		},
		{
			name: "a node that fails within 10 minutes of joining is not replaced yet",
			edit: func(s *Snapshot) {
				withDefaults(s)
				n := findNode(s, "w1")
				n.CreatedAt = t0.Add(-9 * time.Minute)
				fail(s, "w1", NodeDown, 6*time.Minute)
			},
			reasons: map[string]ReasonCode{workers: ReasonMinNodeAge},
		},
		{
			name: "once it is 10 minutes old it is replaced",
			edit: func(s *Snapshot) {
				withDefaults(s)
				n := findNode(s, "w1")
				n.CreatedAt = t0.Add(-10 * time.Minute)
				fail(s, "w1", NodeDown, 6*time.Minute)
			},
			want: []string{replaceW1},
		},
	})
}
