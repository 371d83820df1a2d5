package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func writeConfig(t *testing.T, src string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "agent.hcl")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func checkConfig(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(append([]string{"autarky-agent", "check-config"}, args...), &out, &errb)
	return out.String(), errb.String(), code
}

const fullConfig = `cluster             = "shop"
platform            = "local"
docker_host         = "unix:///run/shop/docker.sock"
listen              = "127.0.0.1:9921"
dry_run             = true
evaluation_interval = "3s"
drain_timeout       = "90s"
log_format          = "json"
local {
  state_dir = "/var/lib/autarky-shop"
}
notify {
  format        = "slack"
  stale_after   = "10m"
  resolve_after = "2m"
}
`

// settingLines are check-config's settings without where each came from.
func settingLines(out string) string {
	var b strings.Builder
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "  --") {
			b.WriteString(regexp.MustCompile(`\t\(.*\)$`).ReplaceAllString(line, "") + "\n")
		}
	}
	return b.String()
}

// TestConfigRoundTrip: a file gives exactly the settings the same flags
// give.
func TestConfigRoundTrip(t *testing.T) {
	fromFile, errs, code := checkConfig(t, "--config", writeConfig(t, fullConfig))
	if code != 0 {
		t.Fatalf("check-config: %d %s", code, errs)
	}
	fromFlags, errs, code := checkConfig(t, "--cluster", "shop", "--platform", "local", "--docker-host", "unix:///run/shop/docker.sock",
		"--listen", "127.0.0.1:9921", "--dry-run", "--evaluation-interval", "3s", "--drain-timeout", "90s", "--log-format", "json",
		"--state-dir", "/var/lib/autarky-shop", "--notify-format", "slack", "--notify-stale-after", "10m", "--notify-resolve-after", "2m")
	if code != 0 {
		t.Fatalf("check-config with flags: %d %s", code, errs)
	}
	if a, b := settingLines(fromFile), settingLines(fromFlags); a != b || a == "" {
		t.Errorf("the file's settings:\n%s\nthe flags':\n%s", a, b)
	}
	if !strings.Contains(fromFile, "--drain-timeout=1m30s\t(") || !strings.Contains(fromFile, "agent.hcl:7)") {
		t.Errorf("check-config does not say where drain_timeout came from:\n%s", fromFile)
	}
}

// TestFlagsOverrideConfig: a flag set on the command line wins over the
// file, and only a flag actually set: the others keep the file's values,
// not the flags' defaults.
func TestFlagsOverrideConfig(t *testing.T) {
	out, errs, code := checkConfig(t, "--config", writeConfig(t, fullConfig), "--evaluation-interval", "5s", "--cluster", "shop2")
	if code != 0 {
		t.Fatalf("check-config: %d %s", code, errs)
	}
	for _, want := range []string{"--evaluation-interval=5s\t(flag, over ", "--cluster=shop2\t(flag, over ", "--dry-run=true\t(", "--log-format=json\t(", "--listen=127.0.0.1:9921\t("} {
		if !strings.Contains(out, want) {
			t.Errorf("check-config lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "--log-format=json\t(flag") {
		t.Errorf("an unset flag counted as set:\n%s", out)
	}
}

// TestRunRefusesBadConfig: run refuses a bad file before anything starts,
// naming the file, line and field; a flag's value checked late (a token
// file) names the flag.
func TestRunRefusesBadConfig(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{"cluster = \"shop\"\n\nevaluation_interval = \"fast\"\n", `agent.hcl:3,23: Invalid evaluation_interval: "fast" is not a duration`},
		{"cluster = \"shop\"\nadopt {\n  node_pool \"web\" {\n    min_size = 2\n    max_size = 1\n  }\n}\n", "agent.hcl:4,16: Invalid min_size in node_pool \"web\""},
		{"cluster = \"shop\"\nalert_token_file = \"/nonexistent/token\"\n", "--alert-token-file:"},
	} {
		var out, errb bytes.Buffer
		code := run([]string{"autarky-agent", "run", "--config", writeConfig(t, c.src)}, &out, &errb)
		if code == 0 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("run --config with\n%s\ncode %d, stderr %q, want %q", c.src, code, errb.String(), c.want)
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"autarky-agent", "run", "--config", "/nonexistent/agent.hcl"}, &out, &errb); code == 0 || !strings.Contains(errb.String(), "--config: open /nonexistent/agent.hcl") {
		t.Errorf("missing file: code %d, stderr %q", code, errb.String())
	}
}

// TestAdoptRefusesTerraformCluster: an agent told to adopt a cluster whose
// store holds the descriptor Terraform wrote (the local platform's
// clusters/<name>/cluster.json) refuses to start, naming the file and the
// store.
func TestAdoptRefusesTerraformCluster(t *testing.T) {
	state, err := os.MkdirTemp("", "akr")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(state) })
	if err := os.MkdirAll(filepath.Join(state, "clusters", "shop"), 0o700); err != nil {
		t.Fatal(err)
	}
	desc := `{"name":"shop","platform":"local","manager_count":1,"heartbeat_period":"5s"}`
	if err := os.WriteFile(filepath.Join(state, "clusters", "shop", "cluster.json"), []byte(desc), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, "cluster = \"shop\"\nlocal {\n  state_dir = \""+state+"\"\n}\nadopt {\n  node_pool \"web\" {\n    max_size = 2\n  }\n}\n")
	var out, errb bytes.Buffer
	code := run([]string{"autarky-agent", "run", "--config", cfg, "--docker-host", "unix:///nonexistent.sock"}, &out, &errb)
	if code == 0 || !strings.Contains(errb.String(), cfg+` adopts cluster "shop", but state dir `+state+" holds a cluster of that name that Terraform built") {
		t.Errorf("code %d, stderr %q", code, errb.String())
	}
	if _, err := os.Stat(filepath.Join(state, "clusters", "shop", "adopted.json")); err == nil {
		t.Error("the refused adoption was recorded")
	}
}
