package provider

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/validators"
)

var (
	_ resource.Resource                   = &serviceScalingPolicyResource{}
	_ resource.ResourceWithConfigure      = &serviceScalingPolicyResource{}
	_ resource.ResourceWithImportState    = &serviceScalingPolicyResource{}
	_ resource.ResourceWithValidateConfig = &serviceScalingPolicyResource{}
)

func newServiceScalingPolicyResource() resource.Resource { return &serviceScalingPolicyResource{} }

// serviceScalingPolicyResource is autarky_service_scaling_policy: a Swarm
// service's replica scaling policy (policy.ServiceScaling), stored for the
// agent beside the node pools' policies. The same policy can be declared
// with labels on the service; this one wins over them whole.
type serviceScalingPolicyResource struct {
	data *providerData
}

type serviceScalingPolicyModel struct {
	ID           types.String      `tfsdk:"id"`
	ClusterID    types.String      `tfsdk:"cluster_id"`
	Service      types.String      `tfsdk:"service"`
	MinReplicas  types.Int64       `tfsdk:"min_replicas"`
	MaxReplicas  types.Int64       `tfsdk:"max_replicas"`
	CooldownUp   types.String      `tfsdk:"cooldown_up"`
	CooldownDown types.String      `tfsdk:"cooldown_down"`
	MaxStep      types.Int64       `tfsdk:"max_step"`
	ScaleUpBy    types.Int64       `tfsdk:"scale_up_by"`
	ScaleDownBy  types.Int64       `tfsdk:"scale_down_by"`
	MaxSampleAge types.String      `tfsdk:"max_sample_age"`
	Prometheus   []prometheusModel `tfsdk:"prometheus"`
	Alert        []alertModel      `tfsdk:"alert"`
	DryRun       types.Bool        `tfsdk:"dry_run"`
	Enabled      types.Bool        `tfsdk:"enabled"`
}

func (r *serviceScalingPolicyResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_service_scaling_policy"
}

func (r *serviceScalingPolicyResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	scaleBy := func(what string) schema.Int64Attribute {
		return schema.Int64Attribute{
			Optional: true, Computed: true, Default: int64default.StaticInt64(policy.DefaultScaleBy),
			MarkdownDescription: fmt.Sprintf("How many replicas an alert routed to the service %s, %d to %d, when the policy's `alert` list does not name the alert; defaults to %d (docker-scaler's default).",
				what, policy.MinScaleBy, policy.MaxScaleBy, policy.DefaultScaleBy),
			Validators: []validator.Int64{int64validator.Between(policy.MinScaleBy, policy.MaxScaleBy)},
		}
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "The replica scaling policy of one Swarm service, which Swarm itself cannot scale: the checks that size it (Prometheus queries, Alertmanager alerts, " +
			"including alerts routed with the labels `service=<name>` and `scale=up|down`), its bounds, how fast it may change. The agent on the Raft leader writes the replicas through the Engine API " +
			"with the service's version, so a concurrent `docker service update` is never overwritten blindly; replicas that do not fit become pending tasks that grow a node pool with `pending_tasks`. " +
			"Missing, empty, NaN or stale metrics never scale a service in. Global services, and services labelled `autarky.scale.controller` with another controller, are refused with the reason in the agent's status.\n\n" +
			"The same policy can be declared with labels on the service (`autarky.replicas.min`, `autarky.replicas.max`, ..., or Docker Flow Monitor's `com.df.scaleMin` ...); " +
			"when both exist this resource wins whole, and the agent's status says the labels are ignored. The service need not exist yet: the agent reports the policy as waiting for it.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed:            true,
				MarkdownDescription: "The policy's id, `<cluster name>/<service name>`. Import a policy by it.",
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"cluster_id": schema.StringAttribute{
				Required:            true,
				MarkdownDescription: "The id (the name) of the cluster whose agent scales the service: an `autarky_cluster`'s `id`. Changing it replaces the policy.",
				Validators:          []validator.String{validators.Check("must be a cluster name", policy.ValidateName)},
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"service": schema.StringAttribute{
				Required:            true,
				MarkdownDescription: "The Swarm service's name; a stack's services are named `<stack>_<service>`. Changing it replaces the policy.",
				Validators:          []validator.String{validators.Check("must be a Swarm service name", policy.ValidateServiceName)},
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"min_replicas": schema.Int64Attribute{
				Optional: true, Computed: true, Default: int64default.StaticInt64(policy.DefaultServiceMinReplicas),
				MarkdownDescription: fmt.Sprintf("The fewest replicas the agent scales the service to, 0 or more; defaults to %d. A service outside its bounds is brought back into them.", policy.DefaultServiceMinReplicas),
				Validators:          []validator.Int64{int64validator.Between(0, policy.MaxServiceReplicas)},
			},
			"max_replicas": schema.Int64Attribute{
				Required:            true,
				MarkdownDescription: fmt.Sprintf("The most replicas the agent scales the service to, 1 to %d, at least `min_replicas`.", policy.MaxServiceReplicas),
				Validators:          []validator.Int64{int64validator.Between(1, policy.MaxServiceReplicas)},
			},
			"cooldown_up":   durationAttr(policy.DefaultServiceCooldownUp, "The least time between two scale-ups.", 0),
			"cooldown_down": durationAttr(policy.DefaultServiceCooldownDown, "The least time after any scaling before a scale-down; also the window over which a scale-down must be asked for throughout.", 0),
			"max_step": schema.Int64Attribute{
				Optional: true, Computed: true, Default: int64default.StaticInt64(policy.DefaultServiceMaxStep),
				MarkdownDescription: fmt.Sprintf("The most replicas one decision adds or removes, %d to %d; defaults to %d.", policy.MinMaxStep, policy.MaxMaxStep, policy.DefaultServiceMaxStep),
				Validators:          []validator.Int64{int64validator.Between(policy.MinMaxStep, policy.MaxMaxStep)},
			},
			"scale_up_by":   scaleBy("with `scale=up` adds"),
			"scale_down_by": scaleBy("with `scale=down` removes"),
			"max_sample_age": schema.StringAttribute{
				Optional:            true,
				MarkdownDescription: "The oldest Prometheus sample still trusted; older ones hold the service. Defaults to twice the agent's evaluation interval.",
				Validators:          []validator.String{validators.Duration(time.Second)},
			},
			"prometheus": prometheusChecksAttr("the service", "replicas"),
			"alert":      alertChecksAttr("the service", "replicas"),
			"dry_run": schema.BoolAttribute{
				Optional: true, Computed: true, Default: booldefault.StaticBool(false),
				MarkdownDescription: "Decide and explain in the agent's status, and never write the replicas. Defaults to false.",
			},
			"enabled": schema.BoolAttribute{
				Optional: true, Computed: true, Default: booldefault.StaticBool(true),
				MarkdownDescription: "Whether the agent scales the service; while false the policy is kept and nothing is done. Defaults to true.",
			},
		},
	}
}

func (r *serviceScalingPolicyResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.data = configureData(req.ProviderData, &resp.Diagnostics)
}

// known reports whether every value the policy is built from is known,
// but the cluster's id (known only once the cluster exists, and not part
// of the policy's rules).
func (m serviceScalingPolicyModel) known() bool {
	for _, s := range []types.String{m.Service, m.CooldownUp, m.CooldownDown, m.MaxSampleAge} {
		if s.IsUnknown() {
			return false
		}
	}
	for _, n := range []types.Int64{m.MinReplicas, m.MaxReplicas, m.MaxStep, m.ScaleUpBy, m.ScaleDownBy} {
		if n.IsUnknown() {
			return false
		}
	}
	return promKnown(m.Prometheus)
}

func (m serviceScalingPolicyModel) descriptor() policy.ServiceScaling {
	// Defaults are filled in at plan time; in ValidateConfig they may be null.
	s := policy.DefaultServiceScaling(m.Service.ValueString(), m.MaxReplicas.ValueInt64())
	s.ClusterID = m.ClusterID.ValueString()
	for _, f := range []struct {
		v  types.Int64
		to *int64
	}{{m.MinReplicas, &s.MinReplicas}, {m.MaxStep, &s.MaxStep}, {m.ScaleUpBy, &s.ScaleUpBy}, {m.ScaleDownBy, &s.ScaleDownBy}} {
		if !f.v.IsNull() && !f.v.IsUnknown() {
			*f.to = f.v.ValueInt64()
		}
	}
	for _, f := range []struct {
		v  types.String
		to *string
	}{{m.CooldownUp, &s.CooldownUp}, {m.CooldownDown, &s.CooldownDown}, {m.MaxSampleAge, &s.MaxSampleAge}} {
		if !f.v.IsNull() && !f.v.IsUnknown() {
			*f.to = f.v.ValueString()
		}
	}
	s.DryRun = !m.DryRun.IsNull() && !m.DryRun.IsUnknown() && m.DryRun.ValueBool()
	s.Enabled = m.Enabled.IsNull() || m.Enabled.IsUnknown() || m.Enabled.ValueBool()
	s.Prometheus, s.Alert = checksOf(m.Prometheus, m.Alert)
	return s
}

func (m *serviceScalingPolicyModel) fill(s policy.ServiceScaling) {
	m.ID = types.StringValue(policy.ServiceScalingID(s.ClusterID, s.Service))
	m.ClusterID, m.Service = types.StringValue(s.ClusterID), types.StringValue(s.Service)
	m.MinReplicas, m.MaxReplicas = types.Int64Value(s.MinReplicas), types.Int64Value(s.MaxReplicas)
	m.CooldownUp, m.CooldownDown = types.StringValue(s.CooldownUp), types.StringValue(s.CooldownDown)
	m.MaxStep = types.Int64Value(s.MaxStep)
	m.ScaleUpBy, m.ScaleDownBy = types.Int64Value(policy.DefaultScaleBy), types.Int64Value(policy.DefaultScaleBy)
	if s.ScaleUpBy != 0 {
		m.ScaleUpBy = types.Int64Value(s.ScaleUpBy)
	}
	if s.ScaleDownBy != 0 {
		m.ScaleDownBy = types.Int64Value(s.ScaleDownBy)
	}
	m.MaxSampleAge = types.StringNull()
	if s.MaxSampleAge != "" {
		m.MaxSampleAge = types.StringValue(s.MaxSampleAge)
	}
	m.DryRun, m.Enabled = types.BoolValue(s.DryRun), types.BoolValue(s.Enabled)
	m.Prometheus, m.Alert = checkModels(s.Prometheus, s.Alert)
}

// ValidateConfig checks the whole policy at plan time, as the agent would:
// the errors of policy.ServiceScaling.Validate name their field.
func (r *serviceScalingPolicyResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var cfg serviceScalingPolicyModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if !cfg.known() {
		validateKnownQueries(cfg.Prometheus, "invalid service scaling policy", &resp.Diagnostics)
		return
	}
	if err := cfg.descriptor().Validate(); err != nil {
		resp.Diagnostics.AddError("invalid service scaling policy", err.Error())
	}
}

func (r *serviceScalingPolicyResource) put(ctx context.Context, plan *serviceScalingPolicyModel, verb string, diags *diag.Diagnostics) bool {
	s := plan.descriptor()
	id := policy.ServiceScalingID(s.ClusterID, s.Service)
	p, err := r.data.backendOfCluster(ctx, s.ClusterID)
	if err != nil {
		diags.AddError(verb+" service scaling policy", err.Error())
		return false
	}
	if err := p.PutServiceScalingPolicy(ctx, s); err != nil {
		msg := err.Error()
		if errors.Is(err, platform.ErrNotFound) {
			msg += ": cluster_id must name an existing cluster (an autarky_cluster's id)"
		}
		diags.AddAttributeError(path.Root("cluster_id"), verb+" service scaling policy "+id, msg)
		return false
	}
	plan.fill(s)
	return true
}

func (r *serviceScalingPolicyResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan serviceScalingPolicyModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() || !r.put(ctx, &plan, "creating", &resp.Diagnostics) {
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, plan)...)
}

func (r *serviceScalingPolicyResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan serviceScalingPolicyModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() || !r.put(ctx, &plan, "updating", &resp.Diagnostics) {
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, plan)...)
}

// backendOfID is the platform of a policy id's cluster.
func (r *serviceScalingPolicyResource) backendOfID(ctx context.Context, id string) (backend, error) {
	cluster, _, err := policy.SplitServiceScalingID(id)
	if err != nil {
		return nil, err
	}
	return r.data.backendOfCluster(ctx, cluster)
}

func (r *serviceScalingPolicyResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state serviceScalingPolicyModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	id := state.ID.ValueString()
	p, err := r.backendOfID(ctx, id)
	if err != nil {
		resp.Diagnostics.AddError("reading service scaling policy", err.Error())
		return
	}
	s, err := p.GetServiceScalingPolicy(ctx, id)
	if errors.Is(err, platform.ErrNotFound) {
		resp.Diagnostics.AddWarning("service scaling policy not found", fmt.Sprintf("the service scaling policy %s is no longer in %s; removing it from the Terraform state", id, p.Where()))
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		resp.Diagnostics.AddError("reading service scaling policy "+id, err.Error())
		return
	}
	state.fill(s)
	resp.Diagnostics.Append(resp.State.Set(ctx, state)...)
}

func (r *serviceScalingPolicyResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state serviceScalingPolicyModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	id := state.ID.ValueString()
	p, err := r.backendOfID(ctx, id)
	if err != nil {
		resp.Diagnostics.AddError("deleting service scaling policy", err.Error())
		return
	}
	if err := p.DeleteServiceScalingPolicy(ctx, id); err != nil {
		resp.Diagnostics.AddError("deleting service scaling policy "+id, err.Error())
	}
}

func (r *serviceScalingPolicyResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	if _, _, err := policy.SplitServiceScalingID(req.ID); err != nil {
		resp.Diagnostics.AddError("importing service scaling policy", err.Error())
		return
	}
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}
