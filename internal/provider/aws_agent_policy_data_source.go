package provider

import (
	"context"
	"fmt"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/validators"
)

var (
	_ datasource.DataSource                   = &agentPolicyDataSource{}
	_ datasource.DataSourceWithValidateConfig = &agentPolicyDataSource{}
)

// newAgentPolicyDataSource is autarky_aws_agent_policy: it renders the IAM
// policies of a cluster's instance roles on AWS. It is a pure render and
// needs no provider configuration.
func newAgentPolicyDataSource() datasource.DataSource { return &agentPolicyDataSource{} }

type agentPolicyDataSource struct{}

type agentPolicyModel struct {
	ID          types.String `tfsdk:"id"`
	ClusterName types.String `tfsdk:"cluster_name"`
	Partition   types.String `tfsdk:"partition"`
	Region      types.String `tfsdk:"region"`
	AccountID   types.String `tfsdk:"account_id"`
	KMSKeyARN   types.String `tfsdk:"kms_key_arn"`
	JSON        types.String `tfsdk:"json"`
	WorkerJSON  types.String `tfsdk:"worker_json"`
}

func (d *agentPolicyDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_aws_agent_policy"
}

func (d *agentPolicyDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Renders the least-privilege IAM policies of a cluster's instance roles on AWS: `json` for the managers' role, which `autarky-agent` and the managers' user data run with, " +
			"and `worker_json` for the worker pools' role, whose user data only reads the worker join token. " +
			"Mutating calls are limited to the cluster: resizing and replacing only in Auto Scaling Groups tagged `" + policy.AWSTagCluster + "=<cluster_name>`, " +
			"SSM reads and writes only under `" + policy.AWSPathPrefix + "/<cluster_name>`, and KMS only through SSM. " +
			"A pure render: it calls no AWS API and needs no provider configuration. Attach the documents with `aws_iam_role_policy` or `aws_iam_policy`.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed:            true,
				MarkdownDescription: "The name of the cluster the policies are rendered for, the same as `cluster_name`.",
			},
			"cluster_name": schema.StringAttribute{
				Required: true,
				MarkdownDescription: "The name of the cluster, as in `autarky_cluster.name`: the value of the `" + policy.AWSTagCluster + "` tag on its Auto Scaling Groups and the last part of its SSM parameter path `" +
					policy.AWSPathPrefix + "/<cluster_name>`. A DNS label: 1 to 63 lower-case letters, digits and `-`, starting and ending with a letter or digit.",
				Validators: []validator.String{validators.Name()},
			},
			"partition": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: "The AWS partition of every ARN in the documents, such as `aws-cn` or `aws-us-gov`. Defaults to `aws`. " +
					"A region of China (`cn-…`) needs `aws-cn`, a GovCloud region (`us-gov-…`) needs `aws-us-gov`.",
				Validators: []validator.String{agentPolicyInputCheck{
					is:  "an AWS partition",
					use: "use \"aws\", \"aws-cn\", \"aws-us-gov\" or another partition's name, or leave it unset for \"aws\"",
					set: func(in *platform.RightsInput, v string) { in.Partition = v },
				}},
			},
			"region": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: "The AWS region the cluster runs in, such as `eu-west-1`: every ARN and the `kms:ViaService` condition name it. " +
					"Unset, the documents match the cluster's groups, parameters and keys in any region.",
				Validators: []validator.String{agentPolicyInputCheck{
					is:  "an AWS region code",
					use: "use one such as \"eu-west-1\" or \"us-gov-west-1\", or leave it unset to match any region",
					set: func(in *platform.RightsInput, v string) { in.Region = v },
				}},
			},
			"account_id": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: "The 12-digit id of the AWS account the cluster runs in, such as `123456789012`: every ARN names it. " +
					"Unset, the documents match the cluster's groups, parameters and keys in any account.",
				Validators: []validator.String{agentPolicyInputCheck{
					is:  "an AWS account id",
					use: "use the 12 digits of the account, such as \"123456789012\", or leave it unset to match any account",
					set: func(in *platform.RightsInput, v string) { in.AccountID = v },
				}},
			},
			"kms_key_arn": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: "The ARN of the customer managed KMS key the cluster's SecureString parameters (the join tokens) are encrypted with, " +
					"`arn:<partition>:kms:<region>:<account id>:key/<key id>`; an alias ARN does not work, since IAM matches `kms:Decrypt` against the key's own ARN. " +
					"It must be in `partition` and, when given, in `region`. The managers may then decrypt and encrypt with this key, the workers only decrypt, both only through SSM. " +
					"Unset, the parameters use SSM's AWS managed key and `kms:Decrypt` names any key (of `account_id`, when given), still only through SSM.",
				Validators: []validator.String{agentPolicyInputCheck{
					is:  "a KMS key ARN",
					use: kmsKeyARNUse,
					set: func(in *platform.RightsInput, v string) { in.KMSKeyARN = v },
					extra: func(v string) string {
						if strings.Contains(v, ":alias/") {
							return "is an alias ARN, and IAM matches kms:Decrypt against the key's own ARN, so it would grant nothing: " + kmsKeyARNUse
						}
						return ""
					},
				}},
			},
			"json": schema.StringAttribute{
				Computed: true,
				MarkdownDescription: "The IAM policy document of the managers' instance role, as JSON: describe calls on anything; `autoscaling:SetDesiredCapacity` and `autoscaling:TerminateInstanceInAutoScalingGroup` " +
					"only on Auto Scaling Groups tagged `" + policy.AWSTagCluster + "=<cluster_name>`; SSM reads only under `" + policy.AWSPathPrefix + "/<cluster_name>`; " +
					"`ssm:PutParameter` only on the agent's journal and its parts (and the copies it sets aside when the journal cannot be read), the pool descriptors, the join tokens, their rotation record and the swarm init lock; " +
					"`ssm:DeleteParameter` and `ssm:DeleteParameters` only on the journal and its parts; KMS only through SSM.",
			},
			"worker_json": schema.StringAttribute{
				Computed: true,
				MarkdownDescription: "The IAM policy document of the worker pools' instance role, as JSON: `ec2:DescribeInstances` to find the managers, " +
					"`ssm:GetParameter` on the worker join token only (never the manager's), and `kms:Decrypt` only through SSM.",
			},
		},
	}
}

// Configure ignores the provider's data: rendering needs none.
func (d *agentPolicyDataSource) Configure(context.Context, datasource.ConfigureRequest, *datasource.ConfigureResponse) {
}

// agentPolicyInputCheck validates one optional field of the aws rights' input by
// rendering a policy with only that field set, so the provider refuses
// exactly what the aws platform refuses, and names the attribute and what it
// takes.
type agentPolicyInputCheck struct {
	is  string // what the value must be: "an AWS region code"
	use string // what to do instead: "use one such as ..."
	set func(*platform.RightsInput, string)
	// extra, if set, refuses more than the aws platform does; it returns why,
	// after the quoted value, and what to use instead.
	extra func(string) string
}

// kmsKeyARNUse says what kms_key_arn takes.
const kmsKeyARNUse = "use the ARN of the key itself, arn:<partition>:kms:<region>:<account id>:key/<key id>, or leave it unset for SSM's AWS managed key"

func (v agentPolicyInputCheck) Description(context.Context) string         { return "must be " + v.is }
func (v agentPolicyInputCheck) MarkdownDescription(context.Context) string { return "must be " + v.is }

func (v agentPolicyInputCheck) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	s := req.ConfigValue.ValueString()
	in := platform.RightsInput{Cluster: "autarky"}
	v.set(&in, s)
	why := ""
	if _, err := platform.RenderRights(policy.PlatformAWS, in); err != nil {
		why = "is not " + v.is + ": " + v.use
	} else if v.extra != nil {
		why = v.extra(s)
	}
	if why != "" {
		resp.Diagnostics.AddAttributeError(req.Path, "invalid "+req.Path.String(), fmt.Sprintf("%s: %q %s", req.Path, s, why))
	}
}

// partitionOfRegion is the partition a region's prefix pins, or "" where
// it does not.
func partitionOfRegion(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	}
	return ""
}

// ValidateConfig checks that the attributes agree with each other: a
// policy naming a key of another partition or region, or a region of
// another partition, renders fine but grants nothing.
func (d *agentPolicyDataSource) ValidateConfig(ctx context.Context, req datasource.ValidateConfigRequest, resp *datasource.ValidateConfigResponse) {
	var cfg agentPolicyModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	known := func(v types.String) bool { return !v.IsNull() && !v.IsUnknown() }
	if cfg.Partition.IsUnknown() {
		return
	}
	partition := "aws"
	if known(cfg.Partition) {
		partition = cfg.Partition.ValueString()
	}
	if known(cfg.Region) {
		region := cfg.Region.ValueString()
		want := partitionOfRegion(region)
		if want == "" && (partition == "aws-cn" || partition == "aws-us-gov") {
			resp.Diagnostics.AddAttributeError(path.Root("region"), "invalid region",
				fmt.Sprintf("region: %q is not a region of partition %q: use a region of that partition (\"cn-…\" for aws-cn, \"us-gov-…\" for aws-us-gov), or change partition", region, partition))
		} else if want != "" && want != partition {
			resp.Diagnostics.AddAttributeError(path.Root("partition"), "invalid partition",
				fmt.Sprintf("partition: region %q is in partition %q, not %q: set partition = %q", region, want, partition, want))
		}
	}
	if known(cfg.KMSKeyARN) {
		// arn:<partition>:kms:<region>:<account>:key/<id>, already checked
		// by the attribute's validator.
		parts := strings.SplitN(cfg.KMSKeyARN.ValueString(), ":", 6)
		if len(parts) != 6 {
			return
		}
		if parts[1] != partition {
			resp.Diagnostics.AddAttributeError(path.Root("kms_key_arn"), "invalid kms_key_arn",
				fmt.Sprintf("kms_key_arn: the key is in partition %q, but the policy is for partition %q: use a key of that partition, or set partition = %q", parts[1], partition, parts[1]))
		}
		if known(cfg.Region) && parts[3] != cfg.Region.ValueString() {
			resp.Diagnostics.AddAttributeError(path.Root("kms_key_arn"), "invalid kms_key_arn",
				fmt.Sprintf("kms_key_arn: the key is in region %q, but SSM in region %q can only use keys of its own region: use a key of region %q", parts[3], cfg.Region.ValueString(), cfg.Region.ValueString()))
		}
	}
}

func (d *agentPolicyDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var cfg agentPolicyModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	in := platform.RightsInput{
		Cluster:   cfg.ClusterName.ValueString(),
		Partition: cfg.Partition.ValueString(),
		Region:    cfg.Region.ValueString(),
		AccountID: cfg.AccountID.ValueString(),
		KMSKeyARN: cfg.KMSKeyARN.ValueString(),
	}
	rights, err := platform.RenderRights(policy.PlatformAWS, in)
	if err != nil {
		resp.Diagnostics.AddError("rendering the policies of cluster "+in.Cluster, err.Error())
		return
	}
	agent, worker := rights.Managers, rights.Workers
	cfg.ID = types.StringValue(in.Cluster)
	cfg.JSON = types.StringValue(agent)
	cfg.WorkerJSON = types.StringValue(worker)
	resp.Diagnostics.Append(resp.State.Set(ctx, cfg)...)
}
