package aws

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

// FuzzUserData renders boot scripts from arbitrary pool labels and
// settings. Whatever is given, RenderUserData refuses it or renders a
// script that /bin/sh parses (sh -n), and the labels the script gives the
// engine (STATIC_LABELS, as write_engine_labels builds them) and, on
// managers, the node (label_node's --label-add arguments) are exactly the
// pool's, read back through the shell itself: nothing in a label expands,
// splits or changes on the way.
func FuzzUserData(f *testing.F) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		f.Fatalf("sh is not installed: %v", err)
	}
	f.Add("prod", "web", false, "tier", "frontend", "zone", "it's \"quoted\" $(not run) `x` \\n", "", int64(0), int64(0), "")
	f.Add("prod", policy.ManagerPoolName, true, "a/b.c_d-e", "x'y", "k", "${HOME}*?[a]", "alias/autarky", int64(time.Second), int64(time.Minute), "5s")
	f.Add("c", "p", false, "k", "\u2028\u00e9\U0001F600", "k2", "<>&", "", int64(0), int64(0), "")
	f.Add("c", policy.ManagerPoolName, true, "k", "a\nb", "autarky.pool", "x", "", int64(0), int64(0), "1h")
	f.Fuzz(func(t *testing.T, cluster, pool string, manager bool, k1, v1, k2, v2, kms string, heartbeat, join int64, interval string) {
		u := UserData{Cluster: cluster, Pool: pool, Role: policy.RoleWorker, Region: "eu-west-1", ManagerGroup: cluster + "-managers",
			Labels: map[string]string{k1: v1, k2: v2}, KMSKeyID: kms, HeartbeatPeriod: time.Duration(heartbeat), JoinTimeout: time.Duration(join)}
		if manager {
			u.Role = policy.RoleManager
			u.Agent = &AgentBoot{URL: "https://example.com/autarky-agent", SHA256: strings.Repeat("0f", 32), EvaluationInterval: interval}
		}
		script, err := RenderUserData(u)
		if err != nil {
			return
		}
		if len(script) > MaxUserDataSize {
			t.Fatalf("%d bytes of user data", len(script))
		}
		cmd := exec.Command(sh, "-n")
		cmd.Stdin = strings.NewReader(script)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("sh -n: %v\n%s\n%s", err, out, script)
		}

		want := []string{policy.LabelCluster + "=" + cluster, policy.LabelPool + "=" + pool}
		keys := make([]string, 0, len(u.Labels))
		for k := range u.Labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			want = append(want, k+"="+u.Labels[k])
		}

		// The engine's labels: the script's settings, then the line
		// write_engine_labels builds its JSON list with, run by sh.
		head, _, ok := strings.Cut(script, "\nlog() {")
		if !ok {
			t.Fatalf("no log() in the script")
		}
		build := lineWith(t, script, `labels="[$STATIC_LABELS`)
		engine := runSh(t, sh, head+"\nINSTANCE_ID=i-0abc\n"+build+"\nprintf '%s' \"$labels\"\n")
		var got []string
		if err := json.Unmarshal(engine, &got); err != nil {
			t.Fatalf("the engine labels are not a JSON list: %v\n%s", err, engine)
		}
		if !reflect.DeepEqual(got, append(append([]string(nil), want...), "autarky.instance=i-0abc")) {
			t.Fatalf("engine labels %q, want %q and the instance's", got, want)
		}

		// The manager node's labels: label_node, with docker printing its
		// arguments, one a line (a label value holds no control character),
		// on descriptor 3: label_node sends docker's output to /dev/null.
		start := strings.Index(script, "\nlabel_node() {")
		if manager != (start >= 0) {
			t.Fatalf("label_node in the script: %v, manager: %v", start >= 0, manager)
		}
		if !manager {
			return
		}
		end := strings.Index(script[start:], "\n}\n")
		fn := script[start : start+end+3]
		args := runSh(t, sh, `docker() { if [ "$1" = info ]; then echo n1; else printf '%s\n' "$@" >&3; fi; }
INSTANCE_ID=i-0abc
`+fn+"\nlabel_node 3>&1\n")
		var node []string
		fields := bytes.Split(bytes.TrimSuffix(args, []byte("\n")), []byte("\n"))
		for i := 0; i+1 < len(fields); i++ {
			if string(fields[i]) == "--label-add" {
				node = append(node, string(fields[i+1]))
			}
		}
		if !reflect.DeepEqual(node, append(append([]string(nil), want...), "autarky.instance=i-0abc")) {
			t.Fatalf("node labels %q, want %q and the instance's", node, want)
		}
	})
}

func lineWith(t *testing.T, script, prefix string) string {
	t.Helper()
	for _, l := range strings.Split(script, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), prefix) {
			return l
		}
	}
	t.Fatalf("no line starting %s", prefix)
	return ""
}

func runSh(t *testing.T, sh, script string) []byte {
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
