package policy

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

// scalingFields are the field names a scaling policy's errors may start
// with (after "scaling policy for ...: "): every refusal names what to fix.
var scalingFields = []string{"node_pool_id", "min_size", "max_size", "evaluation_interval", "cooldown_up", "cooldown_down",
	"scale_in_after", "max_step", "drain_timeout", "node_selector", "max_sample_age", "provision_timeout",
	"prometheus[", "alert[", "a scaling policy needs at least one check"}

// FuzzScalingRules builds scaling policies from arbitrary values and
// parses them as the agent does (Rules). Nothing panics; Validate and
// Rules agree; a refusal names its field; and a policy that is taken
// holds every invariant the decision core relies on: bounds in order and
// within every pool's, durations in range, steps 1 to 100, one way of
// sizing per Prometheus check with finite numbers, unique trimmed alert
// names — and it reads back the same after the store's JSON round trip.
func FuzzScalingRules(f *testing.F) {
	f.Add("c/web", int64(1), int64(10), uint8(3), "30s", "1m", "5m", "10m", int64(2), "2m", "empty_first", "", "15m",
		uint8(1), "load", "http://prometheus:9090", "avg(rate(x[1m]))", 0.5, uint8(0), 10.0, 1.0, int64(0), "WebOverloaded", int64(2), int64(0), int64(20))
	f.Add("c/web", int64(0), int64(0), uint8(0), "100ms", "0", "0", "0", int64(100), "1s", "newest", "1s", "5s",
		uint8(2), "a", "https://p", "up", 1e-300, uint8(2), math.Inf(1), math.NaN(), int64(101), " x", int64(-1), int64(5), int64(1))
	f.Add("c/web", int64(5), int64(3), uint8(3), "1h", "-1s", "1e3s", "5m", int64(1), "1h", "least_busy", "0s", "15m",
		uint8(3), "load", "http://user:pw@p:9090", "avg(rate(x[1m]", 1.0, uint8(1), 1.0, 1.0, int64(1), "", int64(0), int64(0), int64(1))
	f.Add("bad", int64(-1), int64(math.MaxInt64), uint8(1), "2h", "1m", "1m", "1m", int64(0), "0s", "random", "", "4s",
		uint8(0), "", "", "", 0.0, uint8(3), -1.0, -2.0, int64(0), "a", int64(100), int64(math.MinInt64), int64(math.MaxInt64))
	f.Fuzz(func(t *testing.T, poolID string, minSize, maxSize int64, sizes uint8, interval, cdUp, cdDown, scaleInAfter string,
		maxStep int64, drain, selector, sampleAge, provision string,
		checks uint8, promName, address, query string, value float64, mode uint8, upper, lower float64, step int64,
		alertName string, alertStep int64, poolMin, poolMax int64) {
		s := Scaling{PoolID: poolID, EvaluationInterval: interval, CooldownUp: cdUp, CooldownDown: cdDown, ScaleInAfter: scaleInAfter,
			MaxStep: maxStep, DrainTimeout: drain, NodeSelector: selector, MaxSampleAge: sampleAge, ProvisionTimeout: provision, Enabled: true}
		if sizes&1 != 0 {
			s.MinSize = &minSize
		}
		if sizes&2 != 0 {
			s.MaxSize = &maxSize
		}
		if checks&1 != 0 {
			pc := PrometheusCheck{Name: promName, Address: address, Query: query, Step: step}
			switch mode % 4 {
			case 0:
				pc.TargetValue = &value
			case 1:
				pc.Upper, pc.Lower = &upper, &lower
			case 2:
				pc.Upper = &upper
			case 3:
				pc.TargetValue, pc.Lower = &value, &lower
			}
			s.Prometheus = []PrometheusCheck{pc}
		}
		if checks&2 != 0 {
			s.Alert = []AlertCheck{{Name: alertName, Step: alertStep}}
			if checks&8 != 0 {
				s.Alert = append(s.Alert, AlertCheck{Name: strings.TrimSpace(alertName)})
			}
		}
		if checks&4 != 0 {
			s.PendingTasks = &PendingTasksCheck{}
		}

		r, err := s.Rules()
		if verr := s.Validate(); (verr == nil) != (err == nil) {
			t.Fatalf("Validate says %v, Rules says %v", verr, err)
		}
		if err != nil {
			msg := strings.TrimPrefix(err.Error(), "scaling policy for "+quote(poolID)+": ")
			for _, field := range scalingFields {
				if strings.HasPrefix(msg, field) {
					return
				}
			}
			t.Fatalf("the refusal names no field: %v", err)
		}

		if r.MinSize != nil && *r.MinSize < 0 || r.MaxSize != nil && *r.MaxSize < 1 {
			t.Fatalf("bounds out of range: %v %v", deref(r.MinSize), deref(r.MaxSize))
		}
		if r.MinSize != nil && r.MaxSize != nil && *r.MinSize > *r.MaxSize {
			t.Fatalf("min_size %d above max_size %d", *r.MinSize, *r.MaxSize)
		}
		// Within any pool's bounds, the effective ones are a range inside
		// them.
		pMin, pMax := int(poolMin%1000), int(poolMax%1000)
		if pMin >= 0 && pMax >= 1 && pMin <= pMax {
			lo, hi := r.Bounds(pMin, pMax)
			if !(pMin <= lo && lo <= hi && hi <= pMax) {
				t.Fatalf("Bounds(%d, %d) = %d, %d with policy bounds %v %v", pMin, pMax, lo, hi, deref(r.MinSize), deref(r.MaxSize))
			}
		}
		if r.EvaluationInterval < 100*time.Millisecond || r.EvaluationInterval > time.Hour {
			t.Fatalf("evaluation interval %s", r.EvaluationInterval)
		}
		for name, d := range map[string]time.Duration{"cooldown_up": r.CooldownUp, "cooldown_down": r.CooldownDown, "scale_in_after": r.ScaleInAfter} {
			if d < 0 {
				t.Fatalf("%s is %s", name, d)
			}
		}
		if r.DrainTimeout < time.Second || r.MaxSampleAge < time.Second || r.ProvisionTimeout < MinProvisionTimeout {
			t.Fatalf("drain_timeout %s, max_sample_age %s, provision_timeout %s", r.DrainTimeout, r.MaxSampleAge, r.ProvisionTimeout)
		}
		if r.MaxStep < MinMaxStep || r.MaxStep > MaxMaxStep {
			t.Fatalf("max_step %d", r.MaxStep)
		}
		if !r.PendingTasks && len(r.Prometheus) == 0 && len(r.Alert) == 0 {
			t.Fatalf("a policy with no check was taken")
		}
		for _, p := range r.Prometheus {
			if (p.TargetValue != nil) == (p.Upper != nil || p.Lower != nil) {
				t.Fatalf("check %q: target %v, upper %v, lower %v", p.Name, p.TargetValue, p.Upper, p.Lower)
			}
			if p.TargetValue != nil && (!isFinite(*p.TargetValue) || *p.TargetValue <= 0) {
				t.Fatalf("check %q: target %v", p.Name, *p.TargetValue)
			}
			for _, v := range []*float64{p.Upper, p.Lower} {
				if v != nil && !isFinite(*v) {
					t.Fatalf("check %q: threshold %v", p.Name, *v)
				}
			}
			if p.Upper != nil && p.Lower != nil && *p.Lower >= *p.Upper {
				t.Fatalf("check %q: lower %v not below upper %v", p.Name, *p.Lower, *p.Upper)
			}
			if p.TargetValue == nil && (p.Step < MinCheckStep || p.Step > MaxCheckStep) {
				t.Fatalf("check %q: step %d", p.Name, p.Step)
			}
			if validateAddress(p.Address) != nil || strings.TrimSpace(p.Query) == "" {
				t.Fatalf("check %q: address %q, query %q", p.Name, p.Address, p.Query)
			}
		}
		names := map[string]bool{}
		for _, a := range r.Alert {
			if a.Name == "" || a.Name != strings.TrimSpace(a.Name) || names[a.Name] {
				t.Fatalf("alert name %q (taken: %v)", a.Name, names)
			}
			names[a.Name] = true
			if a.Step < MinCheckStep || a.Step > MaxCheckStep {
				t.Fatalf("alert %q: step %d", a.Name, a.Step)
			}
		}

		// The store keeps the policy as JSON: what the agent reads back
		// parses the same.
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("the policy does not encode: %v", err)
		}
		var back Scaling
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("the stored policy does not decode: %v\n%s", err, b)
		}
		r2, err := back.Rules()
		if err != nil {
			t.Fatalf("the stored policy is refused after the round trip: %v\n%s", err, b)
		}
		if !reflect.DeepEqual(r, r2) {
			t.Fatalf("the stored policy parses differently:\n%+v\n%+v", r, r2)
		}
	})
}

// healingFields are the field names a healing policy's errors may start
// with (after "healing policy for ...: ").
var healingFields = []string{"node_pool_id", "unhealthy_after", "join_timeout", "min_node_age", "max_unhealthy_percent", "max_concurrent_replacements"}

// FuzzHealingRules parses arbitrary healing policies: nothing panics,
// Validate and Rules agree, a refusal names its field, and a policy taken
// has its durations and counts in range and reads back the same from JSON.
func FuzzHealingRules(f *testing.F) {
	f.Add("c/web", "5m", "5m", "10m", int64(20), int64(1))
	f.Add("c/web", "0", "1s", "0s", int64(100), int64(10))
	f.Add("c/web", "-1s", "0", " 5m ", int64(0), int64(11))
	f.Add("c/", "1e9h", "9223372036854775807ns", "1h1h", int64(101), int64(-1))
	f.Fuzz(func(t *testing.T, poolID, unhealthyAfter, joinTimeout, minNodeAge string, maxUnhealthy, maxConcurrent int64) {
		h := Healing{PoolID: poolID, UnhealthyAfter: unhealthyAfter, JoinTimeout: joinTimeout, MinNodeAge: minNodeAge,
			MaxUnhealthyPercent: maxUnhealthy, MaxConcurrentReplacements: maxConcurrent, Enabled: true}
		r, err := h.Rules()
		if verr := h.Validate(); (verr == nil) != (err == nil) {
			t.Fatalf("Validate says %v, Rules says %v", verr, err)
		}
		if err != nil {
			msg := strings.TrimPrefix(err.Error(), "healing policy for "+quote(poolID)+": ")
			for _, field := range healingFields {
				if strings.HasPrefix(msg, field) {
					return
				}
			}
			t.Fatalf("the refusal names no field: %v", err)
		}
		if r.UnhealthyAfter < 0 || r.MinNodeAge < 0 || r.JoinTimeout < time.Second {
			t.Fatalf("durations: unhealthy_after %s, join_timeout %s, min_node_age %s", r.UnhealthyAfter, r.JoinTimeout, r.MinNodeAge)
		}
		if r.MaxUnhealthyPercent < MinMaxUnhealthyPercent || r.MaxUnhealthyPercent > MaxMaxUnhealthyPercent ||
			r.MaxConcurrentReplacements < MinMaxConcurrentReplacements || r.MaxConcurrentReplacements > MaxMaxConcurrentReplacements {
			t.Fatalf("counts: %d%%, %d at once", r.MaxUnhealthyPercent, r.MaxConcurrentReplacements)
		}
		b, err := json.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		var back Healing
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("the stored policy does not decode: %v\n%s", err, b)
		}
		r2, err := back.Rules()
		if err != nil || r2 != r {
			t.Fatalf("the stored policy parses differently: %+v, %v (was %+v)", r2, err, r)
		}
	})
}

func quote(s string) string { return fmt.Sprintf("%q", s) }

func deref(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}
