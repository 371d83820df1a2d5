package provider

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/autarky/terraform-provider-autarky/internal/planmodifiers"
	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/validators"
)

var (
	_ resource.Resource                   = &nodePoolResource{}
	_ resource.ResourceWithConfigure      = &nodePoolResource{}
	_ resource.ResourceWithImportState    = &nodePoolResource{}
	_ resource.ResourceWithModifyPlan     = &nodePoolResource{}
	_ resource.ResourceWithValidateConfig = &nodePoolResource{}
)

func newNodePoolResource() resource.Resource { return &nodePoolResource{} }

type nodePoolResource struct {
	data *providerData
}

type nodePoolModel struct {
	ID                     types.String   `tfsdk:"id"`
	ClusterID              types.String   `tfsdk:"cluster_id"`
	Name                   types.String   `tfsdk:"name"`
	Role                   types.String   `tfsdk:"role"`
	MinSize                types.Int64    `tfsdk:"min_size"`
	MaxSize                types.Int64    `tfsdk:"max_size"`
	DesiredSize            types.Int64    `tfsdk:"desired_size"`
	Labels                 types.Map      `tfsdk:"labels"`
	WaitForCapacityTimeout types.String   `tfsdk:"wait_for_capacity_timeout"`
	CurrentSize            types.Int64    `tfsdk:"current_size"`
	NodeIDs                types.List     `tfsdk:"node_ids"`
	AWS                    *poolAWSModel  `tfsdk:"aws"`
	GCP                    *poolGCPModel  `tfsdk:"gcp"`
	Timeouts               timeouts.Value `tfsdk:"timeouts"`
}

type poolAWSModel struct {
	InstanceType    types.String `tfsdk:"instance_type"`
	InstanceProfile types.String `tfsdk:"instance_profile"`
	Tags            types.Map    `tfsdk:"tags"`
}

func (r *nodePoolResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_node_pool"
}

func (r *nodePoolResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "A pool of identical worker nodes of a cluster, with a minimum and maximum size. " +
			"On the `local` platform each node is a dockerd process on this machine that joins the swarm with the pool's labels. " +
			"While a scaling policy targets the pool, the agent owns its size and `desired_size` is only the initial size: Terraform does not fight the agent over it.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed:            true,
				MarkdownDescription: "The pool's id, `<cluster name>/<pool name>`. Import a pool by it.",
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"cluster_id": schema.StringAttribute{
				Required:            true,
				MarkdownDescription: "The id of the cluster the pool's nodes join. Changing it replaces the pool.",
				Validators:          []validator.String{validators.Name()},
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"name": schema.StringAttribute{
				Required:            true,
				MarkdownDescription: "The pool's name, a DNS label unique within the cluster (`managers` is reserved). Changing it replaces the pool.",
				Validators:          []validator.String{validators.PoolName()},
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"role": schema.StringAttribute{
				Optional:            true,
				Computed:            true,
				Default:             stringdefault.StaticString(policy.RoleWorker),
				MarkdownDescription: "The Swarm role of the pool's nodes: `worker` (the default). Managers belong to the cluster's manager pool, sized by `manager_count`.",
				Validators:          []validator.String{validators.Role()},
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"min_size": schema.Int64Attribute{
				Optional:            true,
				Computed:            true,
				Default:             int64default.StaticInt64(0),
				MarkdownDescription: "The fewest nodes the pool may have; 0 or more, at most `max_size`. Defaults to 0.",
				Validators:          []validator.Int64{int64validator.AtLeast(0)},
			},
			"max_size": schema.Int64Attribute{
				Required:            true,
				MarkdownDescription: "The most nodes the pool may have; 1 or more.",
				Validators:          []validator.Int64{int64validator.AtLeast(1)},
			},
			"desired_size": schema.Int64Attribute{
				Optional: true,
				Computed: true,
				MarkdownDescription: "How many nodes the pool should have, within `[min_size, max_size]`; defaults to `min_size`. " +
					"Without a scaling policy Terraform keeps the pool at this size and a node that died shows as drift. " +
					"While a scaling policy targets the pool this is only the initial size and the agent owns the size.",
			},
			"labels": schema.MapAttribute{
				Optional:            true,
				ElementType:         types.StringType,
				MarkdownDescription: "Swarm node labels set on every node of the pool, for placement constraints such as `node.labels.tier == web`. Autarky adds `autarky.cluster`, `autarky.pool` and `autarky.instance`. Changed in place.",
			},
			"wait_for_capacity_timeout": schema.StringAttribute{
				Optional:            true,
				Computed:            true,
				Default:             stringdefault.StaticString("5m"),
				MarkdownDescription: "How long apply waits for new nodes to be Ready in Swarm; `0` does not wait. A duration; defaults to `5m`.",
				Validators:          []validator.String{validators.Duration(0)},
			},
			"current_size": schema.Int64Attribute{
				Computed:            true,
				MarkdownDescription: "How many of the pool's nodes are running.",
			},
			"node_ids": schema.ListAttribute{
				Computed:            true,
				ElementType:         types.StringType,
				MarkdownDescription: "The Swarm node ids of the pool's running nodes.",
			},
		},
		Blocks: map[string]schema.Block{
			"timeouts": timeouts.Block(ctx, timeouts.Opts{Create: true, Update: true, Delete: true}),
			"gcp":      poolGCPBlock(),
			"aws": schema.SingleNestedBlock{
				MarkdownDescription: "On an `aws` cluster, what this pool changes of the cluster's `aws` settings. The pool is the Auto Scaling Group `<cluster>-<pool>`, whose maximum is `max_size + 1`: room for one replacement to join before the node it replaces leaves.",
				Attributes: map[string]schema.Attribute{
					"instance_type": schema.StringAttribute{
						Optional: true, MarkdownDescription: "The EC2 instance type of this pool's instances; defaults to the cluster's.",
						Validators: []validator.String{validators.Check("must be an EC2 instance type", policy.ValidateInstanceType)},
					},
					"instance_profile": schema.StringAttribute{
						Optional: true,
						MarkdownDescription: "The IAM instance profile (name or ARN) of this pool's instances; its role needs the `worker_json` policy of the `autarky_aws_agent_policy` data source, " +
							"which lets a worker find the managers and read the worker join token and nothing else. " +
							"Unset, the pool's instances get the cluster's `aws.instance_profile`, the managers' profile, whose role may read the manager join token, write the cluster's parameters and resize and terminate its instances: " +
							"every such worker then holds the managers' rights, and plan and apply warn about it. (Without the fallback, workers that boot with no role could not read their join token and would never join.) " +
							"Changing it adds a version to the pool's launch template: instances launched from then on get the new profile, running ones keep theirs until they are replaced.",
						Validators: []validator.String{validators.Check("must be an IAM instance profile name or ARN", policy.ValidateInstanceProfile)},
					},
					"tags": schema.MapAttribute{
						Optional: true, ElementType: types.StringType,
						MarkdownDescription: "Tags added to the cluster's on this pool's group, launch template and instances (propagated at launch).",
					},
				},
			},
		},
	}
}

func (r *nodePoolResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.data = configureData(req.ProviderData, &resp.Diagnostics)
}

// ValidateConfig checks the sizes against each other at plan time.
func (r *nodePoolResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var cfg nodePoolModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if cfg.MaxSize.IsUnknown() || cfg.MaxSize.IsNull() || cfg.MinSize.IsUnknown() || cfg.DesiredSize.IsUnknown() {
		return
	}
	min := int64(0)
	if !cfg.MinSize.IsNull() {
		min = cfg.MinSize.ValueInt64()
	}
	var desired *int64
	if !cfg.DesiredSize.IsNull() {
		d := cfg.DesiredSize.ValueInt64()
		desired = &d
	}
	// The rule is policy's (ValidateSizes); its error starts with the
	// field it is about, which is where Terraform shows it.
	if err := policy.ValidateSizes(min, cfg.MaxSize.ValueInt64(), desired); err != nil {
		field := "min_size"
		for _, f := range []string{"max_size", "desired_size"} {
			if strings.HasPrefix(err.Error(), f) {
				field = f
			}
		}
		resp.Diagnostics.AddAttributeError(path.Root(field), "invalid "+field, err.Error())
	}
}

// ModifyPlan fills desired_size when it is not configured and keeps the
// computed node list from state unless the pool's nodes will change.
func (r *nodePoolResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() {
		return
	}
	var plan nodePoolModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	var state *nodePoolModel
	if !req.State.Raw.IsNull() {
		state = &nodePoolModel{}
		resp.Diagnostics.Append(req.State.Get(ctx, state)...)
		if resp.Diagnostics.HasError() {
			return
		}
	}
	if plan.AWS != nil && plan.AWS.InstanceProfile.IsNull() {
		warnManagersProfile(&resp.Diagnostics, plan)
	}
	if plan.GCP != nil && plan.GCP.ServiceAccount.IsNull() {
		warnManagersServiceAccount(&resp.Diagnostics, plan)
	}
	if plan.DesiredSize.IsUnknown() && !plan.MinSize.IsUnknown() && !plan.MaxSize.IsUnknown() {
		// Not configured: keep what the pool has, clamped to the new bounds.
		d := plan.MinSize.ValueInt64()
		if state != nil && !state.DesiredSize.IsNull() {
			d = max(plan.MinSize.ValueInt64(), min(state.DesiredSize.ValueInt64(), plan.MaxSize.ValueInt64()))
		}
		resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("desired_size"), d)...)
	}
	if state == nil {
		return
	}
	// Nothing about the nodes changes: the computed node list stays as it
	// is (also while the agent, owning the size, has resized the pool).
	if planmodifiers.StateUnlessChanged(ctx, req.State, resp.Plan, path.Root("desired_size"), path.Root("labels")) {
		resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("current_size"), state.CurrentSize)...)
		resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("node_ids"), state.NodeIDs)...)
	}
}

// warnManagersProfile warns that a pool without its own instance profile
// boots with the cluster's, the managers'. It is a warning, not an error:
// configurations from before per-pool profiles had only the cluster's,
// and refusing them would stop every apply until the operator has created
// a role. Plan warns when the pool has an aws block (an aws pool, known
// without asking AWS); apply warns, once on AWS, when it has none.
func warnManagersProfile(diags *diag.Diagnostics, m nodePoolModel) {
	diags.AddAttributeWarning(path.Root("aws").AtName("instance_profile"), "node pool without its own instance profile",
		fmt.Sprintf("node pool %s/%s sets no aws.instance_profile, so on AWS its instances boot with the cluster's aws.instance_profile, the managers' profile: "+
			"every one of its workers could read the manager join token, overwrite the cluster's parameters and resize and terminate its instances. "+
			"Set aws.instance_profile to a profile whose role has the worker_json policy of data.autarky_aws_agent_policy.",
			m.ClusterID.ValueString(), m.Name.ValueString()))
}

func (m nodePoolModel) descriptor(ctx context.Context) (policy.Pool, time.Duration, error) {
	p := policy.Pool{
		Cluster:                m.ClusterID.ValueString(),
		Name:                   m.Name.ValueString(),
		Role:                   m.Role.ValueString(),
		MinSize:                m.MinSize.ValueInt64(),
		MaxSize:                m.MaxSize.ValueInt64(),
		DesiredSize:            m.DesiredSize.ValueInt64(),
		WaitForCapacityTimeout: m.WaitForCapacityTimeout.ValueString(),
	}
	labels, err := mapFromModel(ctx, m.Labels)
	if err != nil {
		return p, 0, fmt.Errorf("labels: %w", err)
	}
	p.Labels = labels
	if a := m.AWS; a != nil && !allNull(a.InstanceType, a.InstanceProfile, a.Tags) {
		p.AWS = &policy.AWSPool{InstanceType: a.InstanceType.ValueString(), InstanceProfile: a.InstanceProfile.ValueString()}
		if p.AWS.Tags, err = mapFromModel(ctx, a.Tags); err != nil {
			return p, 0, fmt.Errorf("aws.tags: %w", err)
		}
	}
	p.GCP = m.GCP.descriptor()
	wait, err := policy.ParseDuration(p.WaitForCapacityTimeout)
	if err != nil {
		return p, 0, fmt.Errorf("wait_for_capacity_timeout: %w", err)
	}
	return p, wait, nil
}

// fill writes what the platform holds into the model. Without a scaling
// policy the running nodes are the pool's size, so a dead node is drift;
// with one the agent owns the size and the configured value is kept.
func (m *nodePoolModel) fill(ctx context.Context, p policy.Pool, st platform.PoolStatus, fromRead bool) error {
	m.ID = types.StringValue(p.ID())
	m.ClusterID = types.StringValue(p.Cluster)
	m.Name = types.StringValue(p.Name)
	m.Role = types.StringValue(p.Role)
	m.MinSize = types.Int64Value(p.MinSize)
	m.MaxSize = types.Int64Value(p.MaxSize)
	switch {
	case !fromRead && p.SizeOwner == policy.SizeOwnerAgent && !m.DesiredSize.IsNull() && !m.DesiredSize.IsUnknown():
		// The agent owns the size: state keeps the configured initial size.
	case !fromRead:
		m.DesiredSize = types.Int64Value(p.DesiredSize)
	case p.SizeOwner == policy.SizeOwnerAgent && !m.DesiredSize.IsNull():
		// The agent owns the size: keep the configured initial size.
	case p.SizeOwner == policy.SizeOwnerAgent:
		m.DesiredSize = types.Int64Value(p.DesiredSize)
	default:
		m.DesiredSize = types.Int64Value(int64(st.CurrentSize))
	}
	labels, err := mapToModel(ctx, p.Labels, m.Labels)
	if err != nil {
		return err
	}
	m.Labels = labels
	m.WaitForCapacityTimeout = types.StringValue(p.WaitForCapacityTimeout)
	m.CurrentSize = types.Int64Value(int64(st.CurrentSize))
	ids, diags := types.ListValueFrom(ctx, types.StringType, nonNil(st.NodeIDs))
	if diags.HasError() {
		return fmt.Errorf("node_ids: %v", diags)
	}
	m.NodeIDs = ids
	if p.AWS != nil {
		prev := types.MapNull(types.StringType)
		if m.AWS != nil {
			prev = m.AWS.Tags
		}
		tags, err := mapToModel(ctx, p.AWS.Tags, prev)
		if err != nil {
			return err
		}
		m.AWS = &poolAWSModel{InstanceType: optionalString(p.AWS.InstanceType), InstanceProfile: optionalString(p.AWS.InstanceProfile), Tags: tags}
	} else {
		m.AWS = nil
	}
	m.GCP = poolGCPModelOf(p.GCP)
	return nil
}

func (r *nodePoolResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan nodePoolModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := plan.Timeouts.Create(ctx, 15*time.Minute)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	pool, wait, err := plan.descriptor(ctx)
	if err != nil {
		resp.Diagnostics.AddError("creating node pool", err.Error())
		return
	}
	p, err := r.data.backendOfCluster(ctx, pool.Cluster)
	if err != nil {
		resp.Diagnostics.AddError("creating node pool", err.Error())
		return
	}
	if p.Name() == policy.PlatformAWS && plan.AWS == nil {
		warnManagersProfile(&resp.Diagnostics, plan)
	}
	if checkPoolGCP(&resp.Diagnostics, p, plan); resp.Diagnostics.HasError() {
		return
	}
	st, err := p.CreatePool(ctx, pool, wait)
	if err != nil {
		resp.Diagnostics.AddError("creating node pool "+pool.ID(), err.Error())
		return
	}
	if err := plan.fill(ctx, pool, st, false); err != nil {
		resp.Diagnostics.AddError("creating node pool "+pool.ID(), err.Error())
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, plan)...)
}

func (r *nodePoolResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state nodePoolModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	cluster, name, err := policy.SplitPoolID(state.ID.ValueString())
	if err != nil {
		resp.Diagnostics.AddError("reading node pool", err.Error())
		return
	}
	p, err := r.data.backendOfCluster(ctx, cluster)
	if err != nil {
		resp.Diagnostics.AddError("reading node pool", err.Error())
		return
	}
	pool, st, err := p.ReadPool(ctx, cluster, name)
	if errors.Is(err, platform.ErrNotFound) {
		resp.Diagnostics.AddWarning("node pool not found", fmt.Sprintf("node pool %s is no longer in %s; removing it from the Terraform state", state.ID.ValueString(), p.Where()))
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		resp.Diagnostics.AddError("reading node pool "+state.ID.ValueString(), err.Error())
		return
	}
	if _, cst, cerr := p.ReadCluster(ctx, cluster); cerr == nil && cst.Lost {
		resp.Diagnostics.AddWarning("node pool lost", fmt.Sprintf("every manager of cluster %s is gone, so node pool %s is too; removing it from the Terraform state", cluster, pool.ID()))
		resp.State.RemoveResource(ctx)
		return
	}
	if err := state.fill(ctx, pool, st, true); err != nil {
		resp.Diagnostics.AddError("reading node pool "+pool.ID(), err.Error())
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, state)...)
}

func (r *nodePoolResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan nodePoolModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := plan.Timeouts.Update(ctx, 15*time.Minute)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	pool, wait, err := plan.descriptor(ctx)
	if err != nil {
		resp.Diagnostics.AddError("updating node pool", err.Error())
		return
	}
	p, err := r.data.backendOfCluster(ctx, pool.Cluster)
	if err != nil {
		resp.Diagnostics.AddError("updating node pool", err.Error())
		return
	}
	if p.Name() == policy.PlatformAWS && plan.AWS == nil {
		warnManagersProfile(&resp.Diagnostics, plan)
	}
	if checkPoolGCP(&resp.Diagnostics, p, plan); resp.Diagnostics.HasError() {
		return
	}
	pool, st, err := p.UpdatePool(ctx, pool, wait)
	if err != nil {
		resp.Diagnostics.AddError("updating node pool "+pool.ID(), err.Error())
		return
	}
	if err := plan.fill(ctx, pool, st, false); err != nil {
		resp.Diagnostics.AddError("updating node pool "+pool.ID(), err.Error())
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, plan)...)
}

func (r *nodePoolResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state nodePoolModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := state.Timeouts.Delete(ctx, 15*time.Minute)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cluster, name, err := policy.SplitPoolID(state.ID.ValueString())
	if err != nil {
		resp.Diagnostics.AddError("deleting node pool", err.Error())
		return
	}
	p, err := r.data.backendOfCluster(ctx, cluster)
	if err != nil {
		resp.Diagnostics.AddError("deleting node pool", err.Error())
		return
	}
	if err := p.DeletePool(ctx, cluster, name); err != nil {
		resp.Diagnostics.AddError("deleting node pool "+state.ID.ValueString(), err.Error())
	}
}

func (r *nodePoolResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	if _, _, err := policy.SplitPoolID(req.ID); err != nil {
		resp.Diagnostics.AddError("importing node pool", err.Error())
		return
	}
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}
