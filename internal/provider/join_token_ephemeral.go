package provider

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/ephemeral"
	"github.com/hashicorp/terraform-plugin-framework/ephemeral/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/validators"
)

var (
	_ ephemeral.EphemeralResource              = &joinTokenEphemeral{}
	_ ephemeral.EphemeralResourceWithConfigure = &joinTokenEphemeral{}
)

// newJoinTokenEphemeral is the autarky_join_token ephemeral resource: a
// swarm join token for the few configurations that need one (a machine
// joined by another tool). Terraform never writes an ephemeral value to
// the state or the plan, which is why the token is offered this way and
// not as an attribute of autarky_cluster or a data source. Terraform
// 1.10 and later (OpenTofu 1.11 and later) know ephemeral resources;
// older versions ignore this one and everything else works with them.
func newJoinTokenEphemeral() ephemeral.EphemeralResource { return &joinTokenEphemeral{} }

type joinTokenEphemeral struct {
	data *providerData
}

type joinTokenModel struct {
	ClusterID types.String `tfsdk:"cluster_id"`
	Role      types.String `tfsdk:"role"`
	Token     types.String `tfsdk:"token"`
}

func (e *joinTokenEphemeral) Metadata(_ context.Context, req ephemeral.MetadataRequest, resp *ephemeral.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_join_token"
}

func (e *joinTokenEphemeral) Schema(_ context.Context, _ ephemeral.SchemaRequest, resp *ephemeral.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "A join token of a cluster's swarm, as an ephemeral value: Terraform reads it when it needs it and never writes it to the state or the plan. " +
			"Use it where an ephemeral value may go (a provider block, a provisioner, a write-only attribute), for a machine that another tool joins to the swarm. " +
			"The token comes from where it lives: a manager of the swarm on `local`, the SecureString parameter `" + policy.AWSPathPrefix + "/<cluster>/tokens/<role>` in SSM on `aws` " +
			"(written by the first manager at boot, and by the agent when `join_token_rotation` rotates it). Needs Terraform 1.10 or later (OpenTofu 1.11 or later).",
		Attributes: map[string]schema.Attribute{
			"cluster_id": schema.StringAttribute{
				Required:            true,
				MarkdownDescription: "The id of the cluster (`autarky_cluster.<name>.id`, its name).",
				Validators:          []validator.String{validators.Name()},
			},
			"role": schema.StringAttribute{
				Required:            true,
				MarkdownDescription: "Which token: `worker` or `manager`. A manager token lets a machine into the Raft group; hand it out only to a manager.",
				Validators:          []validator.String{stringvalidator.OneOf(policy.RoleWorker, policy.RoleManager)},
			},
			"token": schema.StringAttribute{
				Computed:            true,
				Sensitive:           true,
				MarkdownDescription: "The join token (`SWMTKN-1-...`).",
			},
		},
	}
}

func (e *joinTokenEphemeral) Configure(_ context.Context, req ephemeral.ConfigureRequest, resp *ephemeral.ConfigureResponse) {
	e.data = configureData(req.ProviderData, &resp.Diagnostics)
}

func (e *joinTokenEphemeral) Open(ctx context.Context, req ephemeral.OpenRequest, resp *ephemeral.OpenResponse) {
	var m joinTokenModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if e.data == nil {
		resp.Diagnostics.AddError("reading a join token", "the provider is not configured")
		return
	}
	cluster := m.ClusterID.ValueString()
	p, err := e.data.backendOfCluster(ctx, cluster)
	if err != nil {
		resp.Diagnostics.AddError("reading a join token of cluster "+cluster, err.Error())
		return
	}
	t, err := p.JoinTokens(ctx, cluster)
	if err != nil {
		resp.Diagnostics.AddError("reading a join token of cluster "+cluster, fmt.Sprintf("%s (%s)", err, p.Where()))
		return
	}
	m.Token = types.StringValue(t.Worker)
	if m.Role.ValueString() == policy.RoleManager {
		m.Token = types.StringValue(t.Manager)
	}
	resp.Diagnostics.Append(resp.Result.Set(ctx, &m)...)
}
