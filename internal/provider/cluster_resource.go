package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
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
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"

	"github.com/autarky/terraform-provider-autarky/internal/planmodifiers"
	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/platform/group"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/validators"
)

var (
	_ resource.Resource                   = &clusterResource{}
	_ resource.ResourceWithConfigure      = &clusterResource{}
	_ resource.ResourceWithImportState    = &clusterResource{}
	_ resource.ResourceWithModifyPlan     = &clusterResource{}
	_ resource.ResourceWithValidateConfig = &clusterResource{}
	_ resource.ResourceWithUpgradeState   = &clusterResource{}
)

// tokenAttributes are the attributes schema version 0 had and version 1
// dropped: the swarm's join tokens, which a state file (and every copy of
// it, such as Terraform Cloud's) must not hold.
var tokenAttributes = []string{"worker_join_token", "manager_join_token"}

// UpgradeState takes a version 0 state (with the join tokens in it) to
// version 1: the same values without the tokens, and no rotation trigger.
// It works on the raw JSON, so the old schema need not be kept here, and
// the next state Terraform writes no longer holds the tokens.
func (r *clusterResource) UpgradeState(context.Context) map[int64]resource.StateUpgrader {
	return map[int64]resource.StateUpgrader{
		0: {StateUpgrader: func(_ context.Context, req resource.UpgradeStateRequest, resp *resource.UpgradeStateResponse) {
			if req.RawState == nil || req.RawState.JSON == nil {
				resp.Diagnostics.AddError("upgrading cluster state", "the version 0 state has no JSON to upgrade")
				return
			}
			var attrs map[string]json.RawMessage
			if err := json.Unmarshal(req.RawState.JSON, &attrs); err != nil {
				resp.Diagnostics.AddError("upgrading cluster state", "the version 0 state is not a JSON object: "+err.Error())
				return
			}
			for _, name := range tokenAttributes {
				delete(attrs, name)
			}
			attrs["join_token_rotation"] = json.RawMessage("null")
			b, err := json.Marshal(attrs)
			if err != nil {
				resp.Diagnostics.AddError("upgrading cluster state", err.Error())
				return
			}
			resp.DynamicValue = &tfprotov6.DynamicValue{JSON: b}
		}},
	}
}

// ValidateConfig checks what single attributes cannot: the aws block
// belongs to platform aws and has what it needs there, and so does the
// agent's download on aws.
func (r *clusterResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var m clusterModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() || m.Platform.IsUnknown() {
		return
	}
	platformName := m.Platform.ValueString()
	if m.Platform.IsNull() {
		platformName = policy.PlatformLocal
	}
	validateGCPConfig(m, platformName, &resp.Diagnostics)
	hasAWS := !m.AWS.empty()
	switch {
	case platformName != policy.PlatformAWS && hasAWS:
		resp.Diagnostics.AddAttributeError(path.Root("aws"), "aws block on a "+platformName+" cluster",
			fmt.Sprintf("aws: the aws block is for platform \"aws\" only; this cluster's platform is %q", platformName))
	case platformName == policy.PlatformAWS:
		required := map[string]attr.Value{}
		if m.AWS != nil {
			required["ami"], required["instance_type"], required["subnets"] = m.AWS.AMI, m.AWS.InstanceType, m.AWS.Subnets
		}
		for _, name := range []string{"ami", "instance_type", "subnets"} {
			if v, ok := required[name]; !ok || v.IsNull() {
				resp.Diagnostics.AddAttributeError(path.Root("aws").AtName(name), "missing aws."+name,
					fmt.Sprintf("aws.%s: platform \"aws\" needs it in the cluster's aws block", name))
			}
		}
		if m.AWS != nil && !m.AWS.Tags.IsUnknown() {
			if tags, err := mapFromModel(ctx, m.AWS.Tags); err == nil {
				if err := policy.ValidateAWSTags(tags); err != nil {
					resp.Diagnostics.AddAttributeError(path.Root("aws").AtName("tags"), "invalid aws.tags", "aws.tags: "+err.Error())
				}
			}
		}
		if r := m.JoinTokenRotation; !r.IsNull() && !r.IsUnknown() && r.ValueString() != "" {
			if a := m.Agent; a == nil || (!a.Enabled.IsUnknown() && !a.Enabled.ValueBool()) || (!a.DryRun.IsUnknown() && a.DryRun.ValueBool()) {
				resp.Diagnostics.AddAttributeError(path.Root("join_token_rotation"), "join_token_rotation needs the agent on aws",
					"join_token_rotation: on platform \"aws\" the agent on the leading manager rotates the join tokens (Terraform does not reach the engines): set agent.enabled = true and leave agent.dry_run false")
			}
		}
		if a := m.Agent; a != nil && a.Enabled.ValueBool() && !a.BinaryURL.IsUnknown() && !a.BinarySHA256.IsUnknown() {
			if err := policy.ValidateAgentDownload(a.BinaryURL.ValueString(), a.BinarySHA256.ValueString()); err != nil {
				resp.Diagnostics.AddAttributeError(path.Root("agent"), "invalid agent download", err.Error()+" (managers on aws download the agent at boot)")
			}
		}
	}
}

func newClusterResource() resource.Resource { return &clusterResource{} }

type clusterResource struct {
	data *providerData
}

type clusterModel struct {
	ID               types.String     `tfsdk:"id"`
	Name             types.String     `tfsdk:"name"`
	Platform         types.String     `tfsdk:"platform"`
	ManagerCount     types.Int64      `tfsdk:"manager_count"`
	HeartbeatPeriod  types.String     `tfsdk:"heartbeat_period"`
	Labels           types.Map        `tfsdk:"labels"`
	ManagerPoolID    types.String     `tfsdk:"manager_pool_id"`
	ManagerAddresses types.List       `tfsdk:"manager_addresses"`
	DockerHost       types.String     `tfsdk:"docker_host"`
	Agent            *agentModel      `tfsdk:"agent"`
	AWS              *clusterAWSModel `tfsdk:"aws"`
	GCP              *clusterGCPModel `tfsdk:"gcp"`
	// JoinTokenRotation is the rotation trigger. The join tokens
	// themselves are never in state: see UpgradeState.
	JoinTokenRotation types.String   `tfsdk:"join_token_rotation"`
	Timeouts          timeouts.Value `tfsdk:"timeouts"`
}

type agentModel struct {
	Enabled            types.Bool   `tfsdk:"enabled"`
	Binary             types.String `tfsdk:"binary"`
	EvaluationInterval types.String `tfsdk:"evaluation_interval"`
	DryRun             types.Bool   `tfsdk:"dry_run"`
	BinaryURL          types.String `tfsdk:"binary_url"`
	BinarySHA256       types.String `tfsdk:"binary_sha256"`
}

// empty reports whether the aws block is absent or sets nothing.
func (a *clusterAWSModel) empty() bool {
	return a == nil || allNull(a.AMI, a.InstanceType, a.Subnets, a.SecurityGroups, a.InstanceProfile, a.KeyName, a.Tags)
}

type clusterAWSModel struct {
	AMI             types.String `tfsdk:"ami"`
	InstanceType    types.String `tfsdk:"instance_type"`
	Subnets         types.List   `tfsdk:"subnets"`
	SecurityGroups  types.List   `tfsdk:"security_groups"`
	InstanceProfile types.String `tfsdk:"instance_profile"`
	KeyName         types.String `tfsdk:"key_name"`
	Tags            types.Map    `tfsdk:"tags"`
}

func (r *clusterResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_cluster"
}

func (r *clusterResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		// Version 1 dropped worker_join_token and manager_join_token.
		Version: 1,
		MarkdownDescription: "A Docker Swarm cluster: its managers form the cluster's manager pool. " +
			"On the `local` platform each manager is a dockerd process on this machine; the first initialises the swarm and the others join it as managers.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed:            true,
				MarkdownDescription: "The cluster's id: its name. Import a cluster by it.",
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"name": schema.StringAttribute{
				Required:            true,
				MarkdownDescription: "The cluster's name, a DNS label (lower-case letters, digits and `-`, at most 63 characters), unique within the platform's store. Changing it replaces the cluster.",
				Validators:          []validator.String{validators.Name()},
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"platform": schema.StringAttribute{
				Optional:            true,
				Computed:            true,
				Default:             stringdefault.StaticString(policy.PlatformLocal),
				MarkdownDescription: "Where instances come from: `local` (dockerd processes on this machine), `aws` (Auto Scaling Groups; needs the provider's `aws` block and this resource's `aws` block) or `gcp` (regional Managed Instance Groups; needs the provider's `gcp` block and this resource's `gcp` block). Defaults to `local`. Changing it replaces the cluster.",
				Validators:          []validator.String{validators.Platform()},
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"manager_count": schema.Int64Attribute{
				Optional:            true,
				Computed:            true,
				Default:             int64default.StaticInt64(3),
				MarkdownDescription: "How many managers the cluster has: 1, 3, 5 or 7 (an odd number keeps Raft quorum). Defaults to 3. Changed in place, one manager at a time.",
				Validators:          []validator.Int64{validators.ManagerCount()},
			},
			"heartbeat_period": schema.StringAttribute{
				Optional:            true,
				Computed:            true,
				Default:             stringdefault.StaticString(policy.DefaultHeartbeatPeriod.String()),
				MarkdownDescription: "Swarm's dispatcher heartbeat period: how often nodes report to the managers, and so how fast a dead node is marked Down. A duration of at least `1s`; defaults to `5s`.",
				Validators:          []validator.String{validators.Duration(time.Second)},
			},
			"labels": schema.MapAttribute{
				Optional:            true,
				ElementType:         types.StringType,
				MarkdownDescription: "Labels set on the swarm itself.",
			},
			"agent": schema.SingleNestedAttribute{
				Optional: true,
				MarkdownDescription: "Runs `autarky-agent` beside every manager, the way user data does on a cloud: the agent on the Raft leader heals and scales the cluster by its policies, " +
					"the others observe and take over when leadership moves. On the `local` platform each agent serves `/metrics`, `/healthz` and `/v1/status` on its manager's address, port 9910.\n\n" +
					"On `aws` each agent listens on its manager's private address, port 9910, and `/v1/alerts` and `/v1/status` require a bearer token there " +
					"(`/metrics` and `/healthz` stay open, for Prometheus and the other agents: they name pools and counts, no node or address; keep port 9910 to your monitoring hosts with the security group). " +
					"Apply makes the token, 256 random bits, as the SecureString SSM parameter `" + policy.AWSPathPrefix + "/<name>/agent/alert-token` before any manager boots; " +
					"Terraform knows its name, never its value, so neither the state nor the plan holds it. Destroy deletes it. " +
					"Each manager's user data reads it with the instance role (the managers' policy of `autarky_aws_agent_policy`; the workers' policy cannot) " +
					"into `/etc/autarky/alert-token` (root's, mode 0600, never on a command line), and the agent's unit passes `--alert-token-file`. " +
					"`autarky-agent status --address http://<private address>:9910`, run as root on a manager, sends it by itself.\n\n" +
					"Give Alertmanager the same secret in a file, and a webhook receiver per manager (the agents on followers ignore what they get; only the leader's acts):\n\n" +
					"```shell\n" +
					"aws ssm get-parameter --with-decryption --name " + policy.AWSPathPrefix + "/<name>/agent/alert-token \\\n" +
					"  --query Parameter.Value --output text > /etc/alertmanager/autarky-token\n" +
					"chmod 0600 /etc/alertmanager/autarky-token   # and chown it to the user Alertmanager runs as\n" +
					"```\n\n" +
					"```yaml\n" +
					"receivers:\n" +
					"  - name: autarky\n" +
					"    webhook_configs:\n" +
					"      - url: http://10.0.1.10:9910/v1/alerts   # one entry per manager address\n" +
					"        http_config:\n" +
					"          authorization:\n" +
					"            type: Bearer\n" +
					"            credentials_file: /etc/alertmanager/autarky-token\n" +
					"```\n\n" +
					"Without it, or with the bare token, an agent answers 401. To rotate the token, put a new value " +
					"(`aws ssm put-parameter --overwrite --type SecureString --cli-input-json file://request.json`, so the value is not an argument), " +
					"write it into Alertmanager's file, then on each manager rerun its user data or replace the instance: the agent reads its file when it starts.\n\n" +
					"On `gcp` it is the same, with the token as the object `gs://<bucket>/" + policy.GCSObjectPrefix + "/<name>/" + group.KeyAlertToken + "` in the provider's bucket, " +
					"which each manager's startup script reads with the managers' service account (`managers_json` of `autarky_gcp_agent_roles`; `workers_json` cannot).",
				Attributes: map[string]schema.Attribute{
					"enabled": schema.BoolAttribute{
						Required:            true,
						MarkdownDescription: "Whether the agents run.",
					},
					"binary": schema.StringAttribute{
						Optional:            true,
						MarkdownDescription: "Path of the `autarky-agent` executable (local platform). Defaults to `autarky-agent` beside the provider's own binary, else on `PATH`.",
					},
					"evaluation_interval": schema.StringAttribute{
						Optional:            true,
						Computed:            true,
						Default:             stringdefault.StaticString(policy.DefaultEvaluationInterval.String()),
						MarkdownDescription: "How often an agent evaluates when no Swarm event wakes it: a duration from `100ms` to `1h`; defaults to `2s`.",
						Validators:          []validator.String{validators.EvaluationInterval()},
					},
					"dry_run": schema.BoolAttribute{
						Optional:            true,
						Computed:            true,
						Default:             booldefault.StaticBool(false),
						MarkdownDescription: "When true the agents decide and report what they would do, and change nothing.",
					},
					"binary_url": schema.StringAttribute{
						Optional:            true,
						MarkdownDescription: "On `aws` and `gcp`: the http(s) URL each manager downloads the static linux `autarky-agent` from at boot. Required there when `enabled`.",
					},
					"binary_sha256": schema.StringAttribute{
						Optional:            true,
						MarkdownDescription: "On `aws` and `gcp`: the SHA-256 (64 lower-case hex digits) of the binary at `binary_url`; a manager refuses to run a download that does not match.",
					},
				},
			},
			"manager_pool_id": schema.StringAttribute{
				Computed:            true,
				MarkdownDescription: "The id of the cluster's manager pool (`<name>/managers`), for attaching a healing policy to the managers. Known at plan time.",
				PlanModifiers:       []planmodifier.String{managerPoolIDFromName{}},
			},
			"manager_addresses": schema.ListAttribute{
				Computed:            true,
				ElementType:         types.StringType,
				MarkdownDescription: "The swarm addresses (`ip:2377`) of the managers that are running.",
			},
			"docker_host": schema.StringAttribute{
				Computed:            true,
				MarkdownDescription: "The Docker endpoint of a running manager, for `docker -H` or `DOCKER_HOST`.",
			},
			"join_token_rotation": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: "A rotation trigger for the swarm's join tokens: any text (a date, a counter, a ticket id), at most 256 characters. " +
					"Whenever it changes to a new value (not when it is removed), apply rotates both tokens (worker and manager) in the swarm, as `docker swarm join-token --rotate` does, and in the platform's token store, " +
					"so a token that leaked no longer admits a node; nodes already in the swarm are not affected. " +
					"On `local` the provider rotates them itself; on `aws` and `gcp` the agent on the leading manager does (it needs `agent.enabled` and not `dry_run`), " +
					"stores the new tokens in SSM (aws) or the bucket (gcp), and apply waits until it has. Setting it on create rotates nothing: a new swarm has new tokens.\n\n" +
					"The join tokens are not attributes of this resource and never enter Terraform's state or plan. Read them where they live when you need one: " +
					"`docker -H <docker_host> swarm join-token -q worker` on `local`, `aws ssm get-parameter --with-decryption --name " + policy.AWSPathPrefix + "/<name>/tokens/worker` on `aws`, " +
					"`gcloud storage cat gs://<bucket>/" + policy.GCSObjectPrefix + "/<name>/" + "tokens/worker` on `gcp`.",
				Validators: []validator.String{validators.Check("must be a short rotation trigger", policy.ValidateJoinTokenRotation)},
			},
		},
		Blocks: map[string]schema.Block{
			"timeouts": timeouts.Block(ctx, timeouts.Opts{Create: true, Update: true, Delete: true}),
			"gcp":      clusterGCPBlock(),
			"aws": schema.SingleNestedBlock{
				MarkdownDescription: "Where the cluster's instances run when `platform = \"aws\"`: every node pool of the cluster is an Auto Scaling Group launched from these settings. " +
					"The managers' group is `<name>-managers`; its user data installs Docker if needed, lets exactly one manager `swarm init` (a lock parameter in SSM), and joins the others with the token read from SSM at boot.",
				Attributes: map[string]schema.Attribute{
					"ami": schema.StringAttribute{
						Optional: true, MarkdownDescription: "The AMI every instance boots (`ami-...`). Required on `aws`.",
						Validators: []validator.String{validators.Check("must be an AMI id", policy.ValidateAMI)},
					},
					"instance_type": schema.StringAttribute{
						Optional: true, MarkdownDescription: "The EC2 instance type of the managers and, unless a pool says otherwise, of every pool. Required on `aws`.",
						Validators: []validator.String{validators.Check("must be an EC2 instance type", policy.ValidateInstanceType)},
					},
					"subnets": schema.ListAttribute{
						Optional: true, ElementType: types.StringType,
						MarkdownDescription: "The VPC subnets (`subnet-...`) the groups launch into; spread them over availability zones. At least one on `aws`.",
						Validators:          []validator.List{listvalidator.SizeAtLeast(1), listvalidator.ValueStringsAre(validators.Check("must be a subnet id", policy.ValidateSubnet))},
					},
					"security_groups": schema.ListAttribute{
						Optional: true, ElementType: types.StringType,
						MarkdownDescription: "Security groups (`sg-...`) of every instance. They must let the nodes reach each other on TCP 2377 and 7946, UDP 7946 and 4789.",
						Validators:          []validator.List{listvalidator.ValueStringsAre(validators.Check("must be a security group id", policy.ValidateSecurityGroup))},
					},
					"instance_profile": schema.StringAttribute{
						Optional: true,
						MarkdownDescription: "The IAM instance profile (name or ARN) of the managers' instances; its role needs the `json` policy of the `autarky_aws_agent_policy` data source, which the agent and the managers' user data run with. " +
							"A node pool's instances get the pool's own `aws.instance_profile` (with the data source's `worker_json`); a pool without one falls back to this profile, and with it to the managers' rights.",
						Validators: []validator.String{validators.Check("must be an IAM instance profile name or ARN", policy.ValidateInstanceProfile)},
					},
					"key_name": schema.StringAttribute{
						Optional: true, MarkdownDescription: "An EC2 key pair name for SSH access to the instances.",
					},
					"tags": schema.MapAttribute{
						Optional: true, ElementType: types.StringType,
						MarkdownDescription: "Tags of every group, launch template and instance (propagated at launch). Keys starting with `aws:` or `autarky:` are reserved.",
					},
				},
			},
		},
	}
}

func (r *clusterResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.data = configureData(req.ProviderData, &resp.Diagnostics)
}

// managerPoolIDFromName plans manager_pool_id from the cluster's name. The
// managers' pool id is `<name>/managers`, so it is known as soon as the
// name is, also when the cluster is created in the same run: a resource
// that refers to it is then checked at plan time (a scaling policy on the
// managers is refused by terraform plan, not at apply). The name forces
// replacement, so the planned id never differs from the one Read sets.
type managerPoolIDFromName struct{}

func (managerPoolIDFromName) Description(context.Context) string {
	return "the manager pool's id follows from the cluster's name"
}

func (m managerPoolIDFromName) MarkdownDescription(ctx context.Context) string {
	return m.Description(ctx)
}

func (managerPoolIDFromName) PlanModifyString(ctx context.Context, req planmodifier.StringRequest, resp *planmodifier.StringResponse) {
	var name types.String
	resp.Diagnostics.Append(req.Plan.GetAttribute(ctx, path.Root("name"), &name)...)
	if resp.Diagnostics.HasError() || name.IsNull() || name.IsUnknown() {
		return
	}
	resp.PlanValue = types.StringValue(policy.Cluster{Name: name.ValueString()}.ManagerPoolID())
}

// ModifyPlan keeps the computed addresses from state unless the manager set changes.
func (r *clusterResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	r.planGCPCluster(ctx, req, resp)
	if req.Plan.Raw.IsNull() || req.State.Raw.IsNull() {
		return
	}
	if planmodifiers.StateUnlessChanged(ctx, req.State, req.Plan, path.Root("manager_count")) {
		var st clusterModel
		resp.Diagnostics.Append(req.State.Get(ctx, &st)...)
		if resp.Diagnostics.HasError() {
			return
		}
		resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("manager_addresses"), st.ManagerAddresses)...)
		resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("docker_host"), st.DockerHost)...)
	}
}

func (m clusterModel) descriptor(ctx context.Context) (policy.Cluster, error) {
	c := policy.Cluster{
		Name:            m.Name.ValueString(),
		Platform:        m.Platform.ValueString(),
		ManagerCount:    m.ManagerCount.ValueInt64(),
		HeartbeatPeriod: m.HeartbeatPeriod.ValueString(),
		// Null and "" both mean no trigger.
		JoinTokenRotation: m.JoinTokenRotation.ValueString(),
	}
	if m.Agent != nil {
		c.Agent = &policy.Agent{
			Enabled:            m.Agent.Enabled.ValueBool(),
			Binary:             m.Agent.Binary.ValueString(),
			EvaluationInterval: m.Agent.EvaluationInterval.ValueString(),
			DryRun:             m.Agent.DryRun.ValueBool(),
			BinaryURL:          m.Agent.BinaryURL.ValueString(),
			BinarySHA256:       m.Agent.BinarySHA256.ValueString(),
		}
	}
	if a := m.AWS; !a.empty() {
		c.AWS = &policy.AWS{AMI: a.AMI.ValueString(), InstanceType: a.InstanceType.ValueString(),
			InstanceProfile: a.InstanceProfile.ValueString(), KeyName: a.KeyName.ValueString()}
		var err error
		if c.AWS.Subnets, err = listFromModel(ctx, a.Subnets); err != nil {
			return c, err
		}
		if c.AWS.SecurityGroups, err = listFromModel(ctx, a.SecurityGroups); err != nil {
			return c, err
		}
		if c.AWS.Tags, err = mapFromModel(ctx, a.Tags); err != nil {
			return c, err
		}
	}
	g, err := m.GCP.descriptor(ctx)
	if err != nil {
		return c, err
	}
	c.GCP = g
	labels, err := mapFromModel(ctx, m.Labels)
	c.Labels = labels
	return c, err
}

func (m *clusterModel) fill(ctx context.Context, c policy.Cluster, st platform.ClusterStatus) error {
	m.ID = types.StringValue(c.Name)
	m.Name = types.StringValue(c.Name)
	m.Platform = types.StringValue(c.Platform)
	m.ManagerCount = types.Int64Value(c.ManagerCount)
	m.HeartbeatPeriod = types.StringValue(c.HeartbeatPeriod)
	labels, err := mapToModel(ctx, c.Labels, m.Labels)
	if err != nil {
		return err
	}
	m.Labels = labels
	m.Agent = nil
	if c.Agent != nil {
		m.Agent = &agentModel{
			Enabled:            types.BoolValue(c.Agent.Enabled),
			Binary:             types.StringNull(),
			EvaluationInterval: types.StringValue(c.Agent.EvaluationInterval),
			DryRun:             types.BoolValue(c.Agent.DryRun),
		}
		if c.Agent.Binary != "" {
			m.Agent.Binary = types.StringValue(c.Agent.Binary)
		}
		m.Agent.BinaryURL, m.Agent.BinarySHA256 = optionalString(c.Agent.BinaryURL), optionalString(c.Agent.BinarySHA256)
	}
	if c.AWS != nil {
		prev := m.AWS
		if prev == nil {
			prev = &clusterAWSModel{Tags: types.MapNull(types.StringType), SecurityGroups: types.ListNull(types.StringType)}
		}
		a := &clusterAWSModel{AMI: types.StringValue(c.AWS.AMI), InstanceType: types.StringValue(c.AWS.InstanceType),
			InstanceProfile: optionalString(c.AWS.InstanceProfile), KeyName: optionalString(c.AWS.KeyName)}
		var err error
		if a.Subnets, err = listToModel(ctx, c.AWS.Subnets, types.ListNull(types.StringType)); err != nil {
			return err
		}
		if a.SecurityGroups, err = listToModel(ctx, c.AWS.SecurityGroups, prev.SecurityGroups); err != nil {
			return err
		}
		if a.Tags, err = mapToModel(ctx, c.AWS.Tags, prev.Tags); err != nil {
			return err
		}
		m.AWS = a
	} else {
		m.AWS = nil
	}
	if m.GCP, err = gcpModel(ctx, c.GCP, m.GCP); err != nil {
		return err
	}
	m.ManagerPoolID = types.StringValue(c.ManagerPoolID())
	addrs, diags := types.ListValueFrom(ctx, types.StringType, nonNil(st.ManagerAddresses))
	if diags.HasError() {
		return fmt.Errorf("manager_addresses: %v", diags)
	}
	m.ManagerAddresses = addrs
	m.DockerHost = types.StringValue(st.DockerHost)
	m.JoinTokenRotation = optionalString(c.JoinTokenRotation)
	return nil
}

func (r *clusterResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan clusterModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := plan.Timeouts.Create(ctx, 10*time.Minute)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := plan.descriptor(ctx)
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("labels"), "invalid labels", err.Error())
		return
	}
	p, err := r.data.backendFor(ctx, c.Platform)
	if err != nil {
		resp.Diagnostics.AddError("creating cluster", err.Error())
		return
	}
	c = p.Fill(c)
	st, err := p.CreateCluster(ctx, c)
	if err != nil {
		resp.Diagnostics.AddError("creating cluster "+c.Name, err.Error())
		return
	}
	if err := plan.fill(ctx, c, st); err != nil {
		resp.Diagnostics.AddError("creating cluster "+c.Name, err.Error())
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, plan)...)
}

func (r *clusterResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state clusterModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	var p backend
	var err error
	if state.Platform.IsNull() || state.Platform.IsUnknown() { // import
		p, err = r.data.backendOfCluster(ctx, state.ID.ValueString())
	} else {
		p, err = r.data.backendFor(ctx, state.Platform.ValueString())
	}
	if err != nil {
		resp.Diagnostics.AddError("reading cluster", err.Error())
		return
	}
	c, st, err := p.ReadCluster(ctx, state.ID.ValueString())
	if errors.Is(err, platform.ErrNotFound) {
		resp.Diagnostics.AddWarning("cluster not found", fmt.Sprintf("cluster %s is no longer in %s; removing it from the Terraform state", state.ID.ValueString(), p.Where()))
		resp.State.RemoveResource(ctx)
		return
	}
	if err == nil && st.Lost {
		resp.Diagnostics.AddWarning("cluster lost", fmt.Sprintf("every manager of cluster %s is gone; removing it from the Terraform state so the next apply creates it anew", c.Name))
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		resp.Diagnostics.AddError("reading cluster "+state.ID.ValueString(), err.Error())
		return
	}
	if err := state.fill(ctx, c, st); err != nil {
		resp.Diagnostics.AddError("reading cluster "+c.Name, err.Error())
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, state)...)
}

func (r *clusterResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan clusterModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := plan.Timeouts.Update(ctx, 10*time.Minute)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := plan.descriptor(ctx)
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("labels"), "invalid labels", err.Error())
		return
	}
	p, err := r.data.backendFor(ctx, c.Platform)
	if err != nil {
		resp.Diagnostics.AddError("updating cluster", err.Error())
		return
	}
	c = p.Fill(c)
	st, err := p.UpdateCluster(ctx, c)
	if err != nil {
		resp.Diagnostics.AddError("updating cluster "+c.Name, err.Error())
		return
	}
	if err := plan.fill(ctx, c, st); err != nil {
		resp.Diagnostics.AddError("updating cluster "+c.Name, err.Error())
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, plan)...)
}

func (r *clusterResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state clusterModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := state.Timeouts.Delete(ctx, 10*time.Minute)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	p, err := r.data.backendFor(ctx, state.Platform.ValueString())
	if err != nil {
		resp.Diagnostics.AddError("deleting cluster", err.Error())
		return
	}
	if err := p.DeleteCluster(ctx, state.ID.ValueString()); err != nil {
		resp.Diagnostics.AddError("deleting cluster "+state.ID.ValueString(), err.Error())
	}
}

func (r *clusterResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	if err := policy.ValidateName(req.ID); err != nil {
		resp.Diagnostics.AddError("importing cluster", fmt.Sprintf("import id must be the cluster's name: %s", err))
		return
	}
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}
