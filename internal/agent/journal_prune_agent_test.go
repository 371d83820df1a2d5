package agent_test

import (
	"context"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/agent"
	"github.com/autarky/terraform-provider-autarky/internal/decide"
)

// TestAgentPrunesJournal: the leader's agent drops from the journal in the
// store the records of pools that are gone and the records that read as
// none, and keeps the live pools' records; a dry-run agent writes nothing.
func TestAgentPrunesJournal(t *testing.T) {
	h := newHarness(t, "jprune", 1, false)
	long := time.Now().Add(-72 * time.Hour).UTC().Truncate(time.Second)
	j := &agent.Journal{
		Backoff: map[string]decide.Backoff{
			"jprune/managers": {Failures: 3, LastFailure: long},
			"jprune/gone":     {Failures: 2, LastFailure: long},
		},
		LastScaleUp:   map[string]time.Time{"jprune/gone": long, "jprune/gone-too": long},
		LastScaleDown: map[string]time.Time{"jprune/managers": {}},
	}
	if err := saveJournal(h.c, j); err != nil {
		t.Fatal(err)
	}

	h.inProcess(true).Evaluate(context.Background())
	if got := h.journal(); len(got.Backoff) != 2 || len(got.LastScaleUp) != 2 || len(got.LastScaleDown) != 1 {
		t.Fatalf("a dry-run agent changed the journal: %+v", got)
	}

	h.inProcess(false).Evaluate(context.Background())
	got := h.journal()
	if len(got.Backoff) != 1 || got.Backoff["jprune/managers"].Failures != 3 || !got.Backoff["jprune/managers"].LastFailure.Equal(long) {
		t.Errorf("backoff after pruning: %+v; want the managers' 3 failures only", got.Backoff)
	}
	if len(got.LastScaleUp) != 0 || len(got.LastScaleDown) != 0 {
		t.Errorf("scale records after pruning: up %v, down %v; want none", got.LastScaleUp, got.LastScaleDown)
	}
}
