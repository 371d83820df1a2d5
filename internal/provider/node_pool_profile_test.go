package provider

import (
	"context"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
)

// planPool runs the node pool's ModifyPlan on a new pool whose aws block
// is a (nil: none) and returns its diagnostics' warnings, each of which
// must be about aws.instance_profile.
func planPool(t *testing.T, a *poolAWSModel) []string {
	t.Helper()
	return planPoolWarnings(t, path.Root("aws").AtName("instance_profile"), func(m *nodePoolModel) { m.AWS = a })
}

// planPoolWarnings runs the node pool's ModifyPlan on a new pool that set
// changes, and returns its warnings, each of which must be about field.
func planPoolWarnings(t *testing.T, field path.Path, set func(*nodePoolModel)) []string {
	t.Helper()
	ctx := context.Background()
	r := &nodePoolResource{}
	var sr resource.SchemaResponse
	r.Schema(ctx, resource.SchemaRequest{}, &sr)
	m := nodePoolModel{
		ClusterID: types.StringValue("prod"), Name: types.StringValue("web"), Role: types.StringValue("worker"),
		MinSize: types.Int64Value(1), MaxSize: types.Int64Value(3), DesiredSize: types.Int64Value(2),
		Labels: types.MapNull(types.StringType), WaitForCapacityTimeout: types.StringValue("5m"),
		CurrentSize: types.Int64Unknown(), NodeIDs: types.ListUnknown(types.StringType), ID: types.StringUnknown(),
		Timeouts: timeouts.Value{Object: types.ObjectNull(map[string]attr.Type{"create": types.StringType, "update": types.StringType, "delete": types.StringType})},
	}
	set(&m)
	plan := tfsdk.Plan{Schema: sr.Schema, Raw: tftypes.NewValue(sr.Schema.Type().TerraformType(ctx), nil)}
	if d := plan.Set(ctx, &m); d.HasError() {
		t.Fatalf("plan: %v", d)
	}
	req := resource.ModifyPlanRequest{Plan: plan, State: tfsdk.State{Schema: sr.Schema, Raw: tftypes.NewValue(sr.Schema.Type().TerraformType(ctx), nil)}}
	resp := resource.ModifyPlanResponse{Plan: plan}
	r.ModifyPlan(ctx, req, &resp)
	if resp.Diagnostics.HasError() {
		t.Fatalf("ModifyPlan: %v", resp.Diagnostics)
	}
	var warnings []string
	for _, d := range resp.Diagnostics.Warnings() {
		if wp, ok := d.(interface{ Path() path.Path }); !ok || !wp.Path().Equal(field) {
			t.Errorf("warning %q is not about %s", d.Summary(), field)
		}
		warnings = append(warnings, d.Summary()+": "+d.Detail())
	}
	return warnings
}

// A pool on AWS without its own instance profile boots with the managers'
// (the cluster's): the plan says so, naming the field and the policy to
// give the pool instead. A pool with its own profile plans quietly; a pool
// without an aws block is warned about at apply, once it is known to be on
// AWS (TestAccAWS_poolInstanceProfile).
func TestNodePoolPlanWarnsWithoutOwnInstanceProfile(t *testing.T) {
	noProfile := &poolAWSModel{InstanceType: types.StringValue("c6i.large"), InstanceProfile: types.StringNull(), Tags: types.MapNull(types.StringType)}
	w := planPool(t, noProfile)
	if len(w) != 1 || !strings.Contains(w[0], "managers' profile") || !strings.Contains(w[0], "manager join token") || !strings.Contains(w[0], "worker_json") {
		t.Fatalf("warnings of a pool without its own instance profile: %q, want one naming the managers' rights and worker_json", w)
	}
	own := &poolAWSModel{InstanceType: types.StringNull(), InstanceProfile: types.StringValue("autarky-prod-workers"), Tags: types.MapNull(types.StringType)}
	if w := planPool(t, own); len(w) != 0 {
		t.Fatalf("warnings of a pool with its own instance profile: %q", w)
	}
	if w := planPool(t, nil); len(w) != 0 {
		t.Fatalf("warnings of a pool without an aws block at plan time: %q", w)
	}
}
