package gcp

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// FuzzStartupScript renders startup scripts from arbitrary pool labels
// and settings, for the same reason as the aws user data's fuzz test: the
// labels are the user's text and go into a shell script and a JSON list.
// Whatever is given, RenderStartupScript refuses it or renders a script
// that sh parses, and the labels the script gives the engine
// (STATIC_LABELS, as write_engine_labels builds them) and, on managers,
// the node (label_node's --label-add arguments) are exactly the pool's,
// read back through the shell: nothing in a label expands, splits or
// changes on the way.
func FuzzStartupScript(f *testing.F) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		f.Fatalf("sh is not installed: %v", err)
	}
	f.Add("prod", "web", false, "tier", "frontend", "zone", "it's \"quoted\" $(not run) `x` \\n", "autarky-state", int64(0), "")
	f.Add("prod", policy.ManagerPoolName, true, "a/b.c_d-e", "x'y", "k", "${HOME}*?[a]", "my.bucket.example", int64(time.Minute), "5s")
	f.Add("c", "p", false, "k", "\u2028\u00e9\U0001F600<>&", "k2", "%2F", "b_1", int64(0), "")
	f.Add("c", policy.ManagerPoolName, true, "k", "a\nb", "autarky.pool", "x", "goog", int64(0), "1h")
	f.Fuzz(func(t *testing.T, cluster, pool string, manager bool, k1, v1, k2, v2, bucket string, heartbeat int64, interval string) {
		s := StartupScript{Cluster: cluster, Pool: pool, Role: policy.RoleWorker, Project: "my-project", Region: "europe-west1",
			Bucket: bucket, ManagerGroup: "managers", Labels: map[string]string{k1: v1, k2: v2}, HeartbeatPeriod: time.Duration(heartbeat)}
		if manager {
			s.Role = policy.RoleManager
			s.Agent = &StartupAgent{URL: "https://example.com/autarky-agent", SHA256: strings.Repeat("0f", 32), EvaluationInterval: interval}
		}
		script, err := RenderStartupScript(s)
		if err != nil {
			return
		}
		cmd := exec.Command(sh, "-n")
		cmd.Stdin = strings.NewReader(script)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("sh -n: %v\n%s\n%s", err, out, script)
		}
		want := []string{policy.LabelCluster + "=" + cluster, policy.LabelPool + "=" + pool}
		var keys []string
		for k := range s.Labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			want = append(want, k+"="+s.Labels[k])
		}
		want = append(want, policy.LabelInstance+"=1234")

		// The settings, then write_engine_labels' line building the list.
		settings, _, ok := strings.Cut(script, "\nlog() {")
		if !ok {
			t.Fatalf("no log() in the script")
		}
		var build string
		for _, l := range strings.Split(script, "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), `labels="[$STATIC_LABELS`) {
				build = l
			}
		}
		var engine []string
		if err := json.Unmarshal(startupSh(t, sh, settings+"\nINSTANCE_ID=1234\n"+build+"\nprintf '%s' \"$labels\"\n"), &engine); err != nil {
			t.Fatalf("the engine labels are not a JSON list: %v", err)
		}
		if !reflect.DeepEqual(engine, want) {
			t.Fatalf("engine labels %q, want %q", engine, want)
		}

		start := strings.Index(script, "\nlabel_node() {")
		if manager != (start >= 0) {
			t.Fatalf("label_node in the script: %v, manager: %v", start >= 0, manager)
		}
		if !manager {
			return
		}
		end := strings.Index(script[start:], "\n}\n")
		// docker prints its arguments, one a line, on descriptor 3.
		args := startupSh(t, sh, `docker() { if [ "$1" = info ]; then echo n1; else printf '%s\n' "$@" >&3; fi; }
INSTANCE_ID=1234
`+script[start:start+end+3]+"\nlabel_node 3>&1\n")
		var node []string
		fields := strings.Split(strings.TrimSuffix(string(args), "\n"), "\n")
		for i := 0; i+1 < len(fields); i++ {
			if fields[i] == "--label-add" {
				node = append(node, fields[i+1])
			}
		}
		if !reflect.DeepEqual(node, want) {
			t.Fatalf("node labels %q, want %q", node, want)
		}
	})
}

func startupSh(t *testing.T, sh, script string) []byte {
	t.Helper()
	cmd := exec.Command(sh, "-c", script)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sh: %v\n%s\n%s", err, stderr.Bytes(), script)
	}
	return out
}
