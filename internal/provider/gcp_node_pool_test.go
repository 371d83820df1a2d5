package provider

import (
	"context"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/autarky/terraform-provider-autarky/internal/platform/gcp"
	"github.com/autarky/terraform-provider-autarky/internal/platform/local"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
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

// Once the cluster's platform is known at apply, a gcp block on a pool of
// another platform is refused (it would be ignored there), and a pool on
// gcp without one is warned about: it runs as the managers' account.
func TestCheckPoolGCP(t *testing.T) {
	ctx := context.Background()
	lp, err := local.New(testenv.StateDir(t), nil, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := gcp.Connect(ctx, gcp.Config{Project: "autarky-test", Region: "europe-west1", Endpoint: "http://127.0.0.1:1", NoAuth: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.StorageClient(ctx, "http://127.0.0.1:1/storage/v1/")
	if err != nil {
		t.Fatal(err)
	}
	gp, err := gcp.NewPlatform(c, st, "autarky-test-store", gcp.Boot{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	own := &poolGCPModel{MachineType: types.StringNull(), ServiceAccount: types.StringValue("workers@autarky-test.iam.gserviceaccount.com")}
	for _, tc := range []struct {
		name      string
		p         backend
		block     *poolGCPModel
		errors    int
		warnings  int
		errorText string
	}{
		{name: "gcp block on local", p: lp, block: own, errors: 1, errorText: `the gcp block is for pools of platform "gcp" clusters only`},
		{name: "no block on local", p: lp},
		{name: "own account on gcp", p: gp, block: own},
		{name: "no block on gcp", p: gp, warnings: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var diags diag.Diagnostics
			checkPoolGCP(&diags, tc.p, nodePoolModel{ClusterID: types.StringValue("prod"), Name: types.StringValue("web"), GCP: tc.block})
			if diags.ErrorsCount() != tc.errors || diags.WarningsCount() != tc.warnings {
				t.Fatalf("diagnostics %v, want %d errors and %d warnings", diags, tc.errors, tc.warnings)
			}
			if tc.errors > 0 && !strings.Contains(diags.Errors()[0].Detail(), tc.errorText) {
				t.Fatalf("error %q, want %q", diags.Errors()[0].Detail(), tc.errorText)
			}
		})
	}
}
