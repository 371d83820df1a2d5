package metrics

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// Against a real Prometheus scraping a real exporter: a live gauge is
// trusted; a missing series, a rejected query, a frozen exporter and a
// stopped Prometheus are not, and say why.
func TestQueryTrust(t *testing.T) {
	g := testenv.NewGauge(t, 0.75)
	prom := testenv.StartPrometheus(t, g.Addr)
	c := NewClient(2 * time.Second)
	ctx := context.Background()
	maxAge := 3 * time.Second

	var s Sample
	deadline := time.Now().Add(30 * time.Second)
	for {
		s = c.Query(ctx, prom.Addr, "app_load", time.Now())
		if s.Err == "" && !s.Empty {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no sample of app_load: %+v", s)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if ok, why := s.Trusted(time.Now(), maxAge); !ok || s.Value != 0.75 {
		t.Fatalf("live gauge: trusted=%v (%s), value %v", ok, why, s.Value)
	}
	last, err := c.LastSampleTime(ctx, prom.Addr, "app_load", time.Now(), time.Minute)
	if err != nil || time.Since(last) > maxAge {
		t.Fatalf("last sample time of a live gauge: %v, %v", last, err)
	}

	s = c.Query(ctx, prom.Addr, "app_load_that_does_not_exist", time.Now())
	if ok, why := s.Trusted(time.Now(), maxAge); ok || !strings.Contains(why, "no series") {
		t.Fatalf("missing series: trusted=%v (%s)", ok, why)
	}

	s = c.Query(ctx, prom.Addr, "avg(rate(app_load[1m]", time.Now())
	if ok, why := s.Trusted(time.Now(), maxAge); ok || !strings.Contains(why, "rejected the query") {
		t.Fatalf("bad query: trusted=%v (%s)", ok, why)
	}

	s = c.Query(ctx, prom.Addr, "0/0", time.Now())
	if ok, why := s.Trusted(time.Now(), maxAge); ok || !strings.Contains(why, "NaN") {
		t.Fatalf("NaN: trusted=%v (%s)", ok, why)
	}

	g.Freeze(true)
	time.Sleep(maxAge + 2*time.Second)
	last, err = c.LastSampleTime(ctx, prom.Addr, "app_load", time.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if age := time.Since(last); age <= maxAge {
		t.Fatalf("frozen exporter: newest sample only %s old", age)
	}
	g.Freeze(false)

	prom.Stop()
	s = c.Query(ctx, prom.Addr, "app_load", time.Now())
	if ok, why := s.Trusted(time.Now(), maxAge); ok || !strings.Contains(why, "unreachable") {
		t.Fatalf("stopped Prometheus: trusted=%v (%s)", ok, why)
	}
}

// An aggregated query over a frozen exporter: Prometheus keeps answering
// avg(rate(app_load[1m])) for a minute from the samples before the freeze,
// with the evaluation time as its timestamp. The check looks at the raw
// series the query reads instead, so it is trusted while the exporter
// answers and untrusted, as stale, within the allowed age of the freeze
// while the query itself still answers.
func TestCheckAggregatedQueryOverFrozenExporter(t *testing.T) {
	g := testenv.NewGauge(t, 0.75)
	prom := testenv.StartPrometheus(t, g.Addr)
	c := NewClient(2 * time.Second)
	ctx := context.Background()
	maxAge := 5 * time.Second
	queries := []string{"avg(rate(app_load[1m]))", "max(max_over_time(app_load[1m]))"}

	// rate needs two samples: wait for the queries to answer.
	deadline := time.Now().Add(30 * time.Second)
	for _, q := range queries {
		for {
			s := c.Check(ctx, prom.Addr, q, time.Now(), maxAge)
			if ok, _ := s.Trusted(time.Now(), maxAge); ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: never trusted while the exporter runs: %+v", q, s)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	// While the exporter runs, every reading is trusted.
	for i := 0; i < 10; i++ {
		for _, q := range queries {
			now := time.Now()
			if ok, why := c.Check(ctx, prom.Addr, q, now, maxAge).Trusted(now, maxAge); !ok {
				t.Fatalf("%s: untrusted while the exporter runs: %s", q, why)
			}
		}
		time.Sleep(300 * time.Millisecond)
	}

	g.Freeze(true)
	frozen := time.Now()
	pending := map[string]bool{queries[0]: true, queries[1]: true}
	for len(pending) > 0 {
		for q := range pending {
			now := time.Now()
			s := c.Check(ctx, prom.Addr, q, now, maxAge)
			ok, why := s.Trusted(now, maxAge)
			if ok {
				continue
			}
			// Stale, not failed: the reason gives the inputs' age.
			if !strings.Contains(why, "old, more than") {
				t.Fatalf("%s: untrusted for another reason than its age: %s", q, why)
			}
			// The query itself still answers: only the raw series tell.
			if r := c.Query(ctx, prom.Addr, q, now); r.Err != "" || r.Empty {
				t.Fatalf("%s: the query stopped answering (%+v): the test shows nothing", q, r)
			}
			t.Logf("%s: untrusted %s after the freeze: %s", q, time.Since(frozen).Round(100*time.Millisecond), why)
			delete(pending, q)
		}
		// The newest sample is at most a scrape older than the freeze; give
		// the scrape and the query 2s more.
		if time.Since(frozen) > maxAge+2*time.Second && len(pending) > 0 {
			t.Fatalf("still trusted %s after the exporter froze: %v", time.Since(frozen).Round(time.Second), pending)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Back to fresh once the exporter answers again.
	g.Freeze(false)
	deadline = time.Now().Add(20 * time.Second)
	for {
		now := time.Now()
		ok, why := c.Check(ctx, prom.Addr, queries[0], now, maxAge).Trusted(now, maxAge)
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not trusted again after the exporter recovered: %s", why)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Every series a query reads must be fresh: a selector with no sample
// makes the check untrusted, naming the selector, even when the query
// answers (here thanks to "or vector(0)"); a query that does not parse
// fails the freshness check too, it is never skipped.
func TestCheckFreshnessFailures(t *testing.T) {
	g := testenv.NewGauge(t, 0.75)
	prom := testenv.StartPrometheus(t, g.Addr)
	c := NewClient(2 * time.Second)
	ctx := context.Background()
	maxAge := 5 * time.Second
	deadline := time.Now().Add(30 * time.Second)
	for c.Query(ctx, prom.Addr, "app_load", time.Now()).Empty {
		if time.Now().After(deadline) {
			t.Fatal("no sample of app_load")
		}
		time.Sleep(200 * time.Millisecond)
	}

	q := "sum(app_load) + (sum(app_load_gone) or vector(0))"
	now := time.Now()
	if r := c.Query(ctx, prom.Addr, q, now); r.Err != "" || r.Empty {
		t.Fatalf("the query does not answer: %+v", r)
	}
	ok, why := c.Check(ctx, prom.Addr, q, now, maxAge).Trusted(now, maxAge)
	if ok || !strings.Contains(why, "freshness check") || !strings.Contains(why, "app_load_gone has no sample in the last 1m0s") {
		t.Fatalf("a selector without samples: trusted=%v (%s)", ok, why)
	}

	// A query that reads no series has nothing to go stale.
	if ok, why := c.Check(ctx, prom.Addr, "vector(1)", now, maxAge).Trusted(now, maxAge); !ok {
		t.Fatalf("vector(1): %s", why)
	}

	if _, err := c.LastSampleTime(ctx, prom.Addr, "avg(rate(app_load[1m]", now, time.Minute); err == nil || !strings.Contains(err.Error(), "parse error") {
		t.Fatalf("a query that does not parse: %v", err)
	}
}
