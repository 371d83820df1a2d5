package provider

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/validators"
)

var _ datasource.DataSource = &gcpRolesDataSource{}

// newGCPRolesDataSource is autarky_gcp_agent_roles: it renders the custom
// roles of a cluster's service accounts on Google Cloud (platform.RenderRights),
// as autarky_aws_agent_policy renders the IAM policies on AWS. It is a
// pure render and needs no provider configuration.
func newGCPRolesDataSource() datasource.DataSource { return &gcpRolesDataSource{} }

type gcpRolesDataSource struct{}

type gcpRolesModel struct {
	ID                  types.String `tfsdk:"id"`
	Project             types.String `tfsdk:"project"`
	ClusterName         types.String `tfsdk:"cluster_name"`
	Bucket              types.String `tfsdk:"bucket"`
	ManagersJSON        types.String `tfsdk:"managers_json"`
	WorkersJSON         types.String `tfsdk:"workers_json"`
	ManagersPermissions types.List   `tfsdk:"managers_permissions"`
	WorkersPermissions  types.List   `tfsdk:"workers_permissions"`
}

func (d *gcpRolesDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_gcp_agent_roles"
}

// gcpRolesJSONDoc says what a role of managers_json and workers_json holds.
const gcpRolesJSONDoc = "A JSON list of roles, each an object with `role_id`, `title`, `description` and `permissions` (sorted) for `google_project_iam_custom_role`, " +
	"`name` (`projects/<project>/roles/<role_id>`, the `role` of a binding), `scope` (`project`: grant it with `google_project_iam_member`; " +
	"`bucket`: with `google_storage_bucket_iam_member` on `bucket`) and, where the grant is conditional, `condition` (`title`, `description`, `expression`) for the binding's `condition` block."

func (d *gcpRolesDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Renders the least-privilege custom roles of a cluster's service accounts on Google Cloud: `managers_json` for the managers' service account, which `autarky-agent` and the managers' startup script run with, " +
			"and `workers_json` for the worker pools' service account, whose startup script only finds the managers and reads the worker join token. " +
			"The one mutating Compute Engine permission, `compute.instanceGroupManagers.update` (resize, delete and recreate VMs), is granted by a condition only on Managed Instance Groups named `<cluster_name>-*` " +
			"(a cluster whose name is another's plus `-…` matches both: keep such clusters in separate projects). " +
			"Cloud Storage has no role per object, so the bucket's grants carry IAM Conditions on the object's name: the managers reach only the objects under `autarky/<cluster_name>/` (and listings of that prefix), " +
			"the workers only `autarky/<cluster_name>/tokens/worker`, never the manager token. IAM Conditions need the bucket's uniform bucket-level access. " +
			"A pure render: it calls no Google API and needs no provider configuration.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed:            true,
				MarkdownDescription: "The name of the cluster the roles are rendered for, the same as `cluster_name`.",
			},
			"project": schema.StringAttribute{
				Required: true,
				MarkdownDescription: "The id of the Google Cloud project the cluster runs in, such as `my-project`: the custom roles are the project's, and its Managed Instance Groups the ones the managers act on. " +
					"6 to 30 lower-case letters, digits and `-`, starting with a letter.",
				Validators: []validator.String{gcpRolesInputCheck{is: "a project id", use: "use 6 to 30 lower-case letters, digits and \"-\", starting with a letter, such as \"my-project\"",
					set: func(in *platform.RightsInput, v string) { in.Project = v }}},
			},
			"cluster_name": schema.StringAttribute{
				Required: true,
				MarkdownDescription: "The name of the cluster, as in `autarky_cluster.name`: its groups are named `<cluster_name>-<pool>` and its objects live under `autarky/<cluster_name>/` in the bucket. " +
					"A DNS label: 1 to 63 lower-case letters, digits and `-`, starting and ending with a letter or digit.",
				Validators: []validator.String{validators.Name()},
			},
			"bucket": schema.StringAttribute{
				Required: true,
				MarkdownDescription: "The Cloud Storage bucket holding the cluster's objects, as in the provider's `gcp` block, without `gs://`: " +
					"3 to 63 lower-case letters, digits, `-`, `_` and `.` (up to 222 with dots), starting and ending with a letter or digit.",
				Validators: []validator.String{gcpRolesInputCheck{is: "a Cloud Storage bucket name", use: "name the bucket, such as \"my-autarky-state\", without gs://",
					set: func(in *platform.RightsInput, v string) { in.Bucket = v }}},
			},
			"managers_json": schema.StringAttribute{
				Computed: true,
				MarkdownDescription: "The managers' roles: Compute Engine reads on the project (groups, VMs, regional operations); `compute.instanceGroupManagers.update` on the project with a condition on the groups' names; " +
					"`storage.objects.get`, `list`, `create` and `delete` on the bucket with a condition on `autarky/<cluster_name>/`. " + gcpRolesJSONDoc,
			},
			"workers_json": schema.StringAttribute{
				Computed: true,
				MarkdownDescription: "The workers' roles: `compute.instanceGroupManagers.get` and `compute.instances.get` on the project, to find a manager; " +
					"`storage.objects.get` on the bucket with a condition naming `autarky/<cluster_name>/tokens/worker` only. " + gcpRolesJSONDoc,
			},
			"managers_permissions": schema.ListAttribute{
				Computed:            true,
				ElementType:         types.StringType,
				MarkdownDescription: "Every permission of the managers' roles, sorted, each once.",
			},
			"workers_permissions": schema.ListAttribute{
				Computed:            true,
				ElementType:         types.StringType,
				MarkdownDescription: "Every permission of the workers' roles, sorted, each once.",
			},
		},
	}
}

// gcpRolesInputCheck validates one field of the gcp rights' input by rendering
// the roles with only that field from the configuration, so the provider
// refuses exactly what the gcp platform refuses, naming the attribute and what
// it takes.
type gcpRolesInputCheck struct {
	is, use string
	set     func(*platform.RightsInput, string)
}

func (v gcpRolesInputCheck) Description(context.Context) string         { return "must be " + v.is }
func (v gcpRolesInputCheck) MarkdownDescription(context.Context) string { return "must be " + v.is }

func (v gcpRolesInputCheck) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	s := req.ConfigValue.ValueString()
	in := platform.RightsInput{Project: "autarky-project", Cluster: "autarky", Bucket: "autarky-bucket"}
	v.set(&in, s)
	if _, err := platform.RenderRights(policy.PlatformGCP, in); err != nil {
		resp.Diagnostics.AddAttributeError(req.Path, "invalid "+req.Path.String(),
			fmt.Sprintf("%s: %q is not %s: %s", req.Path, s, v.is, v.use))
	}
}

func (d *gcpRolesDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var cfg gcpRolesModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	in := platform.RightsInput{Project: cfg.Project.ValueString(), Cluster: cfg.ClusterName.ValueString(), Bucket: cfg.Bucket.ValueString()}
	rights, err := platform.RenderRights(policy.PlatformGCP, in)
	if err != nil {
		resp.Diagnostics.AddError("rendering the roles of cluster "+in.Cluster, err.Error())
		return
	}
	cfg.ManagersJSON, cfg.WorkersJSON = types.StringValue(rights.Managers), types.StringValue(rights.Workers)
	for _, side := range []struct {
		perms []string
		to    *types.List
	}{{rights.ManagerPermissions, &cfg.ManagersPermissions}, {rights.WorkerPermissions, &cfg.WorkersPermissions}} {
		list, diags := types.ListValueFrom(ctx, types.StringType, side.perms)
		resp.Diagnostics.Append(diags...)
		*side.to = list
	}
	if resp.Diagnostics.HasError() {
		return
	}
	cfg.ID = types.StringValue(in.Cluster)
	resp.Diagnostics.Append(resp.State.Set(ctx, cfg)...)
}
