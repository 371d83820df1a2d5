package agentconfig

import (
	"reflect"
	"strings"
	"testing"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// TestBadFiles: every refusal names the file, the line and the field, and
// what is allowed.
func TestBadFiles(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      []string // substrings of the error, the first "file:line"
	}{
		{"unknown block", "cluster = \"a\"\n\nnodes {}\n", []string{"bad.hcl:3,", `"nodes"`, "not expected", "Allowed here: adopt {}, alert_token_file,"}},
		{"unknown nested attribute", "adopt {\n  node_pool \"w\" {\n    max_size = 2\n    healing_policy {\n      unhealthy = \"5s\"\n    }\n  }\n}\n",
			[]string{"bad.hcl:5,", `"unhealthy"`, "Allowed here: enabled, join_timeout, max_concurrent_replacements, max_unhealthy_percent, min_node_age, unhealthy_after."}},
		{"unknown attribute", "cluster = \"a\"\nlisten_addr = \"x\"\n", []string{"bad.hcl:2,", `"listen_addr"`}},
		{"wrong type", "cluster = \"a\"\ndry_run = \"maybe\"\n", []string{"bad.hcl:2,", "for dry_run", "bool is required"}},
		{"wrong nested type", "adopt {\n  node_pool \"w\" {\n    max_size = \"three\"\n  }\n}\n", []string{"bad.hcl:3,", "for adopt.node_pool.w.max_size", "number is required"}},
		{"bad duration", "cluster = \"a\"\n\ndrain_timeout = \"10x\"\n", []string{"bad.hcl:3,", "drain_timeout", `"10x" is not a duration`, `"30s"`}},
		{"interval out of range", "evaluation_interval = \"2h\"\n", []string{"bad.hcl:1,", "evaluation_interval", "100ms to 1h"}},
		{"unknown platform", "cluster = \"a\"\nplatform = \"azure\"\n", []string{"bad.hcl:2,", "platform", `"azure" is unknown`, `"local"`}},
		{"bad log format", "log_format = \"xml\"\n", []string{"bad.hcl:1,", "log_format", `"json" or "text"`}},
		{"block of another platform", "platform = \"local\"\naws {\n  region = \"eu-west-1\"\n}\n", []string{"bad.hcl:2,", "aws block", `platform = "aws"`}},
		{"min above max", "adopt {\n  node_pool \"web\" {\n    min_size = 3\n    max_size = 1\n  }\n}\n",
			[]string{"bad.hcl:3,", `min_size in node_pool "web"`, "min_size must be at most max_size"}},
		{"missing max_size", "adopt {\n  node_pool \"web\" {\n  }\n}\n", []string{"bad.hcl:2,", `max_size in node_pool "web"`, "1 or more"}},
		{"managers pool autoscaled", "adopt {\n  node_pool \"managers\" {\n    max_size = 3\n    scaling_policy {\n      pending_tasks {}\n    }\n  }\n}\n",
			[]string{"bad.hcl:2,", `node_pool "managers"`, "reserved for the cluster's manager pool"}},
		{"manager role", "adopt {\n  node_pool \"ctl\" {\n    role = \"manager\"\n    max_size = 3\n  }\n}\n",
			[]string{"bad.hcl:3,", `role in node_pool "ctl"`, `use "worker"`}},
		{"bad healing duration", "adopt {\n  node_pool \"web\" {\n    max_size = 3\n    healing_policy {\n      join_timeout = \"0s\"\n    }\n  }\n}\n",
			[]string{"bad.hcl:5,", "join_timeout", "at least 1s"}},
		{"scaling without a check", "adopt {\n  node_pool \"web\" {\n    max_size = 3\n    scaling_policy {\n      max_step = 2\n    }\n  }\n}\n",
			[]string{"bad.hcl:4,", "scaling_policy", "at least one check"}},
		{"bad check field", "adopt {\n  node_pool \"web\" {\n    max_size = 3\n    scaling_policy {\n      prometheus {\n        name = \"cpu\"\n        address = \"ftp://x\"\n        query = \"up\"\n        target_value = 1\n      }\n    }\n  }\n}\n",
			[]string{"bad.hcl:7,", "prometheus[0].address", "http(s) URL"}},
		{"bad node selector", "adopt {\n  node_pool \"web\" {\n    max_size = 3\n    scaling_policy {\n      node_selector = \"random\"\n      pending_tasks {}\n    }\n  }\n}\n",
			[]string{"bad.hcl:5,", "node_selector", `"empty_first"`}},
		{"service min above max", "adopt {\n  service_scaling_policy \"web\" {\n    min_replicas = 4\n    max_replicas = 2\n  }\n}\n",
			[]string{"bad.hcl:3,", "min_replicas", "at most max_replicas"}},
		{"duplicate pool", "adopt {\n  node_pool \"web\" {\n    max_size = 3\n  }\n  node_pool \"web\" {\n    max_size = 3\n  }\n}\n",
			[]string{"bad.hcl:5,", "declared twice", "bad.hcl:2"}},
		{"syntax", "cluster = \n", []string{"bad.hcl:1,"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("bad.hcl", []byte(tc.src))
			if err == nil {
				t.Fatalf("accepted:\n%s", tc.src)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, tc.want[0]) {
				t.Errorf("error does not start with %q:\n%s", tc.want[0], msg)
			}
			for _, w := range tc.want[1:] {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q:\n%s", w, msg)
				}
			}
		})
	}
}

// TestAdoptionPlatform: group is for aws, and aws needs it; gcp adopts
// nothing. The cluster and platform may come from flags, so this is
// checked once they are known, still naming the file's line.
func TestAdoptionPlatform(t *testing.T) {
	src := "adopt {\n  node_pool \"web\" {\n    group = \"legacy-asg\"\n    max_size = 3\n  }\n}\n"
	f, err := Parse("a.hcl", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Adoption("shop", policy.PlatformLocal); err == nil || !strings.HasPrefix(err.Error(), "a.hcl:3,") || !strings.Contains(err.Error(), `platform \"aws\"`) && !strings.Contains(err.Error(), `platform "aws"`) {
		t.Errorf("group on local: %v", err)
	}
	a, err := f.Adoption("shop", policy.PlatformAWS)
	if err != nil {
		t.Fatal(err)
	}
	if a.Groups["web"] != "legacy-asg" || a.Pools[0].ID() != "shop/web" {
		t.Errorf("adoption on aws: %+v", a)
	}
	if _, err := f.Adoption("shop", policy.PlatformGCP); err == nil || !strings.HasPrefix(err.Error(), "a.hcl:1,") {
		t.Errorf("adoption on gcp: %v", err)
	}
	g, err := Parse("b.hcl", []byte("adopt {\n  node_pool \"web\" {\n    max_size = 3\n  }\n}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Adoption("shop", policy.PlatformAWS); err == nil || !strings.HasPrefix(err.Error(), "b.hcl:2,") || !strings.Contains(err.Error(), "add group") {
		t.Errorf("aws pool without group: %v", err)
	}
}

// TestDefaultsAreTerraforms: a policy the file leaves empty is the
// Terraform resource's default, from policy's own constructors.
func TestDefaultsAreTerraforms(t *testing.T) {
	src := `
cluster = "shop"
adopt {
  node_pool "web" {
    min_size = 1
    max_size = 4
    labels   = { tier = "web" }
    healing_policy {}
    scaling_policy {
      pending_tasks {}
    }
  }
  service_scaling_policy "shop_web" {
    max_replicas = 8
  }
}
`
	f, err := Parse("d.hcl", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	a, err := f.Adoption("shop", policy.PlatformLocal)
	if err != nil {
		t.Fatal(err)
	}
	p := a.Pools[0]
	if p.Role != policy.RoleWorker || p.DesiredSize != 1 || p.SizeOwner != policy.SizeOwnerAgent || p.Labels["tier"] != "web" {
		t.Errorf("pool: %+v", p)
	}
	if want := policy.DefaultHealing("shop/web"); !reflect.DeepEqual(a.Healing[0], want) {
		t.Errorf("healing %+v, want %+v", a.Healing[0], want)
	}
	want := policy.DefaultScaling("shop/web")
	want.PendingTasks = &policy.PendingTasksCheck{}
	if !reflect.DeepEqual(a.Scaling[0], want) {
		t.Errorf("scaling %+v, want %+v", a.Scaling[0], want)
	}
	ws := policy.DefaultServiceScaling("shop_web", 8)
	ws.ClusterID = "shop"
	if !reflect.DeepEqual(a.Services[0], ws) {
		t.Errorf("service %+v, want %+v", a.Services[0], ws)
	}
}

// TestSettingsAreFlags: every setting of the file is the flag of the same
// name, in the flag's syntax.
func TestSettingsAreFlags(t *testing.T) {
	src := `
cluster             = "shop"
platform            = "local"
docker_host         = "unix:///run/docker.sock"
listen              = "127.0.0.1:9911"
dry_run             = true
evaluation_interval = "3s"
drain_timeout       = "90s"
log_format          = "json"
alert_token_file    = "/etc/autarky/alert-token"
status_token_file   = "/etc/autarky/status-token"
local {
  state_dir = "/var/lib/autarky"
}
notify {
  webhook_file  = "/etc/autarky/webhook"
  format        = "slack"
  stale_after   = "10m"
  resolve_after = "2m"
}
`
	f, err := Parse("s.hcl", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"cluster": "shop", "platform": "local", "docker-host": "unix:///run/docker.sock", "listen": "127.0.0.1:9911",
		"dry-run": "true", "evaluation-interval": "3s", "drain-timeout": "90s", "log-format": "json",
		"alert-token-file": "/etc/autarky/alert-token", "status-token-file": "/etc/autarky/status-token",
		"state-dir": "/var/lib/autarky", "notify-webhook-file": "/etc/autarky/webhook", "notify-format": "slack",
		"notify-stale-after": "10m", "notify-resolve-after": "2m",
	}
	if !reflect.DeepEqual(f.Flags, want) {
		t.Errorf("flags %v\nwant %v", f.Flags, want)
	}
	if got := f.Where("drain-timeout"); got != "s.hcl:8" {
		t.Errorf("Where(drain-timeout) = %q", got)
	}
	if f.Adopts() {
		t.Error("a file without an adopt block adopts")
	}
}
