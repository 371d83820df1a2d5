package provider

import (
	"slices"
	"strings"
	"testing"
)

// examples/gcp gives the managers and the workers their own service
// accounts: the cluster's (the managers') is granted the data source's
// managers_json roles, every pool's its workers_json roles, no pool runs
// as the managers' account, and the roles are rendered for the bucket the
// provider keeps the cluster in.
func TestExampleGCPSeparatesManagersAndWorkers(t *testing.T) {
	refs := exampleRefs(t, "../../examples/gcp/main.tf")
	const managers, workers = "google_service_account.managers.email", "google_service_account.workers.email"
	if got := refs["autarky_cluster.prod.gcp.service_account"]; !slices.Equal(got, []string{managers}) {
		t.Errorf("the cluster's gcp.service_account refers to %v, want %s", got, managers)
	}
	for key, want := range map[string][]string{
		"locals.manager_grants": {"data.autarky_gcp_agent_roles.prod.managers_json", managers},
		"locals.worker_grants":  {"data.autarky_gcp_agent_roles.prod.workers_json", workers},
	} {
		got := refs[key]
		for _, w := range want {
			if !slices.Contains(got, w) {
				t.Errorf("%s refers to %v, want %s among them", key, got, w)
			}
		}
		for _, r := range got {
			if strings.HasPrefix(r, "google_service_account.") && r != want[1] {
				t.Errorf("%s grants its roles to %s too, want only %s", key, r, want[1])
			}
		}
	}
	pools := 0
	for key := range refs {
		if !strings.HasPrefix(key, "autarky_node_pool.") || !strings.HasSuffix(key, ".cluster_id") {
			continue
		}
		pools++
		pool := strings.TrimSuffix(key, ".cluster_id")
		if got := refs[pool+".gcp.service_account"]; !slices.Equal(got, []string{workers}) {
			t.Errorf("%s runs as %v, want the workers' %s", pool, got, workers)
		}
	}
	if pools == 0 {
		t.Fatal("examples/gcp declares no node pool")
	}
	if p, d := refs["provider.gcp.bucket"], refs["data.autarky_gcp_agent_roles.prod.bucket"]; len(p) != 1 || !slices.Equal(p, d) {
		t.Errorf("the provider keeps clusters in %v, the roles are rendered for %v: want the same bucket", p, d)
	}
}
