package agent

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/autarky/terraform-provider-autarky/internal/decide"
)

// A pool or a check that is gone stops reporting: its breaker, its check's
// staleness and its size are deleted, so AutarkyCircuitBreakerOpen and
// AutarkyCheckStale (examples/alerts) do not fire on for a pool deleted
// while its breaker was open or its check stale. What still exists keeps
// its series throughout.
func TestGoneSeriesAreForgotten(t *testing.T) {
	m := newMetrics()
	m.breaker.WithLabelValues("c/web").Set(1)
	m.breaker.WithLabelValues("c/gone").Set(1)
	m.checkStale.WithLabelValues("c/web", "cpu").Set(1)
	m.checkStale.WithLabelValues("c/web", "dropped").Set(1)
	m.checkStale.WithLabelValues("c/gone", "cpu").Set(1)
	m.poolSize.WithLabelValues("c/web").Set(3)
	m.poolSize.WithLabelValues("c/gone").Set(2)

	m.forgetPools([]PoolStatus{{ID: "c/web"}, {ID: "c/managers"}})
	m.forgetScaling(map[string]ScaleStatus{"c/web": {Checks: []decide.CheckResult{{Name: "cpu"}}}})

	const want = `
# HELP autarky_circuit_breaker_open 1 while healing of the pool is stopped because too much of it is unhealthy at once.
# TYPE autarky_circuit_breaker_open gauge
autarky_circuit_breaker_open{pool="c/web"} 1
# HELP autarky_check_stale 1 while a scaling check's data cannot be trusted (missing, empty, NaN, stale or unreachable): the pool holds, never shrinks.
# TYPE autarky_check_stale gauge
autarky_check_stale{check="cpu",pool="c/web"} 1
# HELP autarky_pool_instances Running instances of a pool under a scaling policy.
# TYPE autarky_pool_instances gauge
autarky_pool_instances{pool="c/web"} 3
`
	if err := testutil.GatherAndCompare(m.registry, strings.NewReader(want),
		"autarky_circuit_breaker_open", "autarky_check_stale", "autarky_pool_instances"); err != nil {
		t.Fatal(err)
	}

	// No scaling policy left at all: every check and size goes.
	m.forgetScaling(map[string]ScaleStatus{})
	if n := testutil.CollectAndCount(m.checkStale) + testutil.CollectAndCount(m.poolSize); n != 0 {
		t.Fatalf("%d scaling series left without any scaling policy", n)
	}
}
