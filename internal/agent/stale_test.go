package agent_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// A frozen exporter behind an aggregation: Prometheus keeps answering
// avg(rate(app_load[1m])) for a minute from the samples before the freeze,
// stamped with the evaluation time. The agent checks the raw series the
// query reads, so the check is trusted while the exporter answers and
// turns untrusted, as stale, within max_sample_age of the freeze; the pool
// holds.
func TestScaleStaleAggregatedQuery(t *testing.T) {
	h := newHarnessWith(t, "sq", 1, false, "1s", false)
	g := testenv.NewGauge(t, 0.5)
	prom := testenv.StartPrometheus(t, g.Addr)
	h.pool("web", 1, nil)
	// Thresholds around the value: a trusted reading holds the pool too,
	// so the test sees the trust, not a resize.
	upper, lower := 1000.0, -1.0
	maxAge := 5 * time.Second
	h.scale(scalingPolicy("sq/web", func(s *policy.Scaling) {
		s.Prometheus = []policy.PrometheusCheck{{Name: "load", Address: prom.Addr, Query: "avg(rate(app_load[1m]))", Upper: &upper, Lower: &lower}}
		s.MaxSampleAge = maxAge.String()
		s.ScaleInAfter = "1h"
	}))
	a := h.inProcess(false)
	check := func() (trusted bool, reason string) {
		st := h.scaling(a, "sq/web")
		for _, c := range st.Checks {
			if c.Name == "load" {
				return c.Trusted, c.Reason
			}
		}
		return false, fmt.Sprintf("no check in %+v", st)
	}
	h.evaluateUntil(a, "the check trusted while the exporter runs", 30*time.Second, check)
	for i := 0; i < 8; i++ {
		a.Evaluate(t.Context())
		if ok, why := check(); !ok {
			t.Fatalf("untrusted while the exporter runs: %s", why)
		}
		time.Sleep(250 * time.Millisecond)
	}

	g.Freeze(true)
	frozen := time.Now()
	// The newest sample is at most a scrape older than the freeze; 2s more
	// for the scrape timeout and the evaluation.
	h.evaluateUntil(a, "the check untrusted after the freeze", maxAge+2*time.Second, func() (bool, string) {
		ok, why := check()
		return !ok, why
	})
	_, why := check()
	t.Logf("untrusted %s after the freeze: %s", time.Since(frozen).Round(100*time.Millisecond), why)
	if !strings.Contains(why, "old, more than max_sample_age") {
		t.Fatalf("untrusted for another reason than the inputs' age: %s", why)
	}
	if got := len(h.instances("web")); got != 1 {
		t.Fatalf("the pool changed to %d on stale data", got)
	}
}
