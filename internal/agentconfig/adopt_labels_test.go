package agentconfig_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/swarm"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// TestAdoptedNodesCarryPoolLabels checks the adopting guide's word on a
// pool's labels on the local platform, where the platform labels only the
// nodes it joins: the guide's hand-built swarm and configuration (pool
// workers, labels = { tier = "app" }), with a stale tier=old on w1 and a
// hand-set owner=ops on w2 before the agent starts. The agent gives both
// hand-started engines tier=app and the three autarky labels, keeps
// owner=ops, and the guide's `node ls --filter node.label=tier=app` lists
// w1 and w2; the replacement the agent starts for a killed w1 carries
// them too.
func TestAdoptedNodesCarryPoolLabels(t *testing.T) {
	h := newHandmade(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	config := h.sub(testenv.DocBlock(t, guide, "adopt-local-config"))
	if err := os.WriteFile(filepath.Join(h.dir, "agent.hcl"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	nodes, err := h.mgr.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before := map[string]map[string]string{"w1": {"tier": "old"}, "w2": {"owner": "ops"}}
	for _, n := range nodes {
		if l, ok := before[n.EngineLabels["autarky.instance"]]; ok {
			if err := h.mgr.SetLabels(ctx, n.ID, l); err != nil {
				t.Fatal(err)
			}
		}
	}

	h.startAgent()
	want := func(inst string) map[string]string {
		return map[string]string{"tier": "app", "autarky.cluster": "handmade", "autarky.pool": "workers", "autarky.instance": inst}
	}
	lctx, lcancel := context.WithTimeout(ctx, 30*time.Second)
	defer lcancel()
	var missing string
	err = h.mgr.WaitNodes(lctx, "w1 and w2 to carry pool workers' labels", func(ns []swarm.Node) bool {
		missing = ""
		for _, inst := range []string{"w1", "w2"} {
			n := byInstance(ns, inst)
			if n == nil {
				missing += inst + " is not in the swarm; "
				continue
			}
			if m := lacking(n.Labels, want(inst)); m != "" {
				missing += fmt.Sprintf("%s lacks %s (has %v); ", inst, m, n.Labels)
			}
		}
		return missing == ""
	})
	if err != nil {
		t.Fatalf("%v: %s", err, missing)
	}
	if ns, err := h.mgr.Nodes(ctx); err != nil {
		t.Fatal(err)
	} else if w2 := byInstance(ns, "w2"); w2.Labels["owner"] != "ops" {
		t.Errorf("the agent dropped w2's hand-set label owner=ops: %v", w2.Labels)
	}
	listed := h.bash("adopt-local-labels")
	for _, host := range []string{"w1", "w2"} {
		if !regexp.MustCompile(`(?m)\s` + host + `\s`).MatchString(listed) {
			t.Errorf("the guide's node ls --filter node.label=tier=app does not list %s:\n%s", host, listed)
		}
	}
	if regexp.MustCompile(`(?m)\sm1\s`).MatchString(listed) {
		t.Errorf("the guide's node ls --filter node.label=tier=app lists the manager m1, which is no pool's:\n%s", listed)
	}

	h.bash("adopt-local-kill")
	var replacement *swarm.Node
	err = h.mgr.WaitNodes(ctx, "a ready replacement in pool workers carrying the pool's labels", func(ns []swarm.Node) bool {
		replacement = nil
		for i, n := range ns {
			inst := n.EngineLabels["autarky.instance"]
			if n.EngineLabels["autarky.pool"] == "workers" && inst != "w1" && inst != "w2" && n.State == "ready" {
				replacement = &ns[i]
				return lacking(n.Labels, want(inst)) == ""
			}
		}
		return false
	})
	if err != nil {
		if replacement != nil {
			t.Fatalf("%v: replacement %s has labels %v", err, replacement.EngineLabels["autarky.instance"], replacement.Labels)
		}
		t.Fatal(err)
	}
}

// byInstance is the node whose engine is instance inst, nil if none is.
func byInstance(ns []swarm.Node, inst string) *swarm.Node {
	for i := range ns {
		if ns[i].EngineLabels["autarky.instance"] == inst {
			return &ns[i]
		}
	}
	return nil
}

// lacking names the first label of want that got lacks or holds with
// another value, "" when got has them all.
func lacking(got, want map[string]string) string {
	for k, v := range want {
		if got[k] != v {
			return k + "=" + v
		}
	}
	return ""
}
