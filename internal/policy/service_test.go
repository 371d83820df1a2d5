package policy

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func validServiceScaling() ServiceScaling {
	s := DefaultServiceScaling("shop_web", 10)
	s.Prometheus = []PrometheusCheck{{Name: "rps", Address: "http://prometheus:9090", Query: `sum(rate(http_requests_total{service="web"}[1m]))`, TargetValue: f64(50)}}
	return s
}

func TestServiceScalingValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*ServiceScaling)
		wantErr string // empty: valid
	}{
		{name: "defaults with a target", edit: func(*ServiceScaling) {}},
		{name: "no check: routed alerts only", edit: func(s *ServiceScaling) { s.Prometheus = nil }},
		{name: "terraform policy", edit: func(s *ServiceScaling) { s.ClusterID = "prod" }},
		{name: "stack service name", edit: func(s *ServiceScaling) { s.Service = "My-Stack_web-1" }},
		{name: "min 0", edit: func(s *ServiceScaling) { s.MinReplicas = 0 }},
		{name: "equal bounds", edit: func(s *ServiceScaling) { s.MinReplicas, s.MaxReplicas = 4, 4 }},
		{name: "thresholds", edit: func(s *ServiceScaling) {
			s.Prometheus[0].TargetValue, s.Prometheus[0].Upper, s.Prometheus[0].Lower, s.Prometheus[0].Step = nil, f64(0.8), f64(0.2), 2
		}},
		{name: "alerts", edit: func(s *ServiceScaling) { s.Alert = []AlertCheck{{Name: "WebSlow", Step: 3}, {Name: "WebIdle"}} }},
		{name: "dry run", edit: func(s *ServiceScaling) { s.DryRun = true }},
		{name: "zero cooldowns", edit: func(s *ServiceScaling) { s.CooldownUp, s.CooldownDown = "0s", "0" }},
		{name: "max_sample_age", edit: func(s *ServiceScaling) { s.MaxSampleAge = "30s" }},

		{name: "bad cluster", edit: func(s *ServiceScaling) { s.ClusterID = "Prod" }, wantErr: `cluster_id: "Prod" is not a DNS label`},
		{name: "empty service", edit: func(s *ServiceScaling) { s.Service = "" }, wantErr: `service: "" is not a Swarm service name: use 1 to 63 letters, digits, '-' and '_'`},
		{name: "service with a dot", edit: func(s *ServiceScaling) { s.Service = "a.b" }, wantErr: `service: "a.b" is not a Swarm service name`},
		{name: "service too long", edit: func(s *ServiceScaling) { s.Service = strings.Repeat("a", 64) }, wantErr: `is not a Swarm service name`},
		{name: "negative min", edit: func(s *ServiceScaling) { s.MinReplicas = -1 }, wantErr: "min_replicas is -1: use 0 to 100000"},
		{name: "max 0", edit: func(s *ServiceScaling) { s.MinReplicas, s.MaxReplicas = 0, 0 }, wantErr: "max_replicas is 0: use 1 to 100000"},
		{name: "max too large", edit: func(s *ServiceScaling) { s.MaxReplicas = 100001 }, wantErr: "max_replicas is 100001: use 1 to 100000"},
		{name: "min over max", edit: func(s *ServiceScaling) { s.MinReplicas, s.MaxReplicas = 5, 3 }, wantErr: "min_replicas (5) is greater than max_replicas (3)"},
		{name: "bad cooldown_up", edit: func(s *ServiceScaling) { s.CooldownUp = "soon" }, wantErr: `cooldown_up: "soon" is not a duration`},
		{name: "negative cooldown_down", edit: func(s *ServiceScaling) { s.CooldownDown = "-1s" }, wantErr: `cooldown_down: "-1s" is negative`},
		{name: "max_step 0", edit: func(s *ServiceScaling) { s.MaxStep = 0 }, wantErr: "max_step: 0 is not allowed: use 1 to 100"},
		{name: "scale_up_by too big", edit: func(s *ServiceScaling) { s.ScaleUpBy = 101 }, wantErr: "scale_up_by: 101 is not allowed: use 1 to 100"},
		{name: "scale_down_by negative", edit: func(s *ServiceScaling) { s.ScaleDownBy = -1 }, wantErr: "scale_down_by: -1 is not allowed: use 1 to 100"},
		{name: "max_sample_age too short", edit: func(s *ServiceScaling) { s.MaxSampleAge = "100ms" }, wantErr: `max_sample_age: "100ms" is too short: use at least 1s`},
		{name: "target and threshold", edit: func(s *ServiceScaling) { s.Prometheus[0].Upper = f64(1) }, wantErr: "prometheus[0]: set either target_value or upper and/or lower, not both"},
		{name: "query does not parse", edit: func(s *ServiceScaling) { s.Prometheus[0].Query = "sum(" }, wantErr: `prometheus[0].query: check "rps": "sum(" is not valid PromQL`},
		{name: "address with credentials", edit: func(s *ServiceScaling) { s.Prometheus[0].Address = "http://u:p@prometheus" }, wantErr: "prometheus[0].address: must not hold credentials"},
		{name: "duplicate check", edit: func(s *ServiceScaling) { s.Prometheus = append(s.Prometheus, s.Prometheus[0]) }, wantErr: `prometheus[1].name: "rps" is used by prometheus[0]`},
		{name: "empty alert", edit: func(s *ServiceScaling) { s.Alert = []AlertCheck{{Name: " "}} }, wantErr: "alert[0].name: must not be empty"},
		{name: "duplicate alert", edit: func(s *ServiceScaling) { s.Alert = []AlertCheck{{Name: "A"}, {Name: "A"}} }, wantErr: `alert[1].name: "A" is used by alert[0]`},
		{name: "alert step", edit: func(s *ServiceScaling) { s.Alert = []AlertCheck{{Name: "A", Step: 500}} }, wantErr: "alert[0].step: 500 is not allowed: use 1 to 100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validServiceScaling()
			tt.edit(&s)
			err := s.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				if _, err := s.Rules(); err != nil {
					t.Fatalf("Rules() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.wantErr)
			}
			if _, rerr := s.Rules(); rerr == nil || !strings.HasPrefix(rerr.Error(), `service scaling policy for "`+s.Service+`": `) {
				t.Fatalf("Rules() = %v, want the policy named before %v", rerr, err)
			}
		})
	}
}

func TestServiceScalingRulesAndJSON(t *testing.T) {
	s := validServiceScaling()
	s.ClusterID = "prod"
	s.MinReplicas, s.MaxReplicas = 2, 20
	s.ScaleUpBy, s.ScaleDownBy = 0, 3
	s.MaxSampleAge = "45s"
	s.Alert = []AlertCheck{{Name: "WebSlow", Step: 4}, {Name: "WebBusy"}}
	s.DryRun = true
	r, err := s.Rules()
	if err != nil {
		t.Fatal(err)
	}
	want := ServiceScalingRules{
		Service: "shop_web", MinReplicas: 2, MaxReplicas: 20, CooldownUp: 30 * time.Second, CooldownDown: 5 * time.Minute,
		MaxStep: 10, ScaleUpBy: 1, ScaleDownBy: 3, MaxSampleAge: 45 * time.Second,
		Prometheus: []PrometheusRule{{Name: "rps", Address: "http://prometheus:9090", Query: s.Prometheus[0].Query, TargetValue: f64(50)}},
		Alert:      []AlertRule{{Name: "WebSlow", Step: 4}, {Name: "WebBusy", Step: 1}},
		DryRun:     true, Enabled: true,
	}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("Rules() =\n%+v\nwant\n%+v", r, want)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"cluster_id":"prod"`, `"service":"shop_web"`, `"min_replicas":2`, `"max_replicas":20`, `"cooldown_up":"30s"`,
		`"cooldown_down":"5m"`, `"max_step":10`, `"scale_down_by":3`, `"max_sample_age":"45s"`, `"target_value":50`, `"dry_run":true`, `"enabled":true`} {
		if !strings.Contains(string(b), field) {
			t.Errorf("JSON %s lacks %s", b, field)
		}
	}
	var back ServiceScaling
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, s) {
		t.Fatalf("JSON round trip changed the policy:\n%+v\n%+v", back, s)
	}
}

func TestServiceScalingFromLabels(t *testing.T) {
	tests := []struct {
		name   string
		labels map[string]string
		want   func(*ServiceScaling) // edits DefaultServiceScaling("shop_web", 0); nil: no policy
	}{
		{name: "no labels", labels: nil},
		{name: "other labels only", labels: map[string]string{"com.docker.stack.namespace": "shop", "autarky.rebalance": "true", "com.df.notify": "true"}},
		{name: "controller alone asks for nothing", labels: map[string]string{LabelScaleController: "docker-scaler"}},
		{name: "autarky bounds", labels: map[string]string{LabelReplicasMin: "2", LabelReplicasMax: "8"},
			want: func(s *ServiceScaling) { s.MinReplicas, s.MaxReplicas = 2, 8 }},
		{name: "docker-scaler's labels as they are", labels: map[string]string{LabelDFScaleMin: "2", LabelDFScaleMax: "5", LabelDFScaleUpBy: "2", LabelDFScaleDownBy: "1"},
			want: func(s *ServiceScaling) { s.MinReplicas, s.MaxReplicas, s.ScaleUpBy, s.ScaleDownBy = 2, 5, 2, 1 }},
		{name: "docker-scaler's defaults for missing bounds", labels: map[string]string{LabelDFScaleUpBy: "3"},
			want: func(s *ServiceScaling) { s.MinReplicas, s.MaxReplicas, s.ScaleUpBy = 1, 5, 3 }},
		{name: "a large routed step raises max_step", labels: map[string]string{LabelDFScaleMax: "50", LabelDFScaleUpBy: "20"},
			want: func(s *ServiceScaling) { s.MaxReplicas, s.ScaleUpBy, s.MaxStep = 50, 20, 20 }},
		{name: "autarky labels win over com.df ones", labels: map[string]string{LabelDFScaleMin: "2", LabelDFScaleMax: "5", LabelReplicasMax: "9", LabelScaleUpBy: "4", LabelDFScaleUpBy: "2"},
			want: func(s *ServiceScaling) { s.MinReplicas, s.MaxReplicas, s.ScaleUpBy = 2, 9, 4 }},
		{name: "settings", labels: map[string]string{LabelReplicasMax: "6", LabelScaleMaxStep: "2", LabelScaleCooldownUp: "5s", LabelScaleCooldownDown: "1m",
			LabelScaleMaxSampleAge: "20s", LabelScaleDryRun: "true", LabelScaleEnabled: "false", LabelScaleController: "autarky"},
			want: func(s *ServiceScaling) {
				s.MaxReplicas, s.MaxStep, s.CooldownUp, s.CooldownDown, s.MaxSampleAge, s.DryRun, s.Enabled = 6, 2, "5s", "1m", "20s", true, false
			}},
		{name: "one metric with a target", labels: map[string]string{LabelReplicasMax: "10",
			"autarky.metric.address": "http://prometheus:9090", "autarky.metric.query": "avg(load)", "autarky.metric.target": "0.5"},
			want: func(s *ServiceScaling) {
				s.MaxReplicas = 10
				s.Prometheus = []PrometheusCheck{{Name: "metric", Address: "http://prometheus:9090", Query: "avg(load)", TargetValue: f64(0.5)}}
			}},
		{name: "named metrics with thresholds, and alerts", labels: map[string]string{LabelReplicasMax: "10",
			"autarky.metric.latency.address": "http://p:9090", "autarky.metric.latency.query": "max(lat)", "autarky.metric.latency.upper": "0.3", "autarky.metric.latency.step": "2",
			"autarky.metric.cpu.address": "http://p:9090", "autarky.metric.cpu.query": "avg(cpu)", "autarky.metric.cpu.lower": "0.1",
			"autarky.alert.WebSlow": "3", "autarky.alert.WebBusy": " 1 "},
			want: func(s *ServiceScaling) {
				s.MaxReplicas = 10
				s.Prometheus = []PrometheusCheck{
					{Name: "cpu", Address: "http://p:9090", Query: "avg(cpu)", Lower: f64(0.1)},
					{Name: "latency", Address: "http://p:9090", Query: "max(lat)", Upper: f64(0.3), Step: 2},
				}
				s.Alert = []AlertCheck{{Name: "WebBusy", Step: 1}, {Name: "WebSlow", Step: 3}}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ok, err := ServiceScalingFromLabels("shop_web", tt.labels)
			if err != nil {
				t.Fatalf("ServiceScalingFromLabels() error %v", err)
			}
			if tt.want == nil {
				if ok {
					t.Fatalf("ServiceScalingFromLabels() = %+v, want no policy", s)
				}
				return
			}
			if !ok {
				t.Fatal("ServiceScalingFromLabels() found no policy")
			}
			want := DefaultServiceScaling("shop_web", 0)
			tt.want(&want)
			if !reflect.DeepEqual(s, want) {
				t.Fatalf("ServiceScalingFromLabels() =\n%+v\nwant\n%+v", s, want)
			}
		})
	}
}

func TestServiceScalingFromLabelsRefusals(t *testing.T) {
	base := func(extra map[string]string) map[string]string {
		m := map[string]string{LabelReplicasMax: "10"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name    string
		labels  map[string]string
		wantErr string
	}{
		{name: "autarky labels without a maximum", labels: map[string]string{LabelReplicasMin: "1"},
			wantErr: "label autarky.replicas.max: missing: a service scaled by autarky labels needs its most replicas (or docker-scaler's com.df.scaleMax)"},
		{name: "not a number", labels: map[string]string{LabelReplicasMax: "ten"}, wantErr: `label autarky.replicas.max: "ten" is not a whole number`},
		{name: "df not a number", labels: map[string]string{LabelDFScaleMin: "1.5"}, wantErr: `label com.df.scaleMin: "1.5" is not a whole number`},
		{name: "df min over max", labels: map[string]string{LabelDFScaleMin: "6", LabelDFScaleMax: "5"},
			wantErr: "label com.df.scaleMin: min_replicas (6) is greater than max_replicas (5)"},
		{name: "df min over the default max", labels: map[string]string{LabelDFScaleMin: "6"},
			wantErr: "label com.df.scaleMin: min_replicas (6) is greater than max_replicas (5)"},
		{name: "max 0", labels: map[string]string{LabelReplicasMin: "0", LabelReplicasMax: "0"}, wantErr: "label autarky.replicas.max: max_replicas is 0: use 1 to 100000"},
		{name: "up_by 0", labels: base(map[string]string{LabelDFScaleUpBy: "0"}), wantErr: ""},
		{name: "down_by too big", labels: base(map[string]string{LabelScaleDownBy: "101"}), wantErr: "label autarky.scale.down_by: scale_down_by: 101 is not allowed: use 1 to 100"},
		{name: "bad cooldown", labels: base(map[string]string{LabelScaleCooldownUp: "fast"}), wantErr: `label autarky.scale.cooldown_up: cooldown_up: "fast" is not a duration`},
		{name: "bad bool", labels: base(map[string]string{LabelScaleDryRun: "yes please"}), wantErr: `label autarky.scale.dry_run: "yes please" is not allowed: use "true" or "false"`},
		{name: "unknown replicas label", labels: base(map[string]string{"autarky.replicas.maximum": "3"}), wantErr: "label autarky.replicas.maximum: is not an autarky label: use \"autarky.replicas.min\""},
		{name: "unknown scale label", labels: base(map[string]string{"autarky.scale.cooldown": "3s"}), wantErr: "label autarky.scale.cooldown: is not an autarky label"},
		{name: "unknown metric field", labels: base(map[string]string{"autarky.metric.targetvalue": "3"}),
			wantErr: `label autarky.metric.targetvalue: "targetvalue" is not a check field: use autarky.metric[.<name>].<field> with a field of "address", "lower", "query", "step", "target", "upper"`},
		{name: "metric target not a number", labels: base(map[string]string{"autarky.metric.target": "high"}), wantErr: `label autarky.metric.target: "high" is not a number`},
		{name: "metric without query", labels: base(map[string]string{"autarky.metric.address": "http://p:9090", "autarky.metric.target": "3"}),
			wantErr: "label autarky.metric.query: prometheus[0].query: must not be empty"},
		{name: "metric query does not parse", labels: base(map[string]string{"autarky.metric.lat.address": "http://p:9090", "autarky.metric.lat.query": "rate(x[1m]", "autarky.metric.lat.upper": "1"}),
			wantErr: `label autarky.metric.lat.query: prometheus[0].query: check "lat"`},
		{name: "metric without target or thresholds", labels: base(map[string]string{"autarky.metric.address": "http://p:9090", "autarky.metric.query": "up"}),
			wantErr: "label autarky.metric.*: prometheus[0]: set target_value, or upper and/or lower"},
		{name: "metric name upper-case", labels: base(map[string]string{"autarky.metric.Lat.address": "http://p:9090", "autarky.metric.Lat.query": "up", "autarky.metric.Lat.upper": "1"}),
			wantErr: `label autarky.metric.Lat.*: prometheus[0].name: "Lat" is not a check name`},
		{name: "alert step not a number", labels: base(map[string]string{"autarky.alert.WebSlow": "many"}), wantErr: `label autarky.alert.WebSlow: "many" is not a whole number: use the replicas the alert adds, 1 to 100`},
		{name: "alert step 0", labels: base(map[string]string{"autarky.alert.WebSlow": "0"}), wantErr: "label autarky.alert.WebSlow: 0 is not allowed"},
		{name: "alert step too big", labels: base(map[string]string{"autarky.alert.WebSlow": "101"}), wantErr: "label autarky.alert.WebSlow: alert[0].step: 101 is not allowed: use 1 to 100"},
		{name: "alert without a name", labels: base(map[string]string{"autarky.alert.": "1"}), wantErr: "label autarky.alert.: alert[0].name: must not be empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ok, err := ServiceScalingFromLabels("shop_web", tt.labels)
			if !ok {
				t.Fatal("the labels ask for scaling, but ok is false")
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("error %v, want none", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestControllerOf(t *testing.T) {
	for labels, want := range map[string]string{"": "", "autarky": "autarky", " docker-scaler ": "docker-scaler"} {
		m := map[string]string{}
		if labels != "" {
			m[LabelScaleController] = labels
		}
		if got := ControllerOf(m); got != want {
			t.Errorf("ControllerOf(%q) = %q, want %q", labels, got, want)
		}
	}
}
