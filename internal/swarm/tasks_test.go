package swarm

import "testing"

func TestFits(t *testing.T) {
	labels := map[string]string{"tier": "web"}
	engine := map[string]string{"autarky.pool": "web"}
	cases := []struct {
		constraints []string
		role        string
		want        bool
	}{
		{nil, "worker", true},
		{[]string{"node.labels.tier==web"}, "worker", true},
		{[]string{"node.labels.tier == web"}, "worker", true},
		{[]string{"node.labels.tier==db"}, "worker", false},
		{[]string{"node.labels.tier!=db"}, "worker", true},
		{[]string{"node.labels.zone==a"}, "worker", false},
		{[]string{"node.labels.zone!=a"}, "worker", true},
		{[]string{"node.role==worker"}, "worker", true},
		{[]string{"node.role==manager"}, "worker", false},
		{[]string{"engine.labels.autarky.pool==web"}, "worker", true},
		{[]string{"node.hostname==web-1"}, "worker", false},
		{[]string{"node.labels.tier==web", "node.role==manager"}, "worker", false},
		{[]string{"garbage"}, "worker", false},
	}
	for _, c := range cases {
		if got := Fits(c.constraints, c.role, labels, engine); got != c.want {
			t.Errorf("Fits(%q, %s) = %v, want %v", c.constraints, c.role, got, c.want)
		}
	}
}
