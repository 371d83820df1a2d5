package provider

import (
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/validators"
)

// A node pool's gcp block: what the pool changes of its cluster's gcp
// settings.

type poolGCPModel struct {
	MachineType    types.String `tfsdk:"machine_type"`
	ServiceAccount types.String `tfsdk:"service_account"`
}

func poolGCPBlock() schema.SingleNestedBlock {
	return schema.SingleNestedBlock{
		MarkdownDescription: "On a `gcp` cluster, what this pool changes of the cluster's `gcp` settings. The pool is the regional Managed Instance Group `<cluster>-<pool>`, " +
			"created from an instance template; a change here makes a new template, which instances get when they are next created (running ones are left alone).",
		Attributes: map[string]schema.Attribute{
			"machine_type": schema.StringAttribute{
				Optional: true, MarkdownDescription: "The machine type of this pool's instances; defaults to the cluster's.",
				Validators: []validator.String{validators.Check("must be a machine type", policy.ValidateGCPMachineType)},
			},
			"service_account": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: "The service account email of this pool's instances; it needs the `workers_json` roles of the `autarky_gcp_agent_roles` data source, " +
					"which lets a worker find the managers and read the worker join token and nothing else. " +
					"Unset, the pool's instances run as the cluster's `gcp.service_account`, the managers', which may read the manager join token, write the cluster's store and resize and delete its instances: " +
					"every such worker then holds the managers' rights, and plan and apply warn about it.",
				Validators: []validator.String{validators.Check("must be a service account email", policy.ValidateGCPServiceAccount)},
			},
		},
	}
}

// descriptor is the block as a pool's overrides; nil when it sets nothing.
func (g *poolGCPModel) descriptor() *policy.GCPPool {
	if g == nil || allNull(g.MachineType, g.ServiceAccount) {
		return nil
	}
	return &policy.GCPPool{MachineType: g.MachineType.ValueString(), ServiceAccount: g.ServiceAccount.ValueString()}
}

// poolGCPModelOf is a pool's overrides as the block.
func poolGCPModelOf(g *policy.GCPPool) *poolGCPModel {
	if g == nil {
		return nil
	}
	return &poolGCPModel{MachineType: optionalString(g.MachineType), ServiceAccount: optionalString(g.ServiceAccount)}
}

// warnManagersServiceAccount warns that a pool without its own service
// account runs as the cluster's, the managers'. A warning, not an error,
// as on aws for instance profiles: the pool works, with too many rights.
// Plan warns when the pool has a gcp block (known to be on gcp without
// asking Google); apply warns, once on gcp, when it has none.
func warnManagersServiceAccount(diags *diag.Diagnostics, m nodePoolModel) {
	diags.AddAttributeWarning(path.Root("gcp").AtName("service_account"), "node pool without its own service account",
		fmt.Sprintf("node pool %s/%s sets no gcp.service_account, so on GCP its instances run as the cluster's gcp.service_account, the managers': "+
			"every one of its workers could read the manager join token, overwrite the cluster's store and resize and delete its instances. "+
			"Set gcp.service_account to a service account granted the workers_json roles of data.autarky_gcp_agent_roles.",
			m.ClusterID.ValueString(), m.Name.ValueString()))
}

// checkPoolGCP is the apply-time check of a pool's gcp block, once its
// cluster's platform is known: a gcp block on another platform's pool
// would be ignored there, so it is refused; a pool on gcp without one
// runs as the managers' service account, which is warned about.
func checkPoolGCP(diags *diag.Diagnostics, p backend, m nodePoolModel) {
	onGCP := p.Name() == policy.PlatformGCP
	switch {
	case !onGCP && m.GCP != nil:
		diags.AddAttributeError(path.Root("gcp"), "gcp block on a pool of another platform",
			fmt.Sprintf("gcp: the gcp block is for pools of platform \"gcp\" clusters only; cluster %s is in %s", m.ClusterID.ValueString(), p.Where()))
	case onGCP && m.GCP == nil:
		warnManagersServiceAccount(diags, m)
	}
}
