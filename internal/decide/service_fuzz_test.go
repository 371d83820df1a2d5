package decide

import (
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// fuzzServiceSnapshot builds a few services with random bounds (sometimes
// outside the replicas, sometimes broken), cooldowns, samples trusted or
// not, alerts up and down, and recommendations.
func fuzzServiceSnapshot(data []byte) ServiceSnapshot {
	f := &fuzzReader{b: data}
	s := ServiceSnapshot{Now: t0, DefaultMaxSampleAge: 20 * time.Second}
	durations := []time.Duration{0, 10 * time.Second, 30 * time.Second, time.Minute, 5 * time.Minute}
	values := []float64{0, 0.1, 0.5, 1, 2, 7.5, 100, -1, 1e300, math.NaN(), math.Inf(1)}
	ago := func(n int) time.Time {
		if f.intn(4) == 0 {
			return time.Time{}
		}
		return t0.Add(-time.Duration(f.intn(n)) * 10 * time.Second)
	}
	modes := []string{ServiceReplicated, ServiceReplicated, ServiceReplicated, ServiceGlobal, ServiceReplicatedJob, ""}
	for i := range 1 + f.intn(3) {
		lo := f.intn(4)
		st := ServiceState{
			Name: fmt.Sprintf("s%d", i%2), Mode: modes[f.intn(len(modes))],
			Replicas: f.intn(16) - f.intn(2), Running: f.intn(16),
			Rules: policy.ServiceScalingRules{MinReplicas: lo, MaxReplicas: lo + f.intn(10) - f.intn(2), MaxStep: f.intn(5),
				CooldownUp: durations[f.intn(len(durations))], CooldownDown: durations[f.intn(len(durations))],
				MaxSampleAge: []time.Duration{0, 5 * time.Second}[f.intn(2)], DryRun: f.chance(1), Enabled: !f.chance(1)},
			LastScaleUp: ago(40), LastScaleDown: ago(40),
		}
		if f.chance(1) {
			st.Controller = "docker-scaler"
		}
		for j := range f.intn(3) {
			pr := policy.PrometheusRule{Name: fmt.Sprintf("m%d", j)}
			c := CheckSample{Name: pr.Name, Kind: CheckPrometheus, Value: values[f.intn(len(values))], SampleTime: ago(6), Step: f.intn(4),
				Empty: f.chance(1)}
			switch f.intn(3) {
			case 0:
				c.Target = &values[f.intn(len(values))]
			case 1:
				c.Upper, c.Lower = &values[f.intn(len(values))], &values[f.intn(len(values))]
			case 2:
				c.Upper = &values[f.intn(len(values))]
			}
			st.Rules.Prometheus = append(st.Rules.Prometheus, pr)
			if f.chance(7) {
				st.Checks = append(st.Checks, c)
			}
		}
		for j := range f.intn(3) {
			dir := ScaleUp
			if f.chance(4) {
				dir = ScaleDown
			}
			st.Alerts = append(st.Alerts, ServiceAlert{Name: fmt.Sprintf("a%d", j), Direction: dir, Step: f.intn(5), Firing: f.chance(6), ReceivedAt: ago(10)})
		}
		for range f.intn(3) {
			st.Recommendations = append(st.Recommendations, Recommendation{At: ago(60), Size: f.intn(16)})
		}
		s.Services = append(s.Services, st)
	}
	return s
}

// FuzzDecideServices holds the service decision to the safety rules on
// arbitrary snapshots: deterministic, one decision per service in order;
// a hold keeps the replicas; a change never steps more than max_step and,
// unless forced back into the bounds, stays within them; nothing shrinks
// while a check is untrusted or replicas are starting (unless forced);
// refused services never change; only firing alerts are consumed; every
// decision explains itself.
func FuzzDecideServices(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20})
	f.Add([]byte("the load came and went, and came back while the exporter hung"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := fuzzServiceSnapshot(data)
		ds := DecideServices(s)
		if again := DecideServices(fuzzServiceSnapshot(data)); !reflect.DeepEqual(ds, again) {
			t.Fatal("two decisions on the same snapshot differ")
		}
		if len(ds) != len(s.Services) {
			t.Fatalf("%d decisions for %d services", len(ds), len(s.Services))
		}
		for i, d := range ds {
			st := s.Services[i]
			r := st.Rules
			if d.Service != st.Name || d.From != st.Replicas || d.Message == "" {
				t.Fatalf("decision %+v for service %+v", d, st)
			}
			if d.Direction == ScaleHold {
				if d.To != d.From {
					t.Fatalf("a hold changes the replicas: %+v", d)
				}
				continue
			}
			if (d.Direction == ScaleUp) != (d.To > d.From) || d.To == d.From {
				t.Fatalf("direction %s from %d to %d", d.Direction, d.From, d.To)
			}
			if d.Code == CodeNotReplicated || d.Code == CodeOtherController || d.Code == CodeInvalid || d.Code == CodeDisabled {
				t.Fatalf("a refused service changes: %+v", d)
			}
			if st.Mode != "" && st.Mode != ServiceReplicated || st.Controller != "" || !r.Enabled {
				t.Fatalf("a service that must be refused changes: %+v (%+v)", d, st)
			}
			if d.To-d.From > r.MaxStep || d.From-d.To > r.MaxStep || d.To < 0 {
				t.Fatalf("%d -> %d steps beyond max_step %d", d.From, d.To, r.MaxStep)
			}
			if d.Forced {
				if d.From >= r.MinReplicas && d.From <= r.MaxReplicas {
					t.Fatalf("forced within the bounds: %+v", d)
				}
				continue
			}
			if d.To < r.MinReplicas || d.To > r.MaxReplicas {
				t.Fatalf("%d -> %d leaves [%d, %d]: %s", d.From, d.To, r.MinReplicas, r.MaxReplicas, d.Message)
			}
			if d.Direction == ScaleDown {
				if st.Running < st.Replicas {
					t.Fatalf("shrinks while replicas start: %+v", d)
				}
				for _, c := range d.PerCheck {
					if !c.Trusted {
						t.Fatalf("shrinks with an untrusted check: %+v", d)
					}
				}
				if !st.LastScaleDown.IsZero() && s.Now.Sub(st.LastScaleDown) < r.CooldownDown ||
					!st.LastScaleUp.IsZero() && s.Now.Sub(st.LastScaleUp) < r.CooldownDown {
					t.Fatalf("shrinks within cooldown_down: %+v", d)
				}
			}
			if d.Direction == ScaleUp && !st.LastScaleUp.IsZero() && s.Now.Sub(st.LastScaleUp) < r.CooldownUp {
				t.Fatalf("grows within cooldown_up: %+v", d)
			}
			if d.DryRun != r.DryRun || d.DryRun && !strings.HasPrefix(d.Message, "dry run") {
				t.Fatalf("dry run not said: %+v", d)
			}
		}
		for i, d := range ds {
			for _, name := range d.ConsumedAlerts {
				firing := false
				for _, al := range s.Services[i].Alerts {
					firing = firing || al.Name == name && al.Firing
				}
				if !firing {
					t.Fatalf("consumed %q, which does not fire: %+v", name, d)
				}
			}
		}
	})
}
