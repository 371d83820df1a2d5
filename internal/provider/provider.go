// Package provider is the Terraform provider: resources and data sources that
// map Terraform schemas to Autarky's domain types and call the platforms.
// It stays thin; validation lives in package policy, platform work in
// package platform.
package provider

import (
	"context"
	"fmt"
	"sync"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/ephemeral"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/validators"
)

var _ provider.Provider = &autarkyProvider{}
var _ provider.ProviderWithValidateConfig = &autarkyProvider{}

type autarkyProvider struct {
	version string
}

type providerModel struct {
	Local *localModel       `tfsdk:"local"`
	AWS   *awsProviderModel `tfsdk:"aws"`
	GCP   *gcpProviderModel `tfsdk:"gcp"`
}

type awsProviderModel struct {
	Region            types.String      `tfsdk:"region"`
	Profile           types.String      `tfsdk:"profile"`
	SharedConfigFiles types.List        `tfsdk:"shared_config_files"`
	Endpoints         *endpointsModel   `tfsdk:"endpoints"`
	AssumeRole        *assumeRoleModel  `tfsdk:"assume_role"`
	WebIdentity       *webIdentityModel `tfsdk:"assume_role_with_web_identity"`
}

type endpointsModel struct {
	EC2         types.String `tfsdk:"ec2"`
	AutoScaling types.String `tfsdk:"autoscaling"`
	SSM         types.String `tfsdk:"ssm"`
	STS         types.String `tfsdk:"sts"`
}

// assumeRoleModel and webIdentityModel are the hashicorp/aws provider's
// blocks of the same names (the subset that matters to a deployment).
type assumeRoleModel struct {
	RoleARN        types.String `tfsdk:"role_arn"`
	SessionName    types.String `tfsdk:"session_name"`
	ExternalID     types.String `tfsdk:"external_id"`
	Duration       types.String `tfsdk:"duration"`
	Policy         types.String `tfsdk:"policy"`
	PolicyARNs     types.Set    `tfsdk:"policy_arns"`
	SourceIdentity types.String `tfsdk:"source_identity"`
}

type webIdentityModel struct {
	RoleARN              types.String `tfsdk:"role_arn"`
	SessionName          types.String `tfsdk:"session_name"`
	WebIdentityToken     types.String `tfsdk:"web_identity_token"`
	WebIdentityTokenFile types.String `tfsdk:"web_identity_token_file"`
	Duration             types.String `tfsdk:"duration"`
	Policy               types.String `tfsdk:"policy"`
	PolicyARNs           types.Set    `tfsdk:"policy_arns"`
}

type localModel struct {
	StateDir       types.String `tfsdk:"state_dir"`
	WorkloadBinary types.String `tfsdk:"workload_binary"`
}

// providerData is what resources receive from Configure: the platform
// blocks as policy's settings, and each platform opened once per provider
// process (platform.OpenBackend), on first use.
type providerData struct {
	settings platform.ProviderSettings

	mu     sync.Mutex
	opened map[string]*openedBackend
}

// openedBackend is one platform, opened once.
type openedBackend struct {
	once sync.Once
	b    backend
	err  error
}

// progressTo sends platform progress to the provider's log for this request.
func progressTo(ctx context.Context) func(msg string, kv ...any) {
	return func(msg string, kv ...any) {
		fields := map[string]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			fields[fmt.Sprint(kv[i])] = kv[i+1]
		}
		tflog.Info(ctx, msg, fields)
	}
}

// New returns the provider factory for a build of the given version.
func New(version string) func() provider.Provider {
	return func() provider.Provider { return &autarkyProvider{version: version} }
}

func (p *autarkyProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "autarky"
	resp.Version = p.version
}

func (p *autarkyProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Autarky makes Docker Swarm clusters self-sufficient: it declares clusters, node pools and their healing and scaling policies, and an agent on the managers keeps the cluster in that shape.",
		Blocks: map[string]schema.Block{
			"aws": schema.SingleNestedBlock{
				MarkdownDescription: "Settings of the `aws` platform, whose node pools are Auto Scaling Groups. Credentials come from the standard AWS chain: " +
					"`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, `AWS_ROLE_ARN` with `AWS_WEB_IDENTITY_TOKEN_FILE` (Terraform Cloud's dynamic provider credentials, EKS service accounts), " +
					"the shared config and credentials files (`profile`, `shared_config_files`), SSO, or the instance or container role; " +
					"`assume_role_with_web_identity` and `assume_role` then change whose they are, as in the hashicorp/aws provider. " +
					"The aws platform keeps nothing on the machine running Terraform: it needs no state directory and writes nothing to the home directory.",
				Blocks: map[string]schema.Block{
					"assume_role":                   assumeRoleBlock(),
					"assume_role_with_web_identity": webIdentityBlock(),
				},
				Attributes: map[string]schema.Attribute{
					"region": schema.StringAttribute{
						Optional:            true,
						MarkdownDescription: "The AWS region, such as `eu-west-1`. Defaults to `AWS_REGION`, else the profile's region.",
						Validators:          []validator.String{validators.Check("must be an AWS region name", policy.ValidateAWSRegion)},
					},
					"profile": schema.StringAttribute{
						Optional:            true,
						MarkdownDescription: "The shared config profile to take credentials and region from. Defaults to `AWS_PROFILE`, else `default`.",
					},
					"shared_config_files": schema.ListAttribute{
						Optional:    true,
						ElementType: types.StringType,
						MarkdownDescription: "Shared config files to read instead of `AWS_CONFIG_FILE` or `~/.aws/config`, such as the one Terraform Cloud writes for dynamic provider credentials " +
							"(`var.tfc_aws_dynamic_credentials.default.shared_config_file`).",
					},
					"endpoints": schema.SingleNestedAttribute{
						Optional:            true,
						MarkdownDescription: "Custom service endpoints, only to reach an emulator or private (VPC) endpoints. Each is an http(s) URL.",
						Attributes: map[string]schema.Attribute{
							"ec2": schema.StringAttribute{Optional: true, MarkdownDescription: "The EC2 endpoint URL.",
								Validators: []validator.String{validators.Check("must be an http(s) URL", policy.ValidateHTTPURL)}},
							"autoscaling": schema.StringAttribute{Optional: true, MarkdownDescription: "The Auto Scaling endpoint URL.",
								Validators: []validator.String{validators.Check("must be an http(s) URL", policy.ValidateHTTPURL)}},
							"ssm": schema.StringAttribute{Optional: true, MarkdownDescription: "The SSM (Parameter Store) endpoint URL.",
								Validators: []validator.String{validators.Check("must be an http(s) URL", policy.ValidateHTTPURL)}},
							"sts": schema.StringAttribute{Optional: true, MarkdownDescription: "The STS endpoint URL, for role assumption (`assume_role`, `assume_role_with_web_identity`, and `AWS_ROLE_ARN` from the environment or a profile).",
								Validators: []validator.String{validators.Check("must be an http(s) URL", policy.ValidateHTTPURL)}},
						},
					},
				},
			},
			"gcp": gcpProviderBlock(),
			"local": schema.SingleNestedBlock{
				MarkdownDescription: "Settings of the `local` platform, whose nodes are dockerd processes on this machine (needs root and Debian's `docker.io`).",
				Attributes: map[string]schema.Attribute{
					"state_dir": schema.StringAttribute{
						Optional: true,
						MarkdownDescription: fmt.Sprintf("Directory that holds the local platform's cluster descriptors, policies and node data. "+
							"Defaults to the `%s` environment variable, else `%s`. An absolute path of at most 50 characters, since each node's unix sockets live under it.",
							policy.StateDirEnv, policy.DefaultStateDir),
					},
					"workload_binary": schema.StringAttribute{
						Optional: true,
						MarkdownDescription: "Path of a static Linux executable loaded into every node of clusters created by this provider as the image `autarky/workload:latest` (a root filesystem holding only `/workload`), " +
							"so services can run without a registry. `autarky-agent` itself serves: inside the image it runs its small HTTP workload.",
					},
				},
			},
		},
	}
}

func (p *autarkyProvider) ValidateConfig(ctx context.Context, req provider.ValidateConfigRequest, resp *provider.ValidateConfigResponse) {
	var cfg providerModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if cfg.AWS != nil {
		validateAWSCredentials(cfg.AWS, &resp.Diagnostics)
	}
	if cfg.GCP != nil {
		validateGCPProvider(cfg.GCP, &resp.Diagnostics)
	}
	if cfg.Local == nil {
		return
	}
	if v := cfg.Local.StateDir; !v.IsNull() && !v.IsUnknown() {
		if err := policy.ValidateStateDir(v.ValueString()); err != nil {
			resp.Diagnostics.AddAttributeError(path.Root("local").AtName("state_dir"), "invalid local.state_dir", err.Error())
		}
	}
	if v := cfg.Local.WorkloadBinary; !v.IsNull() && !v.IsUnknown() {
		if err := policy.ValidateWorkloadBinary(v.ValueString()); err != nil {
			resp.Diagnostics.AddAttributeError(path.Root("local").AtName("workload_binary"), "invalid local.workload_binary", err.Error())
		}
	}
}

func (p *autarkyProvider) Configure(ctx context.Context, req provider.ConfigureRequest, resp *provider.ConfigureResponse) {
	var cfg providerModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	configured := ""
	if cfg.Local != nil && !cfg.Local.StateDir.IsNull() && !cfg.Local.StateDir.IsUnknown() {
		configured = cfg.Local.StateDir.ValueString()
	}
	dir := policy.StateDirFrom(configured)
	// A provider with only cloud blocks (a Terraform Cloud run) never
	// uses the state directory: whatever AUTARKY_STATE_DIR says is the
	// local platform's business, checked when that platform is opened.
	if err := policy.ValidateStateDir(dir); err != nil && (cfg.Local != nil || (cfg.AWS == nil && cfg.GCP == nil)) {
		resp.Diagnostics.AddAttributeError(path.Root("local").AtName("state_dir"), "invalid local.state_dir", err.Error())
		return
	}
	data := &providerData{settings: platform.ProviderSettings{Local: policy.LocalSettings{StateDir: dir},
		UserAgent: userAgent(p.version, req.TerraformVersion)}}
	if a := cfg.AWS; a != nil {
		data.settings.AWS = &policy.AWSSettings{Region: a.Region.ValueString(), Profile: a.Profile.ValueString()}
		if e := a.Endpoints; e != nil {
			data.settings.AWS.Endpoints = policy.AWSEndpoints{EC2: e.EC2.ValueString(), AutoScaling: e.AutoScaling.ValueString(), SSM: e.SSM.ValueString(), STS: e.STS.ValueString()}
		}
		resp.Diagnostics.Append(awsCredentials(ctx, a, data.settings.AWS)...)
		if resp.Diagnostics.HasError() {
			return
		}
	}
	if cfg.GCP != nil {
		s, err := gcpConfigFrom(cfg.GCP)
		if err != nil {
			resp.Diagnostics.AddAttributeError(path.Root("gcp").AtName("credentials"), "invalid gcp.credentials", err.Error())
			return
		}
		data.settings.GCP = s
	}
	if cfg.Local != nil && !cfg.Local.WorkloadBinary.IsNull() {
		data.settings.Local.WorkloadBinary = cfg.Local.WorkloadBinary.ValueString()
	}
	resp.ResourceData = data
	resp.DataSourceData = data
	resp.EphemeralResourceData = data
}

// userAgent is what the provider's cloud calls say of themselves, as the
// hashicorp providers say it: the CLI that runs the provider (OpenTofu
// reports its own version here) and the provider's release, so that a
// cloud's request logs tell which release of Autarky made a call.
func userAgent(providerVersion, terraformVersion string) string {
	ua := "terraform-provider-autarky/" + providerVersion
	if terraformVersion != "" {
		ua = "Terraform/" + terraformVersion + " " + ua
	}
	return ua
}

func (p *autarkyProvider) Resources(context.Context) []func() resource.Resource {
	return []func() resource.Resource{
		newClusterResource,
		newNodePoolResource,
		newHealingPolicyResource,
		newScalingPolicyResource,
		newServiceScalingPolicyResource,
	}
}

func (p *autarkyProvider) DataSources(context.Context) []func() datasource.DataSource {
	return []func() datasource.DataSource{newAgentPolicyDataSource, newGCPRolesDataSource}
}

// EphemeralResources are values Terraform never stores: the join tokens.
func (p *autarkyProvider) EphemeralResources(context.Context) []func() ephemeral.EphemeralResource {
	return []func() ephemeral.EphemeralResource{newJoinTokenEphemeral}
}

// configureData extracts providerData in a resource's Configure.
func configureData(raw any, diags interface {
	AddError(string, string)
}) *providerData {
	if raw == nil {
		return nil
	}
	d, ok := raw.(*providerData)
	if !ok {
		diags.AddError("unexpected provider data", fmt.Sprintf("expected *providerData, got %T: this is a bug in the provider", raw))
		return nil
	}
	return d
}
