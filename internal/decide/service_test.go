package decide

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

var svcNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// svcRules is a service policy of [1, 10] replicas, max_step 3, cooldowns
// 30s up and 5m down, with a target-tracking check "load" (target 50).
func svcRules() policy.ServiceScalingRules {
	return policy.ServiceScalingRules{Service: "web", MinReplicas: 1, MaxReplicas: 10, MaxStep: 3,
		CooldownUp: 30 * time.Second, CooldownDown: 5 * time.Minute, ScaleUpBy: 1, ScaleDownBy: 1, Enabled: true,
		Prometheus: []policy.PrometheusRule{{Name: "load", Address: "http://p", Query: "load", TargetValue: fp(50)}}}
}

func loadSample(v float64, age time.Duration) CheckSample {
	return CheckSample{Name: "load", Kind: CheckPrometheus, Value: v, SampleTime: svcNow.Add(-age), Target: fp(50)}
}

func svc(replicas, running int, checks ...CheckSample) ServiceState {
	return ServiceState{Name: "web", Mode: ServiceReplicated, Replicas: replicas, Running: running, Rules: svcRules(), Checks: checks}
}

func decideOne(t *testing.T, st ServiceState) ServiceDecision {
	t.Helper()
	ds := DecideServices(ServiceSnapshot{Now: svcNow, DefaultMaxSampleAge: 20 * time.Second, Services: []ServiceState{st}})
	if len(ds) != 1 {
		t.Fatalf("%d decisions, want 1", len(ds))
	}
	d := ds[0]
	// Safety rules every decision keeps.
	if d.Direction != ScaleHold && !d.Forced {
		if d.To < st.Rules.MinReplicas || d.To > st.Rules.MaxReplicas {
			t.Fatalf("decision %d -> %d leaves the bounds [%d, %d]: %s", d.From, d.To, st.Rules.MinReplicas, st.Rules.MaxReplicas, d.Message)
		}
	}
	if diff := d.To - d.From; diff > st.Rules.MaxStep || -diff > st.Rules.MaxStep {
		t.Fatalf("decision %d -> %d steps more than max_step %d: %s", d.From, d.To, st.Rules.MaxStep, d.Message)
	}
	if d.Message == "" {
		t.Fatal("a decision without a message")
	}
	return d
}

func TestDecideServices(t *testing.T) {
	up := func(name string, step int) ServiceAlert {
		return ServiceAlert{Name: name, Direction: ScaleUp, Step: step, Firing: true, ReceivedAt: svcNow.Add(-time.Second)}
	}
	down := func(name string, step int) ServiceAlert {
		return ServiceAlert{Name: name, Direction: ScaleDown, Step: step, Firing: true, ReceivedAt: svcNow.Add(-time.Second)}
	}
	tests := []struct {
		name     string
		st       func() ServiceState
		to       int
		dir      ScaleDirection
		code     ScaleCode
		msg      string   // a part of the message
		consumed []string // nil: none
	}{
		{name: "target tracking grows", st: func() ServiceState { return svc(2, 2, loadSample(100, time.Second)) },
			to: 4, dir: ScaleUp, code: CodeTargetTracking, msg: `prometheus check "load": value 100 against target_value 50 over 2 running replicas, so it asks for 4 replicas: grow from 2 to 4`},
		{name: "max_step", st: func() ServiceState { return svc(2, 2, loadSample(400, time.Second)) },
			to: 5, dir: ScaleUp, code: CodeTargetTracking, msg: "grow from 2 to 5, limited by max_step 3"},
		{name: "max_replicas caps", st: func() ServiceState { return svc(9, 9, loadSample(400, time.Second)) },
			to: 10, dir: ScaleUp, code: CodeTargetTracking, msg: "asks for 72 replicas: grow from 9 to 10, capped at max_replicas 10"},
		{name: "at max_replicas", st: func() ServiceState {
			s := svc(10, 10, loadSample(400, time.Second))
			s.Alerts = []ServiceAlert{up("Hot", 1)}
			return s
		},
			to: 10, dir: ScaleHold, code: CodeMaxSize, msg: "but the service is at max_replicas 10: hold", consumed: []string{"Hot"}},
		{name: "replicas starting count against a new request", st: func() ServiceState { return svc(4, 2, loadSample(200, time.Second)) },
			to: 6, dir: ScaleUp, code: CodeTargetTracking, msg: "over 2 running replicas, so it asks for 6 replicas: grow from 4 to 6"},
		{name: "replicas starting answer the request", st: func() ServiceState { return svc(4, 2, loadSample(150, time.Second)) },
			to: 4, dir: ScaleHold, code: CodeWithinTarget},
		{name: "target tracking shrinks", st: func() ServiceState { return svc(6, 6, loadSample(20, time.Second)) },
			to: 3, dir: ScaleDown, code: CodeTargetTracking, msg: "every check that asks allows 3 replicas"},
		{name: "no scale-in while replicas start", st: func() ServiceState { return svc(6, 5, loadSample(10, time.Second)) },
			to: 6, dir: ScaleHold, code: CodeStarting, msg: "but 1 replica of 6 are not running yet"},
		{name: "stale metric holds, never shrinks", st: func() ServiceState { return svc(6, 6, loadSample(1, time.Minute)) },
			to: 6, dir: ScaleHold, code: CodeStaleMetric, msg: `prometheus check "load" is not trusted: the newest sample is 1m0s old, more than max_sample_age 20s`},
		{name: "empty metric holds", st: func() ServiceState { return svc(6, 6, CheckSample{Name: "load", Kind: CheckPrometheus, Empty: true}) },
			to: 6, dir: ScaleHold, code: CodeNoData, msg: "the query returned no series"},
		{name: "missing sample holds", st: func() ServiceState { return svc(6, 6) },
			to: 6, dir: ScaleHold, code: CodeNoData, msg: "reported no sample"},
		{name: "no shrink by a down alert on an untrusted metric", st: func() ServiceState {
			s := svc(6, 6, loadSample(1, time.Minute))
			s.Alerts = []ServiceAlert{down("Idle", 1)}
			return s
		}, to: 6, dir: ScaleHold, code: CodeStaleMetric, msg: "never shrink on it", consumed: []string{"Idle"}},
		{name: "an up alert grows despite an untrusted metric", st: func() ServiceState {
			s := svc(6, 6, loadSample(1, time.Minute))
			s.Alerts = []ServiceAlert{up("Hot", 2)}
			return s
		}, to: 8, dir: ScaleUp, code: CodeAlert, msg: `alert "Hot": the alert fires (heard 1s ago): 2 replicas more`, consumed: []string{"Hot"}},
		{name: "a routed down alert shrinks", st: func() ServiceState {
			s := svc(5, 5)
			s.Rules.Prometheus = nil
			s.Alerts = []ServiceAlert{down("web_idle", 2)}
			return s
		}, to: 3, dir: ScaleDown, code: CodeAlert, msg: "the alert fires with scale=down (heard 1s ago): 2 replicas fewer", consumed: []string{"web_idle"}},
		{name: "a down alert stops at min_replicas", st: func() ServiceState {
			s := svc(2, 2)
			s.Rules.Prometheus = nil
			s.Alerts = []ServiceAlert{down("web_idle", 3)}
			return s
		}, to: 1, dir: ScaleDown, code: CodeAlert, msg: "shrink from 2 to 1, stopping at min_replicas 1", consumed: []string{"web_idle"}},
		{name: "a down alert at min_replicas", st: func() ServiceState {
			s := svc(1, 1)
			s.Rules.Prometheus = nil
			s.Alerts = []ServiceAlert{down("web_idle", 1)}
			return s
		}, to: 1, dir: ScaleHold, code: CodeMinSize, msg: "at min_replicas 1: hold", consumed: []string{"web_idle"}},
		{name: "a down alert outvoted by a metric", st: func() ServiceState {
			s := svc(4, 4, loadSample(50, time.Second))
			s.Alerts = []ServiceAlert{down("web_idle", 1)}
			return s
		}, to: 4, dir: ScaleHold, code: CodeWithinTarget, msg: "the checks are satisfied at 4 replicas", consumed: []string{"web_idle"}},
		{name: "a down alert within cooldown_down waits", st: func() ServiceState {
			s := svc(5, 5)
			s.Rules.Prometheus = nil
			s.LastScaleUp = svcNow.Add(-time.Minute)
			s.Alerts = []ServiceAlert{down("web_idle", 1)}
			return s
		}, to: 5, dir: ScaleHold, code: CodeCooldownDown, msg: "but the service grew 1m0s ago, within cooldown_down 5m0s: hold at 5"},
		{name: "cooldown_down after a scale-down", st: func() ServiceState {
			s := svc(5, 5)
			s.Rules.Prometheus = nil
			s.LastScaleDown = svcNow.Add(-4 * time.Minute)
			s.Alerts = []ServiceAlert{down("web_idle", 1)}
			return s
		}, to: 5, dir: ScaleHold, code: CodeCooldownDown, msg: "shrank 4m0s ago"},
		{name: "cooldown_up holds an alert, which waits", st: func() ServiceState {
			s := svc(5, 5)
			s.LastScaleUp = svcNow.Add(-10 * time.Second)
			s.Rules.Prometheus = nil
			s.Alerts = []ServiceAlert{up("Hot", 1)}
			return s
		}, to: 5, dir: ScaleHold, code: CodeCooldownUp, msg: "grew 10s ago, within cooldown_up 30s: hold at 5"},
		{name: "cooldowns are separate: up after cooldown_up within cooldown_down", st: func() ServiceState {
			s := svc(5, 5)
			s.LastScaleUp = svcNow.Add(-time.Minute)
			s.Rules.Prometheus = nil
			s.Alerts = []ServiceAlert{up("Hot", 1)}
			return s
		}, to: 6, dir: ScaleUp, code: CodeAlert, consumed: []string{"Hot"}},
		{name: "up wins over down, both answered", st: func() ServiceState {
			s := svc(5, 5)
			s.Rules.Prometheus = nil
			s.Alerts = []ServiceAlert{down("Idle", 1), up("Hot", 1)}
			return s
		}, to: 6, dir: ScaleUp, code: CodeAlert, consumed: []string{"Hot", "Idle"}},
		{name: "a resolved alert does not vote", st: func() ServiceState {
			s := svc(5, 5)
			s.Rules.Prometheus = nil
			s.Alerts = []ServiceAlert{{Name: "Hot", Direction: ScaleUp, Step: 1}}
			return s
		}, to: 5, dir: ScaleHold, code: CodeNoCheck, msg: "no check asks for a size and no alert fires"},
		{name: "above max_replicas is brought back by max_step", st: func() ServiceState { return svc(20, 20, loadSample(1000, time.Second)) },
			to: 17, dir: ScaleDown, code: CodeMaxSize, msg: "more than max_replicas 10: shrink to 17, limited by max_step 3"},
		{name: "below min_replicas even on a stale metric", st: func() ServiceState {
			s := svc(0, 0, loadSample(0, time.Hour))
			s.Rules.MinReplicas = 2
			return s
		}, to: 2, dir: ScaleUp, code: CodeMinSize, msg: "fewer than min_replicas 2: grow to 2"},
		{name: "global services are refused", st: func() ServiceState { s := svc(3, 3, loadSample(500, time.Second)); s.Mode = ServiceGlobal; return s },
			to: 3, dir: ScaleHold, code: CodeNotReplicated, msg: "the service is global: it has no replica count to size"},
		{name: "another controller", st: func() ServiceState {
			s := svc(3, 3, loadSample(500, time.Second))
			s.Controller = "docker-scaler"
			return s
		}, to: 3, dir: ScaleHold, code: CodeOtherController, msg: "its label autarky.scale.controller=docker-scaler gives its replicas to another controller"},
		{name: "disabled", st: func() ServiceState { s := svc(3, 3, loadSample(500, time.Second)); s.Rules.Enabled = false; return s },
			to: 3, dir: ScaleHold, code: CodeDisabled},
		{name: "dry run decides and says so", st: func() ServiceState { s := svc(2, 2, loadSample(100, time.Second)); s.Rules.DryRun = true; return s },
			to: 4, dir: ScaleUp, code: CodeTargetTracking, msg: "dry run, nothing written: "},
		{name: "stabilisation window", st: func() ServiceState {
			s := svc(6, 6, loadSample(10, time.Second))
			s.Recommendations = []Recommendation{{At: svcNow.Add(-2 * time.Minute), Size: 6}}
			return s
		}, to: 6, dir: ScaleHold, code: CodeStabilization, msg: "the checks recommended 6 replicas 2m0s ago, within the stabilisation window"},
		{name: "stabilisation window bounds a scale-in", st: func() ServiceState {
			s := svc(6, 6, loadSample(10, time.Second))
			s.Recommendations = []Recommendation{{At: svcNow.Add(-2 * time.Minute), Size: 5}, {At: svcNow.Add(-6 * time.Minute), Size: 6}}
			return s
		}, to: 5, dir: ScaleDown, code: CodeStabilization, msg: "shrink from 6 to 5, the highest the checks recommended"},
		{name: "thresholds", st: func() ServiceState {
			s := svc(3, 3, CheckSample{Name: "load", Kind: CheckPrometheus, Value: 0.9, SampleTime: svcNow, Upper: fp(0.8), Lower: fp(0.2), Step: 2})
			s.Rules.Prometheus[0].TargetValue, s.Rules.Prometheus[0].Upper, s.Rules.Prometheus[0].Lower = nil, fp(0.8), fp(0.2)
			return s
		}, to: 5, dir: ScaleUp, code: CodeThreshold, msg: "value 0.9 is above upper 0.8: 2 replicas more"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := tt.st()
			d := decideOne(t, st)
			if d.To != tt.to || d.Direction != tt.dir || d.Code != tt.code {
				t.Fatalf("decision %d -> %d %s %s, want -> %d %s %s: %s", d.From, d.To, d.Direction, d.Code, tt.to, tt.dir, tt.code, d.Message)
			}
			if !strings.Contains(d.Message, tt.msg) {
				t.Fatalf("message %q lacks %q", d.Message, tt.msg)
			}
			if !reflect.DeepEqual(d.ConsumedAlerts, tt.consumed) {
				t.Fatalf("consumed %q, want %q (%s)", d.ConsumedAlerts, tt.consumed, d.Message)
			}
			if d.DryRun != st.Rules.DryRun {
				t.Fatalf("DryRun %v, want the policy's %v", d.DryRun, st.Rules.DryRun)
			}
		})
	}
}

func TestDecideServicesDuplicateName(t *testing.T) {
	ds := DecideServices(ServiceSnapshot{Now: svcNow, Services: []ServiceState{svc(2, 2, loadSample(100, 0)), svc(2, 2, loadSample(100, 0))}})
	if ds[0].Direction != ScaleUp || ds[1].Code != CodeInvalid || ds[1].To != 2 {
		t.Fatalf("decisions %+v", ds)
	}
}

// TestServiceScalingOverTime drives one service with a fake clock through a
// load step and its drop, remembering recommendations and applying each
// decision as the agent does, and checks the rules over the whole run:
// replicas stay in bounds, move by at most max_step, grow no sooner than
// cooldown_up after a scale-up, shrink no sooner than cooldown_down after
// any change, and never shrink while the metric is stale.
func TestServiceScalingOverTime(t *testing.T) {
	rules := svcRules()
	replicas := 1
	var lastUp, lastDown time.Time
	var recs []Recommendation
	var ups, downs int
	for sec := 0; sec <= 1800; sec += 5 {
		now := svcNow.Add(time.Duration(sec) * time.Second)
		load := 20.0 * float64(replicas) // per-replica load at 20 before the step
		switch {
		case sec >= 60 && sec < 600:
			load = 400 // total load of 400 over the replicas: 8 needed at 50 each
		case sec >= 600 && sec < 700:
			load = -1 // the exporter is gone: stale
		case sec >= 700:
			load = 60 // 2 needed
		}
		sample := CheckSample{Name: "load", Kind: CheckPrometheus, Value: load / float64(replicas), SampleTime: now, Target: fp(50)}
		if load < 0 {
			sample.Value, sample.SampleTime = 1, now.Add(-time.Minute)
		}
		st := ServiceState{Name: "web", Mode: ServiceReplicated, Replicas: replicas, Running: replicas, Rules: rules,
			LastScaleUp: lastUp, LastScaleDown: lastDown, Checks: []CheckSample{sample}, Recommendations: recs}
		d := DecideServices(ServiceSnapshot{Now: now, DefaultMaxSampleAge: 20 * time.Second, Services: []ServiceState{st}})[0]
		recs = RememberService(recs, d, now, rules.CooldownDown)
		if d.To < rules.MinReplicas || d.To > rules.MaxReplicas || d.To-d.From > rules.MaxStep || d.From-d.To > rules.MaxStep {
			t.Fatalf("t=%ds: %d -> %d breaks bounds or max_step: %s", sec, d.From, d.To, d.Message)
		}
		switch d.Direction {
		case ScaleUp:
			if !lastUp.IsZero() && now.Sub(lastUp) < rules.CooldownUp {
				t.Fatalf("t=%ds: grew %s after the last scale-up", sec, now.Sub(lastUp))
			}
			lastUp = now
			ups++
		case ScaleDown:
			for _, last := range []time.Time{lastUp, lastDown} {
				if !last.IsZero() && now.Sub(last) < rules.CooldownDown {
					t.Fatalf("t=%ds: shrank %s after a change: %s", sec, now.Sub(last), d.Message)
				}
			}
			if sec >= 600 && sec < 700 {
				t.Fatalf("t=%ds: shrank on a stale metric: %s", sec, d.Message)
			}
			lastDown = now
			downs++
		}
		replicas = d.To
		if sec == 595 && replicas != 8 {
			t.Fatalf("after the load step: %d replicas, want 8", replicas)
		}
	}
	if replicas != 2 {
		t.Fatalf("after the load dropped: %d replicas, want 2", replicas)
	}
	if ups < 3 || downs < 2 || ups+downs > 8 {
		t.Fatalf("%d scale-ups and %d scale-downs: want a few steps of at most max_step each way, no flapping", ups, downs)
	}
}
