package policy

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func i64(n int64) *int64     { return &n }
func f64(v float64) *float64 { return &v }
func intPtr(n int) *int      { return &n }
func validScaling() Scaling {
	s := DefaultScaling("prod/workers")
	s.PendingTasks = &PendingTasksCheck{}
	return s
}
func cpuTarget() PrometheusCheck {
	return PrometheusCheck{Name: "cpu", Address: "http://prometheus:9090", Query: "avg(rate(cpu[1m]))", TargetValue: f64(0.6)}
}

func TestDefaultScaling(t *testing.T) {
	s := DefaultScaling("prod/workers")
	want := Scaling{
		PoolID:             "prod/workers",
		EvaluationInterval: "10s",
		CooldownUp:         "30s",
		CooldownDown:       "5m",
		ScaleInAfter:       "2m",
		MaxStep:            5,
		DrainTimeout:       "5m",
		NodeSelector:       "empty_first",
		ProvisionTimeout:   "15m",
		Enabled:            true,
	}
	want.MaxDisruptedPercent = 10
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("DefaultScaling = %+v, want %+v", s, want)
	}
	// The defaults lack only a check.
	if err := s.Validate(); err == nil || err.Error() != "a scaling policy needs at least one check: pending_tasks, prometheus or alert" {
		t.Fatalf("Validate() of the check-less default = %v", err)
	}
	if err := validScaling().Validate(); err != nil {
		t.Fatalf("default policy with pending_tasks does not validate: %v", err)
	}
}

func TestScalingValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Scaling)
		wantErr string // empty: valid
	}{
		{name: "defaults with pending_tasks", edit: func(*Scaling) {}},
		{name: "disabled is valid", edit: func(s *Scaling) { s.Enabled = false }},
		{name: "only prometheus", edit: func(s *Scaling) { s.PendingTasks = nil; s.Prometheus = []PrometheusCheck{cpuTarget()} }},
		{name: "only alert", edit: func(s *Scaling) { s.PendingTasks = nil; s.Alert = []AlertCheck{{Name: "HighLoad"}} }},
		{name: "alert step 100", edit: func(s *Scaling) { s.Alert = []AlertCheck{{Name: "HighLoad", Step: 100}} }},
		{name: "bounds", edit: func(s *Scaling) { s.MinSize, s.MaxSize = i64(0), i64(1) }},
		{name: "equal bounds", edit: func(s *Scaling) { s.MinSize, s.MaxSize = i64(3), i64(3) }},
		{name: "only min", edit: func(s *Scaling) { s.MinSize = i64(4) }},
		{name: "only max", edit: func(s *Scaling) { s.MaxSize = i64(40) }},
		{name: "zero cooldowns", edit: func(s *Scaling) { s.CooldownUp, s.CooldownDown, s.ScaleInAfter = "0s", "0", "0s" }},
		{name: "max_step 1", edit: func(s *Scaling) { s.MaxStep = 1 }},
		{name: "max_step 100", edit: func(s *Scaling) { s.MaxStep = 100 }},
		{name: "max_disrupted_percent 1", edit: func(s *Scaling) { s.MaxDisruptedPercent = 1 }},
		{name: "max_disrupted_percent 100", edit: func(s *Scaling) { s.MaxDisruptedPercent = 100 }},
		{name: "max_disrupted_percent unset (stored before it existed)", edit: func(s *Scaling) { s.MaxDisruptedPercent = 0 }},
		{name: "least_busy", edit: func(s *Scaling) { s.NodeSelector = "least_busy" }},
		{name: "oldest", edit: func(s *Scaling) { s.NodeSelector = "oldest" }},
		{name: "newest", edit: func(s *Scaling) { s.NodeSelector = "newest" }},
		{name: "max_sample_age", edit: func(s *Scaling) { s.MaxSampleAge = "1m" }},
		{name: "provision_timeout", edit: func(s *Scaling) { s.ProvisionTimeout = "30m" }},
		{name: "provision_timeout empty is the default", edit: func(s *Scaling) { s.ProvisionTimeout = "" }},
		{name: "https address", edit: func(s *Scaling) {
			c := cpuTarget()
			c.Address = "https://prom.example.com/prometheus"
			s.Prometheus = []PrometheusCheck{c}
		}},
		{name: "thresholds", edit: func(s *Scaling) {
			s.Prometheus = []PrometheusCheck{{Name: "queue_depth", Address: "http://p:9090", Query: "q", Upper: f64(100), Lower: f64(10), Step: 3}}
		}},
		{name: "upper only", edit: func(s *Scaling) {
			s.Prometheus = []PrometheusCheck{{Name: "q", Address: "http://p:9090", Query: "q", Upper: f64(100)}}
		}},
		{name: "lower only, negative", edit: func(s *Scaling) {
			s.Prometheus = []PrometheusCheck{{Name: "q", Address: "http://p:9090", Query: "q", Lower: f64(-5)}}
		}},
		{name: "same name in prometheus and alert", edit: func(s *Scaling) {
			s.Prometheus = []PrometheusCheck{cpuTarget()}
			s.Alert = []AlertCheck{{Name: "cpu"}}
		}},

		{name: "empty pool id", edit: func(s *Scaling) { s.PoolID = "" },
			wantErr: `node_pool_id: node pool id "" is not of the form <cluster name>/<pool name>`},
		{name: "negative min", edit: func(s *Scaling) { s.MinSize = i64(-1) },
			wantErr: `min_size is -1: it must be 0 or more`},
		{name: "zero max", edit: func(s *Scaling) { s.MaxSize = i64(0) },
			wantErr: `max_size is 0: it must be 1 or more`},
		{name: "min above max", edit: func(s *Scaling) { s.MinSize, s.MaxSize = i64(5), i64(2) },
			wantErr: `min_size (5) is greater than max_size (2)`},
		{name: "evaluation_interval empty", edit: func(s *Scaling) { s.EvaluationInterval = "" },
			wantErr: `evaluation_interval: "" is not a duration`},
		{name: "evaluation_interval zero", edit: func(s *Scaling) { s.EvaluationInterval = "0s" },
			wantErr: `evaluation_interval: "0s" is out of range: use 100ms to 1h`},
		{name: "cooldown_up negative", edit: func(s *Scaling) { s.CooldownUp = "-1s" },
			wantErr: `cooldown_up: "-1s" is negative`},
		{name: "cooldown_down not a duration", edit: func(s *Scaling) { s.CooldownDown = "5" },
			wantErr: `cooldown_down: "5" is not a duration`},
		{name: "scale_in_after bad", edit: func(s *Scaling) { s.ScaleInAfter = "later" },
			wantErr: `scale_in_after: "later" is not a duration`},
		{name: "max_step 0", edit: func(s *Scaling) { s.MaxStep = 0 },
			wantErr: `max_step: 0 is not allowed: use 1 to 100`},
		{name: "max_step 101", edit: func(s *Scaling) { s.MaxStep = 101 },
			wantErr: `max_step: 101 is not allowed: use 1 to 100`},
		{name: "max_disrupted_percent negative", edit: func(s *Scaling) { s.MaxDisruptedPercent = -1 },
			wantErr: `max_disrupted_percent: -1 is not allowed: use 1 to 100`},
		{name: "max_disrupted_percent 101", edit: func(s *Scaling) { s.MaxDisruptedPercent = 101 },
			wantErr: `max_disrupted_percent: 101 is not allowed: use 1 to 100`},
		{name: "drain_timeout zero", edit: func(s *Scaling) { s.DrainTimeout = "0s" },
			wantErr: `drain_timeout: "0s" is too short`},
		{name: "node_selector random", edit: func(s *Scaling) { s.NodeSelector = "random" },
			wantErr: `node_selector: "random" is not allowed: use one of "empty_first", "least_busy", "oldest", "newest"`},
		{name: "node_selector empty", edit: func(s *Scaling) { s.NodeSelector = "" },
			wantErr: `node_selector: "" is not allowed`},
		{name: "max_sample_age zero", edit: func(s *Scaling) { s.MaxSampleAge = "0s" },
			wantErr: `max_sample_age: "0s" is too short`},
		{name: "max_sample_age bad", edit: func(s *Scaling) { s.MaxSampleAge = "old" },
			wantErr: `max_sample_age: "old" is not a duration`},
		{name: "provision_timeout too short", edit: func(s *Scaling) { s.ProvisionTimeout = "1s" },
			wantErr: `provision_timeout: "1s" is too short: a new instance needs time to boot and join the swarm, and would be terminated before it could; use at least 5s (the default is 15m)`},
		{name: "provision_timeout bad", edit: func(s *Scaling) { s.ProvisionTimeout = "soon" },
			wantErr: `provision_timeout: "soon" is not a duration`},
		{name: "no check", edit: func(s *Scaling) { s.PendingTasks = nil },
			wantErr: `a scaling policy needs at least one check: pending_tasks, prometheus or alert`},
		{name: "prometheus name empty", edit: func(s *Scaling) { c := cpuTarget(); c.Name = ""; s.Prometheus = []PrometheusCheck{c} },
			wantErr: `prometheus[0].name: "" is not a check name`},
		{name: "prometheus name upper case", edit: func(s *Scaling) { c := cpuTarget(); c.Name = "CPU"; s.Prometheus = []PrometheusCheck{c} },
			wantErr: `prometheus[0].name: "CPU" is not a check name`},
		{name: "prometheus name repeated", edit: func(s *Scaling) { s.Prometheus = []PrometheusCheck{cpuTarget(), cpuTarget()} },
			wantErr: `prometheus[1].name: "cpu" is used by prometheus[0]: names must be unique`},
		{name: "prometheus address not http", edit: func(s *Scaling) { c := cpuTarget(); c.Address = "ftp://p"; s.Prometheus = []PrometheusCheck{c} },
			wantErr: `prometheus[0].address: "ftp://p" is not an http(s) URL`},
		{name: "prometheus address without host", edit: func(s *Scaling) { c := cpuTarget(); c.Address = "http://"; s.Prometheus = []PrometheusCheck{c} },
			wantErr: `prometheus[0].address: "http://" is not an http(s) URL`},
		{name: "prometheus address empty", edit: func(s *Scaling) { c := cpuTarget(); c.Address = ""; s.Prometheus = []PrometheusCheck{c} },
			wantErr: `prometheus[0].address: "" is not an http(s) URL`},
		{name: "prometheus query empty", edit: func(s *Scaling) { c := cpuTarget(); c.Query = " "; s.Prometheus = []PrometheusCheck{c} },
			wantErr: `prometheus[0].query: must not be empty`},
		{name: "prometheus query does not parse", edit: func(s *Scaling) { c := cpuTarget(); c.Query = "avg(rate(x[1m]"; s.Prometheus = []PrometheusCheck{c} },
			wantErr: `prometheus[0].query: check "cpu": "avg(rate(x[1m]" is not valid PromQL: 1:15: parse error: unclosed left parenthesis`},
		{name: "prometheus query wrong argument type", edit: func(s *Scaling) { c := cpuTarget(); c.Query = "rate(x)"; s.Prometheus = []PrometheusCheck{c} },
			wantErr: `prometheus[0].query: check "cpu": "rate(x)" is not valid PromQL: 1:6: parse error: expected type range vector in call to function "rate", got instant vector`},
		{name: "prometheus query returns a range vector", edit: func(s *Scaling) { c := cpuTarget(); c.Query = "x[1m]"; s.Prometheus = []PrometheusCheck{c} },
			wantErr: `prometheus[0].query: check "cpu": "x[1m]" returns a range vector: use an expression that returns an instant vector or a scalar`},
		{name: "target zero", edit: func(s *Scaling) { c := cpuTarget(); c.TargetValue = f64(0); s.Prometheus = []PrometheusCheck{c} },
			wantErr: `prometheus[0].target_value: must be greater than 0`},
		{name: "target negative", edit: func(s *Scaling) { c := cpuTarget(); c.TargetValue = f64(-1); s.Prometheus = []PrometheusCheck{c} },
			wantErr: `prometheus[0].target_value: must be greater than 0`},
		{name: "target NaN", edit: func(s *Scaling) {
			c := cpuTarget()
			c.TargetValue = f64(math.NaN())
			s.Prometheus = []PrometheusCheck{c}
		},
			wantErr: `prometheus[0].target_value: must be greater than 0`},
		{name: "target and thresholds", edit: func(s *Scaling) { c := cpuTarget(); c.Upper = f64(0.8); s.Prometheus = []PrometheusCheck{c} },
			wantErr: `prometheus[0]: set either target_value or upper and/or lower, not both`},
		{name: "neither target nor thresholds", edit: func(s *Scaling) { c := cpuTarget(); c.TargetValue = nil; s.Prometheus = []PrometheusCheck{c} },
			wantErr: `prometheus[0]: set target_value, or upper and/or lower`},
		{name: "step with target", edit: func(s *Scaling) { c := cpuTarget(); c.Step = 2; s.Prometheus = []PrometheusCheck{c} },
			wantErr: `prometheus[0].step: only applies to upper and lower`},
		{name: "lower above upper", edit: func(s *Scaling) {
			s.Prometheus = []PrometheusCheck{{Name: "q", Address: "http://p:9090", Query: "q", Upper: f64(1), Lower: f64(2)}}
		}, wantErr: `prometheus[0].lower: 2 must be less than upper (1)`},
		{name: "lower equals upper", edit: func(s *Scaling) {
			s.Prometheus = []PrometheusCheck{{Name: "q", Address: "http://p:9090", Query: "q", Upper: f64(1), Lower: f64(1)}}
		}, wantErr: `prometheus[0].lower: 1 must be less than upper (1)`},
		{name: "upper infinite", edit: func(s *Scaling) {
			s.Prometheus = []PrometheusCheck{{Name: "q", Address: "http://p:9090", Query: "q", Upper: f64(math.Inf(1))}}
		}, wantErr: `prometheus[0].upper: must be a finite number`},
		{name: "threshold step 101", edit: func(s *Scaling) {
			s.Prometheus = []PrometheusCheck{{Name: "q", Address: "http://p:9090", Query: "q", Upper: f64(1), Step: 101}}
		}, wantErr: `prometheus[0].step: 101 is not allowed: use 1 to 100`},
		{name: "threshold step negative", edit: func(s *Scaling) {
			s.Prometheus = []PrometheusCheck{{Name: "q", Address: "http://p:9090", Query: "q", Lower: f64(1), Step: -1}}
		}, wantErr: `prometheus[0].step: -1 is not allowed: use 1 to 100`},
		{name: "second check wrong", edit: func(s *Scaling) {
			c := cpuTarget()
			c.Name, c.TargetValue = "mem", f64(0)
			s.Prometheus = []PrometheusCheck{cpuTarget(), c}
		}, wantErr: `prometheus[1].target_value: must be greater than 0`},
		{name: "alert name empty", edit: func(s *Scaling) { s.Alert = []AlertCheck{{Name: ""}} },
			wantErr: `alert[0].name: must not be empty`},
		{name: "alert name spaces", edit: func(s *Scaling) { s.Alert = []AlertCheck{{Name: " HighLoad"}} },
			wantErr: `alert[0].name: " HighLoad" has leading or trailing spaces`},
		{name: "alert name repeated", edit: func(s *Scaling) { s.Alert = []AlertCheck{{Name: "A"}, {Name: "B"}, {Name: "A"}} },
			wantErr: `alert[2].name: "A" is used by alert[0]: names must be unique`},
		{name: "alert step 101", edit: func(s *Scaling) { s.Alert = []AlertCheck{{Name: "A", Step: 101}} },
			wantErr: `alert[0].step: 101 is not allowed: use 1 to 100`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validScaling()
			tt.edit(&s)
			err := s.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want error starting %q", tt.wantErr)
			}
			if !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %q, want it to start with %q", err, tt.wantErr)
			}
			// Rules must refuse exactly what Validate refuses.
			if _, rerr := s.Rules(); rerr == nil || !strings.Contains(rerr.Error(), err.Error()) {
				t.Fatalf("Rules() error = %v, want it to contain %q", rerr, err)
			}
		})
	}
}

// Credentials in a Prometheus address are refused and never repeated.
func TestScalingAddressCredentials(t *testing.T) {
	for _, addr := range []string{"http://admin:s3cret@prom:9090", "ftp://admin:s3cret@prom", "http://admin:s3cret@[::1"} {
		s := validScaling()
		c := cpuTarget()
		c.Address = addr
		s.Prometheus = []PrometheusCheck{c}
		err := s.Validate()
		if err == nil {
			t.Fatalf("address %q accepted", addr)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Fatalf("error %q repeats the credentials", err)
		}
		if !strings.HasPrefix(err.Error(), "prometheus[0].address: ") {
			t.Fatalf("error %q does not name the field", err)
		}
	}
}

func TestScalingRules(t *testing.T) {
	tests := []struct {
		name string
		in   Scaling
		want ScalingRules
	}{
		{
			name: "defaults",
			in:   validScaling(),
			want: ScalingRules{
				EvaluationInterval: 10 * time.Second,
				CooldownUp:         30 * time.Second,
				CooldownDown:       5 * time.Minute,
				ScaleInAfter:       2 * time.Minute,
				MaxStep:            5,
				DrainTimeout:       5 * time.Minute,
				NodeSelector:       "empty_first",
				MaxSampleAge:       20 * time.Second,
				ProvisionTimeout:   15 * time.Minute,
				PendingTasks:       true,
				Enabled:            true,
				// Resolved from the default.
				MaxDisruptedPercent: 10,
			},
		},
		{
			name: "everything set",
			in: Scaling{
				PoolID: "prod/web", MinSize: i64(2), MaxSize: i64(20),
				EvaluationInterval: "5s", CooldownUp: "1m", CooldownDown: "10m", ScaleInAfter: " 90s ",
				MaxStep: 3, DrainTimeout: "2m", NodeSelector: "oldest", MaxSampleAge: "45s", ProvisionTimeout: "20m",
				MaxDisruptedPercent: 25,
				Prometheus: []PrometheusCheck{
					cpuTarget(),
					{Name: "queue", Address: "https://p", Query: "sum(queue)", Upper: f64(100), Lower: f64(5)},
					{Name: "latency", Address: "https://p", Query: "p99", Upper: f64(0.5), Step: 4},
				},
				Alert: []AlertCheck{{Name: "HighLoad"}, {Name: "Burst", Step: 10}},
			},
			want: ScalingRules{
				MinSize: intPtr(2), MaxSize: intPtr(20),
				EvaluationInterval: 5 * time.Second, CooldownUp: time.Minute, CooldownDown: 10 * time.Minute,
				ScaleInAfter: 90 * time.Second, MaxStep: 3, DrainTimeout: 2 * time.Minute,
				NodeSelector: "oldest", MaxSampleAge: 45 * time.Second, ProvisionTimeout: 20 * time.Minute,
				MaxDisruptedPercent: 25,
				Prometheus: []PrometheusRule{
					{Name: "cpu", Address: "http://prometheus:9090", Query: "avg(rate(cpu[1m]))", TargetValue: f64(0.6)},
					{Name: "queue", Address: "https://p", Query: "sum(queue)", Upper: f64(100), Lower: f64(5), Step: 1},
					{Name: "latency", Address: "https://p", Query: "p99", Upper: f64(0.5), Step: 4},
				},
				Alert: []AlertRule{{Name: "HighLoad", Step: 1}, {Name: "Burst", Step: 10}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.in.Rules()
			if err != nil {
				t.Fatalf("Rules() error: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Rules() = %+v\nwant     %+v", got, tt.want)
			}
		})
	}
}

// The rules do not share memory with the policy they came from.
func TestScalingRulesCopy(t *testing.T) {
	s := validScaling()
	s.MinSize = i64(1)
	s.Prometheus = []PrometheusCheck{cpuTarget()}
	r, err := s.Rules()
	if err != nil {
		t.Fatal(err)
	}
	*s.MinSize = 7
	*s.Prometheus[0].TargetValue = 9
	if *r.MinSize != 1 || *r.Prometheus[0].TargetValue != 0.6 {
		t.Fatalf("rules changed with the policy: %+v", r)
	}
}

func TestScalingRulesErrorNamesPool(t *testing.T) {
	s := validScaling()
	s.MaxStep = 0
	_, err := s.Rules()
	want := `scaling policy for "prod/workers": max_step: 0 is not allowed: use 1 to 100`
	if err == nil || err.Error() != want {
		t.Fatalf("Rules() error = %v, want %q", err, want)
	}
}

func TestScalingBounds(t *testing.T) {
	tests := []struct {
		name             string
		min, max         *int
		poolMin, poolMax int
		lo, hi           int
	}{
		{"the pool's", nil, nil, 1, 10, 1, 10},
		{"narrower", intPtr(2), intPtr(8), 1, 10, 2, 8},
		{"only min", intPtr(3), nil, 1, 10, 3, 10},
		{"only max", nil, intPtr(4), 1, 10, 1, 4},
		{"wider is cut to the pool's", intPtr(0), intPtr(50), 1, 10, 1, 10},
		{"min above the pool's max", intPtr(12), intPtr(15), 1, 10, 10, 10},
		{"max below the pool's min", intPtr(0), intPtr(1), 3, 10, 3, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ScalingRules{MinSize: tt.min, MaxSize: tt.max}
			lo, hi := r.Bounds(tt.poolMin, tt.poolMax)
			if lo != tt.lo || hi != tt.hi {
				t.Fatalf("Bounds(%d, %d) = [%d, %d], want [%d, %d]", tt.poolMin, tt.poolMax, lo, hi, tt.lo, tt.hi)
			}
		})
	}
}

func TestScalingJSON(t *testing.T) {
	in := validScaling()
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"node_pool_id":"prod/workers","evaluation_interval":"10s","cooldown_up":"30s","cooldown_down":"5m","scale_in_after":"2m","max_step":5,"drain_timeout":"5m","node_selector":"empty_first","max_sample_age":"","provision_timeout":"15m","max_disrupted_percent":10,"pending_tasks":{},"enabled":true}`
	if string(b) != want {
		t.Fatalf("json = %s\nwant   %s", b, want)
	}

	full := validScaling()
	full.MinSize, full.MaxSize = i64(0), i64(9)
	full.Prometheus = []PrometheusCheck{cpuTarget(), {Name: "q", Address: "http://p:9090", Query: "q", Upper: f64(2), Lower: f64(1), Step: 2}}
	full.Alert = []AlertCheck{{Name: "HighLoad", Step: 3}}
	for _, s := range []Scaling{in, full} {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var out Scaling
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(out, s) {
			t.Fatalf("round trip = %+v, want %+v", out, s)
		}
	}
	b, _ = json.Marshal(full)
	for _, key := range []string{`"min_size":0`, `"max_size":9`, `"target_value":0.6`, `"upper":2`, `"lower":1`, `"step":2`, `"alert":[{"name":"HighLoad","step":3}]`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("json %s lacks %s", b, key)
		}
	}
}
