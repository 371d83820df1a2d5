package swarm

import (
	"strings"
	"testing"
)

// FuzzFits matches arbitrary placement constraints against a new node's
// labels. Nothing panics; a list of constraints fits exactly when each of
// them does; and for any label key k (no '=' or '!', as Swarm's keys)
// and value v, "node.labels.k==v" fits exactly when the node has label k
// equal to v (case-insensitively, as Swarm compares), "!=" exactly when it
// has not, and the same for engine labels.
func FuzzFits(f *testing.F) {
	f.Add("node.labels.tier==web", "worker", "tier", "web", "web")
	f.Add("node.labels.tier != web", "manager", "tier", "db", "WEB")
	f.Add("node.labels.expr==a!=b", "worker", "expr", "a!=b", "a!=b")
	f.Add("node.labels.expr==a!=b", "worker", "expr", "a!=b", "other")
	f.Add("node.labels.x===y", "worker", "x", "=y", "")
	f.Add("engine.labels.autarky.pool==web", "worker", "autarky.pool", "web", "web")
	f.Add("node.hostname==web-1", "worker", "", "", "")
	f.Add("node.labels.k==", "worker", "k", "", "")
	f.Add("==", "", "", "", "")
	f.Add("node.role==worker", "worker", "zone", "a", "b")
	f.Fuzz(func(t *testing.T, constraint, role, k, v, have string) {
		labels := map[string]string{}
		if k != "" {
			labels[k] = have
		}
		// Arbitrary constraints: no panic, and conjunction.
		one := Fits([]string{constraint}, role, labels, labels)
		if Fits([]string{constraint, constraint}, role, labels, labels) != one {
			t.Fatalf("%q twice fits differently from once", constraint)
		}
		if !Fits(nil, role, labels, labels) {
			t.Fatalf("no constraint does not fit")
		}
		other := "node.role==" + role
		if Fits([]string{constraint, other}, role, labels, labels) != (one && Fits([]string{other}, role, labels, labels)) {
			t.Fatalf("%q and %q: not the conjunction", constraint, other)
		}

		key, want := strings.TrimSpace(k), strings.TrimSpace(v)
		if key == "" || want == "" || strings.ContainsAny(key, "=!") {
			return
		}
		same := strings.EqualFold(have, want)
		for _, prefix := range []string{"node.labels.", "engine.labels."} {
			nodeLabels, engineLabels := map[string]string{key: have}, map[string]string(nil)
			if prefix == "engine.labels." {
				nodeLabels, engineLabels = nil, map[string]string{key: have}
			}
			for _, space := range []string{"", " "} {
				eq := prefix + key + space + "==" + space + want
				ne := prefix + key + space + "!=" + space + want
				if got := Fits([]string{eq}, role, nodeLabels, engineLabels); got != same {
					t.Fatalf("%q on a node with %s=%q: fits %v, want %v", eq, key, have, got, same)
				}
				if got := Fits([]string{ne}, role, nodeLabels, engineLabels); got != !same {
					t.Fatalf("%q on a node with %s=%q: fits %v, want %v", ne, key, have, got, !same)
				}
				if Fits([]string{eq}, role, nil, nil) {
					t.Fatalf("%q fits a node without the label", eq)
				}
				if !Fits([]string{ne}, role, nil, nil) {
					t.Fatalf("%q does not fit a node without the label", ne)
				}
			}
		}
	})
}
