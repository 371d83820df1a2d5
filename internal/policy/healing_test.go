package policy

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestDefaultHealing(t *testing.T) {
	h := DefaultHealing("prod/workers")
	want := Healing{
		PoolID:                    "prod/workers",
		UnhealthyAfter:            "5m",
		JoinTimeout:               "5m",
		MinNodeAge:                "10m",
		MaxUnhealthyPercent:       20,
		MaxConcurrentReplacements: 1,
		Enabled:                   true,
	}
	if h != want {
		t.Fatalf("DefaultHealing = %+v, want %+v", h, want)
	}
	if err := h.Validate(); err != nil {
		t.Fatalf("default policy does not validate: %v", err)
	}
}

func TestHealingValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Healing)
		wantErr string // empty: valid
	}{
		{name: "defaults", edit: func(*Healing) {}},
		{name: "disabled is valid", edit: func(h *Healing) { h.Enabled = false }},
		{name: "zero unhealthy_after", edit: func(h *Healing) { h.UnhealthyAfter = "0s" }},
		{name: "bare zero", edit: func(h *Healing) { h.MinNodeAge = "0" }},
		{name: "long min_node_age", edit: func(h *Healing) { h.MinNodeAge = "1h30m" }},
		{name: "percent 1", edit: func(h *Healing) { h.MaxUnhealthyPercent = 1 }},
		{name: "percent 100", edit: func(h *Healing) { h.MaxUnhealthyPercent = 100 }},
		{name: "concurrency 10", edit: func(h *Healing) { h.MaxConcurrentReplacements = 10 }},
		{name: "join_timeout 1s", edit: func(h *Healing) { h.JoinTimeout = "1s" }},

		{name: "empty pool id", edit: func(h *Healing) { h.PoolID = "" },
			wantErr: `node_pool_id: node pool id "" is not of the form <cluster name>/<pool name>`},
		{name: "pool id without cluster", edit: func(h *Healing) { h.PoolID = "workers" },
			wantErr: `node_pool_id: node pool id "workers"`},
		{name: "unhealthy_after not a duration", edit: func(h *Healing) { h.UnhealthyAfter = "x" },
			wantErr: `unhealthy_after: "x" is not a duration`},
		{name: "unhealthy_after without unit", edit: func(h *Healing) { h.UnhealthyAfter = "30" },
			wantErr: `unhealthy_after: "30" is not a duration`},
		{name: "negative unhealthy_after", edit: func(h *Healing) { h.UnhealthyAfter = "-1s" },
			wantErr: `unhealthy_after: "-1s" is negative`},
		{name: "join_timeout empty", edit: func(h *Healing) { h.JoinTimeout = "" },
			wantErr: `join_timeout: "" is not a duration`},
		{name: "join_timeout zero", edit: func(h *Healing) { h.JoinTimeout = "0s" },
			wantErr: `join_timeout: "0s" is too short`},
		{name: "join_timeout below a second", edit: func(h *Healing) { h.JoinTimeout = "500ms" },
			wantErr: `join_timeout: "500ms" is too short`},
		{name: "min_node_age negative", edit: func(h *Healing) { h.MinNodeAge = "-5m" },
			wantErr: `min_node_age: "-5m" is negative`},
		{name: "percent 0", edit: func(h *Healing) { h.MaxUnhealthyPercent = 0 },
			wantErr: `max_unhealthy_percent: 0 is not allowed: use 1 to 100`},
		{name: "percent 101", edit: func(h *Healing) { h.MaxUnhealthyPercent = 101 },
			wantErr: `max_unhealthy_percent: 101 is not allowed: use 1 to 100`},
		{name: "percent negative", edit: func(h *Healing) { h.MaxUnhealthyPercent = -20 },
			wantErr: `max_unhealthy_percent: -20 is not allowed: use 1 to 100`},
		{name: "concurrency 0", edit: func(h *Healing) { h.MaxConcurrentReplacements = 0 },
			wantErr: `max_concurrent_replacements: 0 is not allowed: use 1 to 10`},
		{name: "concurrency 11", edit: func(h *Healing) { h.MaxConcurrentReplacements = 11 },
			wantErr: `max_concurrent_replacements: 11 is not allowed: use 1 to 10`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := DefaultHealing("prod/workers")
			tt.edit(&h)
			err := h.Validate()
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
			if _, rerr := h.Rules(); rerr == nil || !strings.Contains(rerr.Error(), err.Error()) {
				t.Fatalf("Rules() error = %v, want it to contain %q", rerr, err)
			}
		})
	}
}

func TestHealingRules(t *testing.T) {
	tests := []struct {
		name string
		in   Healing
		want HealingRules
	}{
		{
			name: "defaults",
			in:   DefaultHealing("prod/workers"),
			want: HealingRules{
				UnhealthyAfter:            5 * time.Minute,
				JoinTimeout:               5 * time.Minute,
				MinNodeAge:                10 * time.Minute,
				MaxUnhealthyPercent:       20,
				MaxConcurrentReplacements: 1,
				Enabled:                   true,
			},
		},
		{
			name: "custom and disabled",
			in: Healing{
				PoolID:                    "prod/managers",
				UnhealthyAfter:            " 1m30s ",
				JoinTimeout:               "10m",
				MinNodeAge:                "2h",
				MaxUnhealthyPercent:       50,
				MaxConcurrentReplacements: 3,
				Enabled:                   false,
			},
			want: HealingRules{
				UnhealthyAfter:            90 * time.Second,
				JoinTimeout:               10 * time.Minute,
				MinNodeAge:                2 * time.Hour,
				MaxUnhealthyPercent:       50,
				MaxConcurrentReplacements: 3,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.in.Rules()
			if err != nil {
				t.Fatalf("Rules() error: %v", err)
			}
			if got != tt.want {
				t.Fatalf("Rules() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestHealingRulesErrorNamesPool(t *testing.T) {
	h := DefaultHealing("prod/workers")
	h.UnhealthyAfter = "soon"
	_, err := h.Rules()
	if err == nil {
		t.Fatal("Rules() = nil error for an invalid policy")
	}
	want := `healing policy for "prod/workers": unhealthy_after: "soon" is not a duration`
	if !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("Rules() error = %q, want prefix %q", err, want)
	}
}

func TestHealingJSON(t *testing.T) {
	in := DefaultHealing("prod/workers")
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"node_pool_id":"prod/workers","unhealthy_after":"5m","join_timeout":"5m","min_node_age":"10m","max_unhealthy_percent":20,"max_concurrent_replacements":1,"enabled":true}`
	if string(b) != want {
		t.Fatalf("json = %s\nwant   %s", b, want)
	}
	var out Healing
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out != in {
		t.Fatalf("round trip = %+v, want %+v", out, in)
	}
}
