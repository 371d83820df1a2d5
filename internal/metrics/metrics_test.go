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
	last, err := c.LastSampleTime(ctx, prom.Addr, "app_load", time.Now())
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
	last, err = c.LastSampleTime(ctx, prom.Addr, "app_load", time.Now())
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
