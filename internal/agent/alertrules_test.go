package agent_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// alertsDir holds the alerting rules shipped for the agent's metrics.
var alertsDir = filepath.Join("..", "..", "examples", "alerts")

// The alerting rules in examples/alerts are valid (promtool check rules),
// behave as their unit tests say (promtool test rules: each fires in its
// situation after its `for`, and not in the healthy cluster or the near
// misses), and name only metrics the agent exports, so a renamed metric
// cannot leave a rule silently watching nothing.
func TestAlertRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is not installed: run `%s` (Debian's prometheus package has it)", testenv.Setup)
	}
	rules, err := filepath.Glob(filepath.Join(alertsDir, "*.rules.yml"))
	if err != nil || len(rules) == 0 {
		t.Fatalf("no rules in %s: %v", alertsDir, err)
	}
	for _, r := range rules {
		base := filepath.Base(r)
		run(t, promtool, "check", "rules", base)
		test := strings.TrimSuffix(base, ".yml") + ".test.yml"
		if _, err := os.Stat(filepath.Join(alertsDir, test)); err != nil {
			t.Fatalf("%s has no unit tests beside it (%s): %v", base, test, err)
		}
		run(t, promtool, "test", "rules", test)
	}

	exported := agentMetricNames(t)
	used := map[string]bool{}
	for _, r := range rules {
		b, err := os.ReadFile(r)
		if err != nil {
			t.Fatal(err)
		}
		for _, expr := range ruleExprs(string(b)) {
			for _, m := range regexp.MustCompile(`\bautarky_[a-z0-9_]+`).FindAllString(expr, -1) {
				used[m] = true
			}
		}
	}
	if len(used) < 5 {
		t.Fatalf("the rules name %d agent metrics, want at least 5: %v", len(used), used)
	}
	var missing []string
	for m := range used {
		if !exported[m] {
			missing = append(missing, m)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("the rules name metrics the agent does not export: %v", missing)
	}
}

// ruleExprs are the `expr:` values of a rules file, one line or a block
// (the lines indented deeper than the key), comments left out.
func ruleExprs(rules string) []string {
	var out []string
	indent := -1
	for _, line := range strings.Split(rules, "\n") {
		trimmed := strings.TrimSpace(line)
		depth := len(line) - len(strings.TrimLeft(line, " "))
		if indent >= 0 && (trimmed == "" || depth > indent) {
			if !strings.HasPrefix(trimmed, "#") {
				out[len(out)-1] += "\n" + trimmed
			}
			continue
		}
		indent = -1
		if v, ok := strings.CutPrefix(trimmed, "expr:"); ok {
			out = append(out, v)
			indent = depth
		}
	}
	return out
}

func run(t *testing.T, bin string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = alertsDir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	t.Logf("%s %s:\n%s", filepath.Base(bin), strings.Join(args, " "), out)
}

// agentMetricNames are the names of the metrics the agent's code declares
// (Name: "autarky_..." in the non-test sources of this package and of
// internal/notify, whose collectors the agent serves).
func agentMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	var files []string
	for _, pattern := range []string{"*.go", filepath.Join("..", "notify", "*.go")} {
		f, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f...)
	}
	re := regexp.MustCompile(`Name:\s*"(autarky_[a-z0-9_]+)"`)
	names := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			names[m[1]] = true
		}
	}
	if !names["autarky_leader"] {
		t.Fatalf("found no agent metrics in the sources: %v", names)
	}
	return names
}
