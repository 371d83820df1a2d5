package provider

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/diag"
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
	_ resource.Resource                   = &scalingPolicyResource{}
	_ resource.ResourceWithConfigure      = &scalingPolicyResource{}
	_ resource.ResourceWithImportState    = &scalingPolicyResource{}
	_ resource.ResourceWithValidateConfig = &scalingPolicyResource{}
)

func newScalingPolicyResource() resource.Resource { return &scalingPolicyResource{} }

type scalingPolicyResource struct {
	data *providerData
}

type scalingPolicyModel struct {
	ID                 types.String       `tfsdk:"id"`
	NodePoolID         types.String       `tfsdk:"node_pool_id"`
	MinSize            types.Int64        `tfsdk:"min_size"`
	MaxSize            types.Int64        `tfsdk:"max_size"`
	EvaluationInterval types.String       `tfsdk:"evaluation_interval"`
	CooldownUp         types.String       `tfsdk:"cooldown_up"`
	CooldownDown       types.String       `tfsdk:"cooldown_down"`
	ScaleInAfter       types.String       `tfsdk:"scale_in_after"`
	MaxStep            types.Int64        `tfsdk:"max_step"`
	DrainTimeout       types.String       `tfsdk:"drain_timeout"`
	NodeSelector       types.String       `tfsdk:"node_selector"`
	MaxSampleAge       types.String       `tfsdk:"max_sample_age"`
	ProvisionTimeout   types.String       `tfsdk:"provision_timeout"`
	MaxDisrupted       types.Int64        `tfsdk:"max_disrupted_percent"`
	PendingTasks       *pendingTasksModel `tfsdk:"pending_tasks"`
	Prometheus         []prometheusModel  `tfsdk:"prometheus"`
	Alert              []alertModel       `tfsdk:"alert"`
	Enabled            types.Bool         `tfsdk:"enabled"`
}

type pendingTasksModel struct {
	Enabled types.Bool `tfsdk:"enabled"`
}

type prometheusModel struct {
	Name        types.String  `tfsdk:"name"`
	Address     types.String  `tfsdk:"address"`
	Query       types.String  `tfsdk:"query"`
	TargetValue types.Float64 `tfsdk:"target_value"`
	Upper       types.Float64 `tfsdk:"upper"`
	Lower       types.Float64 `tfsdk:"lower"`
	Step        types.Int64   `tfsdk:"step"`
}

type alertModel struct {
	Name types.String `tfsdk:"name"`
	Step types.Int64  `tfsdk:"step"`
}

func (r *scalingPolicyResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_scaling_policy"
}

func durationAttr(def, desc string, min time.Duration) schema.StringAttribute {
	return schema.StringAttribute{
		Optional: true, Computed: true, Default: stringdefault.StaticString(def),
		MarkdownDescription: desc + " A duration; defaults to `" + def + "`.",
		Validators:          []validator.String{validators.Duration(min)},
	}
}

func (r *scalingPolicyResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "The scaling policy of one worker pool: the checks that size it (Swarm scheduler pressure, Prometheus queries, Alertmanager alerts), how fast it may change, and which nodes go first when it shrinks. " +
			"While a scaling policy exists the agent owns the pool's size: `terraform plan` shows no change when the agent has resized the pool. " +
			"When checks disagree, the one asking for the most capacity wins; missing, empty, NaN or stale metrics never shrink a pool. Managers are never autoscaled.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed:            true,
				MarkdownDescription: "The policy's id: the id of the node pool it scales. Import a policy by it.",
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"node_pool_id": schema.StringAttribute{
				Required:            true,
				MarkdownDescription: "The id of the worker pool to scale, `<cluster name>/<pool name>`. A cluster's manager pool is refused: managers are never autoscaled. Changing it replaces the policy.",
				Validators:          []validator.String{poolIDValidator{}, workerPoolValidator{}},
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"min_size": schema.Int64Attribute{
				Optional:            true,
				MarkdownDescription: "The fewest nodes the agent scales the pool to; defaults to the pool's `min_size`, and never goes below it.",
				Validators:          []validator.Int64{int64validator.AtLeast(0)},
			},
			"max_size": schema.Int64Attribute{
				Optional:            true,
				MarkdownDescription: "The most nodes the agent scales the pool to; defaults to the pool's `max_size`, and never goes above it.",
				Validators:          []validator.Int64{int64validator.AtLeast(1)},
			},
			"evaluation_interval": durationAttr(policy.DefaultScalingEvaluationInterval, "How often the agent evaluates the pool's checks when no event (a pending task, an alert) wakes it.", 100*time.Millisecond),
			"cooldown_up":         durationAttr(policy.DefaultCooldownUp, "The least time between two scale-outs.", 0),
			"cooldown_down":       durationAttr(policy.DefaultCooldownDown, "The least time between a scale-in and the scaling before it.", 0),
			"scale_in_after":      durationAttr(policy.DefaultScaleInAfter, "How long a node must be unneeded before it is removed.", 0),
			"max_step": schema.Int64Attribute{
				Optional: true, Computed: true, Default: int64default.StaticInt64(policy.DefaultMaxStep),
				MarkdownDescription: fmt.Sprintf("The most nodes one decision adds or removes, %d to %d; defaults to %d.", policy.MinMaxStep, policy.MaxMaxStep, policy.DefaultMaxStep),
				Validators:          []validator.Int64{int64validator.Between(policy.MinMaxStep, policy.MaxMaxStep)},
			},
			"max_disrupted_percent": schema.Int64Attribute{
				Optional: true, Computed: true, Default: int64default.StaticInt64(policy.DefaultMaxDisruptedPercent),
				MarkdownDescription: fmt.Sprintf("The disruption budget: the share of the pool's nodes, in percent (%d to %d), that may be disrupted (draining or being removed) at once, healing and scale-in counted together; at least one node always may. Scale-in removes no more than what is left of it, and healing waits while scale-in removals fill it. Defaults to %d (Karpenter's default budget).",
					policy.MinMaxDisruptedPercent, policy.MaxMaxDisruptedPercent, policy.DefaultMaxDisruptedPercent),
				Validators: []validator.Int64{int64validator.Between(policy.MinMaxDisruptedPercent, policy.MaxMaxDisruptedPercent)},
			},
			"drain_timeout": durationAttr(policy.DefaultDrainTimeout, "How long a node being removed is drained (its tasks rescheduled elsewhere) before it is removed anyway, recorded as forced.", 0),
			"node_selector": schema.StringAttribute{
				Optional: true, Computed: true, Default: stringdefault.StaticString(policy.DefaultNodeSelector),
				MarkdownDescription: "Which nodes a scale-in removes first: `empty_first` (fewest running tasks, the default), `least_busy` (smallest reserved share), `oldest` or `newest`.",
				Validators:          []validator.String{stringvalidator.OneOf(policy.NodeSelectors...)},
			},
			"max_sample_age": schema.StringAttribute{
				Optional:            true,
				MarkdownDescription: "The oldest Prometheus sample still trusted; older ones hold the pool. The age is that of the raw series the query reads (its stalest series selector), not of the query's answer, which Prometheus stamps with the evaluation time. Defaults to twice `evaluation_interval`.",
				Validators:          []validator.String{validators.Duration(time.Second)},
			},
			"provision_timeout": durationAttr(policy.DefaultProvisionTimeout, "How long an instance the pool asked for may take to become a Ready Swarm node, counted from its launch (or, for a raise of the desired size that no instance answers, from the raise). "+
				"After it the instance no longer counts as capacity, is terminated, the pool's desired size is set to its real size, and the pool does not scale out for a backoff of 5 minutes, doubling to 30 (reset after 3 hours without a timeout), shown as `backoff` in the agent's status and in `autarky_scale_backoff_seconds`.", policy.MinProvisionTimeout),
			"pending_tasks": schema.SingleNestedAttribute{
				Optional: true,
				MarkdownDescription: "Scheduler-aware scaling: when present, the pool grows for Swarm tasks pending because no node has the resources or labels they need and this pool's nodes would fit them, " +
					"by as many nodes as their CPU and memory reservations need (up to `max_step`), also from zero nodes. Write `pending_tasks = {}`.",
				Attributes: map[string]schema.Attribute{
					"enabled": schema.BoolAttribute{
						Optional: true, Computed: true, Default: booldefault.StaticBool(true),
						MarkdownDescription: "Whether the check runs; defaults to true.",
					},
				},
			},
			"prometheus": prometheusChecksAttr("the pool", "nodes"),
			"alert":      alertChecksAttr("the pool", "nodes"),
			"enabled": schema.BoolAttribute{
				Optional: true, Computed: true, Default: booldefault.StaticBool(true),
				MarkdownDescription: "Whether the agent scales the pool; while false it reports what it would do. Defaults to true.",
			},
		},
	}
}

// prometheusChecksAttr is the prometheus list of a scaling policy that
// sizes what (the pool, the service) in units (nodes, replicas).
func prometheusChecksAttr(what, units string) schema.ListNestedAttribute {
	return schema.ListNestedAttribute{
		Optional: true,
		MarkdownDescription: "Checks on Prometheus queries. Each gives either `target_value` (target tracking: desired = ceil(current × value / target)) or `upper`/`lower` thresholds with a `step`. " +
			"A query must return one series; an empty result, NaN, a stale sample or an unreachable Prometheus holds " + what + ".",
		NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
			"name":         schema.StringAttribute{Required: true, MarkdownDescription: "The check's name, unique in the policy, shown in the agent's status."},
			"address":      schema.StringAttribute{Required: true, MarkdownDescription: "The Prometheus server's address, such as `http://127.0.0.1:9090`."},
			"query":        schema.StringAttribute{Required: true, MarkdownDescription: "The PromQL query; it must return one series or a scalar. Parsed at plan time with Prometheus's own parser."},
			"target_value": schema.Float64Attribute{Optional: true, MarkdownDescription: "Target tracking: the value the query should have; " + what + " is sized to bring it there."},
			"upper":        schema.Float64Attribute{Optional: true, MarkdownDescription: "Thresholds: above this value " + what + " grows by `step`."},
			"lower":        schema.Float64Attribute{Optional: true, MarkdownDescription: "Thresholds: below this value " + what + " shrinks by `step`."},
			"step":         schema.Int64Attribute{Optional: true, MarkdownDescription: "Thresholds: how many " + units + " to add or remove; defaults to 1."},
		}},
	}
}

// alertChecksAttr is the alert list of a scaling policy; see
// prometheusChecksAttr.
func alertChecksAttr(what, units string) schema.ListNestedAttribute {
	return schema.ListNestedAttribute{
		Optional:            true,
		MarkdownDescription: "Checks on Alertmanager alerts posted to the agents' `/v1/alerts` webhook (the Prometheus rule → Alertmanager → scaler pattern): while the named alert fires, " + what + " grows by `step`, cooldown respected.",
		NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
			"name": schema.StringAttribute{Required: true, MarkdownDescription: "The alert's `alertname`."},
			"step": schema.Int64Attribute{Optional: true, MarkdownDescription: "How many " + units + " a firing alert adds; defaults to 1."},
		}},
	}
}

// checksOf are the policy's checks from the prometheus and alert lists.
func checksOf(prom []prometheusModel, alerts []alertModel) ([]policy.PrometheusCheck, []policy.AlertCheck) {
	var ps []policy.PrometheusCheck
	for _, p := range prom {
		ps = append(ps, policy.PrometheusCheck{
			Name: p.Name.ValueString(), Address: p.Address.ValueString(), Query: p.Query.ValueString(),
			TargetValue: floatPtr(p.TargetValue), Upper: floatPtr(p.Upper), Lower: floatPtr(p.Lower), Step: p.Step.ValueInt64(),
		})
	}
	var as []policy.AlertCheck
	for _, a := range alerts {
		as = append(as, policy.AlertCheck{Name: a.Name.ValueString(), Step: a.Step.ValueInt64()})
	}
	return ps, as
}

// checkModels are the prometheus and alert lists of the policy's checks.
func checkModels(ps []policy.PrometheusCheck, as []policy.AlertCheck) ([]prometheusModel, []alertModel) {
	var prom []prometheusModel
	for _, p := range ps {
		prom = append(prom, prometheusModel{
			Name: types.StringValue(p.Name), Address: types.StringValue(p.Address), Query: types.StringValue(p.Query),
			TargetValue: optionalFloat(p.TargetValue), Upper: optionalFloat(p.Upper), Lower: optionalFloat(p.Lower), Step: optionalStep(p.Step),
		})
	}
	var alerts []alertModel
	for _, a := range as {
		alerts = append(alerts, alertModel{Name: types.StringValue(a.Name), Step: optionalStep(a.Step)})
	}
	return prom, alerts
}

// validateKnownQueries parses, at plan time, each query known already
// while the rest of a policy waits for unknown values
// (policy.PrometheusCheck.ValidateQuery: the rule Validate applies and the
// agent applies too).
func validateKnownQueries(prom []prometheusModel, summary string, diags *diag.Diagnostics) {
	for i, p := range prom {
		if p.Query.IsNull() || p.Query.IsUnknown() || p.Name.IsUnknown() {
			continue
		}
		c := policy.PrometheusCheck{Name: p.Name.ValueString(), Query: p.Query.ValueString()}
		if err := c.ValidateQuery(); err != nil {
			diags.AddAttributeError(path.Root("prometheus").AtListIndex(i).AtName("query"), summary, fmt.Sprintf("prometheus[%d]%s", i, err))
		}
	}
}

// promKnown reports whether every value of the prometheus checks is known.
func promKnown(prom []prometheusModel) bool {
	for _, p := range prom {
		if p.Address.IsUnknown() || p.Query.IsUnknown() || p.Name.IsUnknown() || p.TargetValue.IsUnknown() || p.Upper.IsUnknown() || p.Lower.IsUnknown() {
			return false
		}
	}
	return true
}

func (r *scalingPolicyResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.data = configureData(req.ProviderData, &resp.Diagnostics)
}

// workerPoolValidator refuses a cluster's manager pool.
type workerPoolValidator struct{}

func (workerPoolValidator) Description(context.Context) string { return "must not be a manager pool" }
func (v workerPoolValidator) MarkdownDescription(ctx context.Context) string {
	return v.Description(ctx)
}
func (workerPoolValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if _, pool, err := policy.SplitPoolID(req.ConfigValue.ValueString()); err == nil && pool == policy.ManagerPoolName {
		resp.Diagnostics.AddAttributeError(req.Path, "invalid node_pool_id", policy.ErrManagersNotAutoscaled(req.ConfigValue.ValueString()).Error())
	}
}

func int64Ptr(v types.Int64) *int64 {
	if v.IsNull() || v.IsUnknown() {
		return nil
	}
	x := v.ValueInt64()
	return &x
}

func floatPtr(v types.Float64) *float64 {
	if v.IsNull() || v.IsUnknown() {
		return nil
	}
	x := v.ValueFloat64()
	return &x
}

// known reports whether every value the policy is built from is known.
func (m scalingPolicyModel) known() bool {
	for _, s := range []types.String{m.EvaluationInterval, m.CooldownUp, m.CooldownDown, m.ScaleInAfter, m.DrainTimeout, m.NodeSelector, m.MaxSampleAge, m.ProvisionTimeout} {
		if s.IsUnknown() {
			return false
		}
	}
	return promKnown(m.Prometheus) && !m.MinSize.IsUnknown() && !m.MaxSize.IsUnknown() && !m.MaxStep.IsUnknown()
}

func (m scalingPolicyModel) descriptor() policy.Scaling {
	s := policy.Scaling{
		PoolID:              m.NodePoolID.ValueString(),
		MinSize:             int64Ptr(m.MinSize),
		MaxSize:             int64Ptr(m.MaxSize),
		EvaluationInterval:  m.EvaluationInterval.ValueString(),
		CooldownUp:          m.CooldownUp.ValueString(),
		CooldownDown:        m.CooldownDown.ValueString(),
		ScaleInAfter:        m.ScaleInAfter.ValueString(),
		MaxStep:             m.MaxStep.ValueInt64(),
		DrainTimeout:        m.DrainTimeout.ValueString(),
		NodeSelector:        m.NodeSelector.ValueString(),
		MaxSampleAge:        m.MaxSampleAge.ValueString(),
		ProvisionTimeout:    m.ProvisionTimeout.ValueString(),
		MaxDisruptedPercent: m.MaxDisrupted.ValueInt64(),
		Enabled:             m.Enabled.IsNull() || m.Enabled.IsUnknown() || m.Enabled.ValueBool(),
	}
	// Defaults are filled in at plan time; in ValidateConfig they may be null.
	d := policy.DefaultScaling(s.PoolID)
	for _, f := range []struct{ v, def *string }{{&s.EvaluationInterval, &d.EvaluationInterval}, {&s.CooldownUp, &d.CooldownUp}, {&s.CooldownDown, &d.CooldownDown}, {&s.ScaleInAfter, &d.ScaleInAfter}, {&s.DrainTimeout, &d.DrainTimeout}, {&s.NodeSelector, &d.NodeSelector}, {&s.ProvisionTimeout, &d.ProvisionTimeout}} {
		if *f.v == "" {
			*f.v = *f.def
		}
	}
	if s.MaxStep == 0 && m.MaxStep.IsNull() {
		s.MaxStep = d.MaxStep
	}
	if s.MaxDisruptedPercent == 0 && m.MaxDisrupted.IsNull() {
		s.MaxDisruptedPercent = d.MaxDisruptedPercent
	}
	if m.PendingTasks != nil && (m.PendingTasks.Enabled.IsNull() || m.PendingTasks.Enabled.IsUnknown() || m.PendingTasks.Enabled.ValueBool()) {
		s.PendingTasks = &policy.PendingTasksCheck{}
	}
	s.Prometheus, s.Alert = checksOf(m.Prometheus, m.Alert)
	return s
}

func optionalInt(p *int64) types.Int64 {
	if p == nil {
		return types.Int64Null()
	}
	return types.Int64Value(*p)
}

func optionalFloat(p *float64) types.Float64 {
	if p == nil {
		return types.Float64Null()
	}
	return types.Float64Value(*p)
}

func optionalStep(n int64) types.Int64 {
	if n == 0 {
		return types.Int64Null()
	}
	return types.Int64Value(n)
}

func (m *scalingPolicyModel) fill(s policy.Scaling) {
	m.ID = types.StringValue(s.PoolID)
	m.NodePoolID = types.StringValue(s.PoolID)
	m.MinSize, m.MaxSize = optionalInt(s.MinSize), optionalInt(s.MaxSize)
	m.EvaluationInterval = types.StringValue(s.EvaluationInterval)
	m.CooldownUp, m.CooldownDown = types.StringValue(s.CooldownUp), types.StringValue(s.CooldownDown)
	m.ScaleInAfter = types.StringValue(s.ScaleInAfter)
	m.MaxStep = types.Int64Value(s.MaxStep)
	m.DrainTimeout = types.StringValue(s.DrainTimeout)
	m.NodeSelector = types.StringValue(s.NodeSelector)
	// A policy stored before provision_timeout existed has none: the
	// agent applies the default, and the state says so.
	m.ProvisionTimeout = types.StringValue(policy.DefaultProvisionTimeout)
	if s.ProvisionTimeout != "" {
		m.ProvisionTimeout = types.StringValue(s.ProvisionTimeout)
	}
	// Likewise max_disrupted_percent.
	m.MaxDisrupted = types.Int64Value(policy.DefaultMaxDisruptedPercent)
	if s.MaxDisruptedPercent != 0 {
		m.MaxDisrupted = types.Int64Value(s.MaxDisruptedPercent)
	}
	m.MaxSampleAge = types.StringNull()
	if s.MaxSampleAge != "" {
		m.MaxSampleAge = types.StringValue(s.MaxSampleAge)
	}
	m.Enabled = types.BoolValue(s.Enabled)
	if s.PendingTasks != nil {
		m.PendingTasks = &pendingTasksModel{Enabled: types.BoolValue(true)}
	} else if m.PendingTasks != nil {
		m.PendingTasks = &pendingTasksModel{Enabled: types.BoolValue(false)}
	}
	m.Prometheus, m.Alert = checkModels(s.Prometheus, s.Alert)
}

// ValidateConfig checks the whole policy at plan time, as the agent would.
func (r *scalingPolicyResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var cfg scalingPolicyModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if !cfg.known() {
		validateKnownQueries(cfg.Prometheus, "invalid scaling policy", &resp.Diagnostics)
		return
	}
	d := cfg.descriptor()
	if cfg.NodePoolID.IsUnknown() {
		// Known only after the pool exists; check everything else now.
		d.PoolID = "cluster/pool"
	}
	if err := d.Validate(); err != nil {
		resp.Diagnostics.AddError("invalid scaling policy", err.Error())
	}
}

func (r *scalingPolicyResource) put(ctx context.Context, plan *scalingPolicyModel, verb string, diags interface{ AddError(string, string) }) bool {
	s := plan.descriptor()
	p, err := r.data.backendOfPoolID(ctx, s.PoolID)
	if err != nil {
		diags.AddError(verb+" scaling policy", err.Error())
		return false
	}
	if err := p.PutScalingPolicy(ctx, s); err != nil {
		msg := err.Error()
		if errors.Is(err, platform.ErrNotFound) {
			msg += ": node_pool_id must name an existing worker pool (an autarky_node_pool's id)"
		}
		diags.AddError(verb+" scaling policy "+s.PoolID, msg)
		return false
	}
	plan.fill(s)
	return true
}

func (r *scalingPolicyResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan scalingPolicyModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() || !r.put(ctx, &plan, "creating", &resp.Diagnostics) {
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, plan)...)
}

func (r *scalingPolicyResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan scalingPolicyModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() || !r.put(ctx, &plan, "updating", &resp.Diagnostics) {
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, plan)...)
}

func (r *scalingPolicyResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state scalingPolicyModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	p, err := r.data.backendOfPoolID(ctx, state.ID.ValueString())
	if err != nil {
		resp.Diagnostics.AddError("reading scaling policy", err.Error())
		return
	}
	s, err := p.GetScalingPolicy(ctx, state.ID.ValueString())
	if errors.Is(err, platform.ErrNotFound) {
		resp.Diagnostics.AddWarning("scaling policy not found", fmt.Sprintf("the scaling policy of %s is no longer in %s; removing it from the Terraform state", state.ID.ValueString(), p.Where()))
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		resp.Diagnostics.AddError("reading scaling policy "+state.ID.ValueString(), err.Error())
		return
	}
	state.fill(s)
	resp.Diagnostics.Append(resp.State.Set(ctx, state)...)
}

func (r *scalingPolicyResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state scalingPolicyModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	p, err := r.data.backendOfPoolID(ctx, state.ID.ValueString())
	if err != nil {
		resp.Diagnostics.AddError("deleting scaling policy", err.Error())
		return
	}
	if err := p.DeleteScalingPolicy(ctx, state.ID.ValueString()); err != nil {
		resp.Diagnostics.AddError("deleting scaling policy "+state.ID.ValueString(), err.Error())
	}
}

func (r *scalingPolicyResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	if _, _, err := policy.SplitPoolID(req.ID); err != nil {
		resp.Diagnostics.AddError("importing scaling policy", err.Error())
		return
	}
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}
