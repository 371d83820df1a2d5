package provider

import (
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

// A pool on GCP without its own service account runs as the managers'
// (the cluster's): the plan says so, naming the field and the role to give
// the pool's own account instead. A pool with its own account plans
// quietly; a pool without a gcp block is warned about at apply, once it is
// known to be on GCP.
func TestNodePoolPlanWarnsWithoutOwnServiceAccount(t *testing.T) {
	field := path.Root("gcp").AtName("service_account")
	plan := func(g *poolGCPModel) []string {
		return planPoolWarnings(t, field, func(m *nodePoolModel) { m.GCP = g })
	}
	w := plan(&poolGCPModel{MachineType: types.StringValue("e2-standard-4"), ServiceAccount: types.StringNull()})
	if len(w) != 1 || !strings.Contains(w[0], "the managers'") || !strings.Contains(w[0], "manager join token") || !strings.Contains(w[0], "workers_json") {
		t.Fatalf("warnings of a pool without its own service account: %q, want one naming the managers' rights and the workers' role", w)
	}
	if w := plan(&poolGCPModel{MachineType: types.StringNull(), ServiceAccount: types.StringValue("workers@prod-project.iam.gserviceaccount.com")}); len(w) != 0 {
		t.Fatalf("warnings of a pool with its own service account: %q", w)
	}
	if w := plan(nil); len(w) != 0 {
		t.Fatalf("warnings of a pool without a gcp block at plan time: %q", w)
	}
}
