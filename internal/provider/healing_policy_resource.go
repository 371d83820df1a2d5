package provider

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/validators"
)

var (
	_ resource.Resource                = &healingPolicyResource{}
	_ resource.ResourceWithConfigure   = &healingPolicyResource{}
	_ resource.ResourceWithImportState = &healingPolicyResource{}
)

func newHealingPolicyResource() resource.Resource { return &healingPolicyResource{} }

type healingPolicyResource struct {
	data *providerData
}

type healingPolicyModel struct {
	ID                        types.String `tfsdk:"id"`
	NodePoolID                types.String `tfsdk:"node_pool_id"`
	UnhealthyAfter            types.String `tfsdk:"unhealthy_after"`
	JoinTimeout               types.String `tfsdk:"join_timeout"`
	MinNodeAge                types.String `tfsdk:"min_node_age"`
	MaxUnhealthyPercent       types.Int64  `tfsdk:"max_unhealthy_percent"`
	MaxConcurrentReplacements types.Int64  `tfsdk:"max_concurrent_replacements"`
	Enabled                   types.Bool   `tfsdk:"enabled"`
}

func (r *healingPolicyResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_healing_policy"
}

func (r *healingPolicyResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "The healing policy of one node pool: when the agent counts a node as failed and how fast it replaces failed nodes. " +
			"Attach one to a worker pool by its `id`, or to a cluster's managers by the cluster's `manager_pool_id`; a manager is replaced only while the cluster keeps quorum. " +
			"The provider writes the policy to the platform's store, where the agent on the Swarm leader reads it; a pool without a policy is not healed.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed:            true,
				MarkdownDescription: "The policy's id: the id of the node pool it heals, `<cluster name>/<pool name>`. Import a policy by it.",
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"node_pool_id": schema.StringAttribute{
				Required: true,
				MarkdownDescription: "The id of the node pool to heal, `<cluster name>/<pool name>`: a worker pool's `id` or a cluster's `manager_pool_id`. " +
					"The pool must exist. Changing it replaces the policy.",
				Validators:    []validator.String{poolIDValidator{}},
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"unhealthy_after": schema.StringAttribute{
				Optional: true,
				Computed: true,
				Default:  stringdefault.StaticString(policy.DefaultUnhealthyAfter),
				MarkdownDescription: "How long a node must be `Down` or `Unknown` in Swarm before the agent counts it as failed and replaces it. " +
					"Make it longer than a few of the cluster's heartbeat periods, so one missed heartbeat does not cost a node. A duration; defaults to `" + policy.DefaultUnhealthyAfter + "`, " +
					"a production value: Swarm reschedules a Down node's tasks by itself within seconds, so waiting costs spare capacity, not service, while a shorter wait turns every partition, reboot or dockerd restart into a replaced node. " +
					"Demos and tests set seconds.",
				Validators: []validator.String{validators.Duration(0)},
			},
			"join_timeout": schema.StringAttribute{
				Optional: true,
				Computed: true,
				Default:  stringdefault.StaticString(policy.DefaultJoinTimeout),
				MarkdownDescription: "How long a new instance has to become a `Ready` Swarm node; one that does not in this time is counted as failed and replaced. " +
					"A duration of at least `1s`; defaults to `" + policy.DefaultJoinTimeout + "`.",
				Validators: []validator.String{validators.Duration(time.Second)},
			},
			"min_node_age": schema.StringAttribute{
				Optional: true,
				Computed: true,
				Default:  stringdefault.StaticString(policy.DefaultMinNodeAge),
				MarkdownDescription: "Nodes younger than this are never replaced, whatever their state. " +
					"A duration; defaults to `" + policy.DefaultMinNodeAge + "`: a node that fails that young most likely failed from how it was built, and replacing it at once would loop; " +
					"`0s` judges nodes from their first heartbeat on (demos and tests).",
				Validators: []validator.String{validators.Duration(0)},
			},
			"max_unhealthy_percent": schema.Int64Attribute{
				Optional: true,
				Computed: true,
				Default:  int64default.StaticInt64(policy.DefaultMaxUnhealthyPercent),
				MarkdownDescription: fmt.Sprintf("The largest share, in percent, of the pool (or of the cluster) that may be unhealthy at once while the agent still heals. "+
					"Above it healing stops and the agent says so, since that many failures at once is more likely a network partition or a broken monitor than dead nodes. "+
					"%d to %d; defaults to %d.", policy.MinMaxUnhealthyPercent, policy.MaxMaxUnhealthyPercent, policy.DefaultMaxUnhealthyPercent),
				Validators: []validator.Int64{int64validator.Between(policy.MinMaxUnhealthyPercent, policy.MaxMaxUnhealthyPercent)},
			},
			"max_concurrent_replacements": schema.Int64Attribute{
				Optional: true,
				Computed: true,
				Default:  int64default.StaticInt64(policy.DefaultMaxConcurrentReplacements),
				MarkdownDescription: fmt.Sprintf("How many of the pool's nodes the agent replaces at the same time. Managers are always replaced one at a time. "+
					"%d to %d; defaults to %d.", policy.MinMaxConcurrentReplacements, policy.MaxMaxConcurrentReplacements, policy.DefaultMaxConcurrentReplacements),
				Validators: []validator.Int64{int64validator.Between(policy.MinMaxConcurrentReplacements, policy.MaxMaxConcurrentReplacements)},
			},
			"enabled": schema.BoolAttribute{
				Optional:            true,
				Computed:            true,
				Default:             booldefault.StaticBool(true),
				MarkdownDescription: "Whether the agent heals the pool. `false` keeps the policy in the store, but the agent replaces nothing in the pool and reports its healing as disabled. Defaults to `true`.",
			},
		},
	}
}

func (r *healingPolicyResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.data = configureData(req.ProviderData, &resp.Diagnostics)
}

func (m healingPolicyModel) policy() policy.Healing {
	return policy.Healing{
		PoolID:                    m.NodePoolID.ValueString(),
		UnhealthyAfter:            m.UnhealthyAfter.ValueString(),
		JoinTimeout:               m.JoinTimeout.ValueString(),
		MinNodeAge:                m.MinNodeAge.ValueString(),
		MaxUnhealthyPercent:       m.MaxUnhealthyPercent.ValueInt64(),
		MaxConcurrentReplacements: m.MaxConcurrentReplacements.ValueInt64(),
		Enabled:                   m.Enabled.ValueBool(),
	}
}

func (m *healingPolicyModel) fill(h policy.Healing) {
	m.ID = types.StringValue(h.PoolID)
	m.NodePoolID = types.StringValue(h.PoolID)
	m.UnhealthyAfter = types.StringValue(h.UnhealthyAfter)
	m.JoinTimeout = types.StringValue(h.JoinTimeout)
	m.MinNodeAge = types.StringValue(h.MinNodeAge)
	m.MaxUnhealthyPercent = types.Int64Value(h.MaxUnhealthyPercent)
	m.MaxConcurrentReplacements = types.Int64Value(h.MaxConcurrentReplacements)
	m.Enabled = types.BoolValue(h.Enabled)
}

// put writes the planned policy to the store, for Create and Update alike,
// and fills the model from what was written.
func (r *healingPolicyResource) put(ctx context.Context, plan *healingPolicyModel) error {
	h := plan.policy()
	p, err := r.data.backendOfPoolID(ctx, h.PoolID)
	if err != nil {
		return err
	}
	if err := p.PutHealingPolicy(ctx, h); err != nil {
		if errors.Is(err, platform.ErrNotFound) {
			return fmt.Errorf("%w: node_pool_id must name an existing worker pool (an autarky_node_pool's id) or a cluster's manager_pool_id in %s", err, p.Where())
		}
		return err
	}
	plan.fill(h)
	return nil
}

func (r *healingPolicyResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan healingPolicyModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if err := r.put(ctx, &plan); err != nil {
		resp.Diagnostics.AddError("creating healing policy "+plan.NodePoolID.ValueString(), err.Error())
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, plan)...)
}

func (r *healingPolicyResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state healingPolicyModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	p, err := r.data.backendOfPoolID(ctx, state.ID.ValueString())
	if err != nil {
		resp.Diagnostics.AddError("reading healing policy", err.Error())
		return
	}
	h, err := p.GetHealingPolicy(ctx, state.ID.ValueString())
	if errors.Is(err, platform.ErrNotFound) {
		resp.Diagnostics.AddWarning("healing policy not found", fmt.Sprintf("the healing policy for node pool %s is no longer in %s; removing it from the Terraform state", state.ID.ValueString(), p.Where()))
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		resp.Diagnostics.AddError("reading healing policy "+state.ID.ValueString(), err.Error())
		return
	}
	state.fill(h)
	resp.Diagnostics.Append(resp.State.Set(ctx, state)...)
}

func (r *healingPolicyResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan healingPolicyModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if err := r.put(ctx, &plan); err != nil {
		resp.Diagnostics.AddError("updating healing policy "+plan.NodePoolID.ValueString(), err.Error())
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, plan)...)
}

func (r *healingPolicyResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state healingPolicyModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	p, err := r.data.backendOfPoolID(ctx, state.ID.ValueString())
	if err != nil {
		resp.Diagnostics.AddError("deleting healing policy", err.Error())
		return
	}
	if err := p.DeleteHealingPolicy(ctx, state.ID.ValueString()); err != nil {
		resp.Diagnostics.AddError("deleting healing policy "+state.ID.ValueString(), err.Error())
	}
}

func (r *healingPolicyResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	if _, _, err := policy.SplitPoolID(req.ID); err != nil {
		resp.Diagnostics.AddError("importing healing policy", fmt.Sprintf("import id must be the id of the node pool the policy heals: %s", err))
		return
	}
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}

// poolIDValidator accepts node pool ids, "<cluster name>/<pool name>", the
// same way the store and the agent parse them.
type poolIDValidator struct{}

func (poolIDValidator) Description(context.Context) string {
	return "must be a node pool id, <cluster name>/<pool name>"
}

func (v poolIDValidator) MarkdownDescription(ctx context.Context) string {
	return v.Description(ctx)
}

func (poolIDValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if _, _, err := policy.SplitPoolID(req.ConfigValue.ValueString()); err != nil {
		resp.Diagnostics.AddAttributeError(req.Path, "invalid "+req.Path.String(),
			fmt.Sprintf("%s: %s: use a worker pool's id or a cluster's manager_pool_id", req.Path, err))
	}
}
