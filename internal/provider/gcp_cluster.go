package provider

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-go/tftypes"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/validators"
)

// The cluster's gcp block: where its instances run. The project, region
// and bucket are the provider's (its gcp block), filled into the
// descriptor before create and update so that the agent and every VM's
// startup script read where the cluster lives from the descriptor; they
// are not attributes here, since one provider's clusters share them.

type clusterGCPModel struct {
	Zones          types.List   `tfsdk:"zones"`
	MachineType    types.String `tfsdk:"machine_type"`
	Image          types.String `tfsdk:"image"`
	Subnetwork     types.String `tfsdk:"subnetwork"`
	ServiceAccount types.String `tfsdk:"service_account"`
	NetworkTags    types.List   `tfsdk:"network_tags"`
}

// empty reports whether the gcp block is absent or sets nothing.
func (g *clusterGCPModel) empty() bool {
	return g == nil || allNull(g.Zones, g.MachineType, g.Image, g.Subnetwork, g.ServiceAccount, g.NetworkTags)
}

func clusterGCPBlock() schema.SingleNestedBlock {
	return schema.SingleNestedBlock{
		MarkdownDescription: "Where the cluster's instances run when `platform = \"gcp\"`, in the project and region of the provider's `gcp` block: every node pool of the cluster is a regional Managed Instance Group `<name>-<pool>` " +
			"created from an instance template of these settings, with instance redistribution off (a group that rebalances zones would delete busy nodes). " +
			"The managers' group is `<name>-managers`; its startup script installs Docker if needed, lets exactly one manager `swarm init` (a lock object created only if absent in the provider's bucket), " +
			"and joins the others with the token read from the bucket at boot with the VM's service account.",
		Attributes: map[string]schema.Attribute{
			"zones": schema.ListAttribute{
				Optional: true, ElementType: types.StringType,
				MarkdownDescription: "The zones of the provider's region the groups spread over, such as `europe-west1-b`; unset, Google picks them.",
			},
			"machine_type": schema.StringAttribute{
				Optional: true, MarkdownDescription: "The machine type of the managers and, unless a pool says otherwise, of every pool, such as `e2-standard-2`. Required on `gcp`.",
				Validators: []validator.String{validators.Check("must be a machine type", policy.ValidateGCPMachineType)},
			},
			"image": schema.StringAttribute{
				Optional:            true,
				MarkdownDescription: "The boot image: `projects/<project>/global/images/<name>` or `projects/<project>/global/images/family/<family>` (or its full URL). Required on `gcp`.",
			},
			"subnetwork": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: "The subnetwork of the provider's region the instances get their internal address from: `regions/<region>/subnetworks/<name>`, after `projects/<host project>/` for a Shared VPC. " +
					"The instances get no external address. Its firewall must let the nodes reach each other on TCP 2377 and 7946, UDP 7946 and 4789. Required on `gcp`.",
			},
			"service_account": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: "The service account email of the managers' instances, granted the `managers_json` roles of the `autarky_gcp_agent_roles` data source: the agent and the managers' startup script run with it. " +
					"A node pool's instances get the pool's own `gcp.service_account` (granted its `workers_json` roles); a pool without one falls back to this one, and with it to the managers' rights. " +
					"Unset, the project's default compute service account.",
				Validators: []validator.String{validators.Check("must be a service account email", policy.ValidateGCPServiceAccount)},
			},
			"network_tags": schema.ListAttribute{
				Optional: true, ElementType: types.StringType,
				MarkdownDescription: "Network tags of every instance, for firewall rules.",
				Validators:          []validator.List{listvalidator.ValueStringsAre(validators.Check("must be a network tag", policy.ValidateGCEName))},
			},
		},
	}
}

// descriptor is the block as policy settings (nil for an empty block);
// the provider's project, region and bucket are filled by withSettings.
func (g *clusterGCPModel) descriptor(ctx context.Context) (*policy.GCP, error) {
	if g.empty() {
		return nil, nil
	}
	s := &policy.GCP{MachineType: g.MachineType.ValueString(), Image: g.Image.ValueString(),
		Subnetwork: g.Subnetwork.ValueString(), ServiceAccount: g.ServiceAccount.ValueString()}
	var err error
	if s.Zones, err = listFromModel(ctx, g.Zones); err != nil {
		return nil, fmt.Errorf("gcp.zones: %w", err)
	}
	if s.NetworkTags, err = listFromModel(ctx, g.NetworkTags); err != nil {
		return nil, fmt.Errorf("gcp.network_tags: %w", err)
	}
	return s, nil
}

// gcpModel is the descriptor's settings as the block (nil without them);
// prev keeps an empty list the configuration wrote as such.
func gcpModel(ctx context.Context, s *policy.GCP, prev *clusterGCPModel) (*clusterGCPModel, error) {
	if s == nil {
		return nil, nil
	}
	if prev == nil {
		prev = &clusterGCPModel{Zones: types.ListNull(types.StringType), NetworkTags: types.ListNull(types.StringType)}
	}
	g := &clusterGCPModel{MachineType: types.StringValue(s.MachineType), Image: types.StringValue(s.Image),
		Subnetwork: types.StringValue(s.Subnetwork), ServiceAccount: optionalString(s.ServiceAccount)}
	var err error
	if g.Zones, err = listToModel(ctx, s.Zones, prev.Zones); err != nil {
		return nil, err
	}
	if g.NetworkTags, err = listToModel(ctx, s.NetworkTags, prev.NetworkTags); err != nil {
		return nil, err
	}
	return g, nil
}

// validateGCPConfig checks, without the provider's configuration, that the
// gcp block belongs to platform gcp and has what it needs there.
func validateGCPConfig(m clusterModel, platformName string, diags *diag.Diagnostics) {
	hasGCP := !m.GCP.empty()
	switch {
	case platformName != policy.PlatformGCP && hasGCP:
		diags.AddAttributeError(path.Root("gcp"), "gcp block on a "+platformName+" cluster",
			fmt.Sprintf("gcp: the gcp block is for platform \"gcp\" only; this cluster's platform is %q", platformName))
	case platformName == policy.PlatformGCP:
		required := map[string]attr.Value{}
		if m.GCP != nil {
			required["machine_type"], required["image"], required["subnetwork"] = m.GCP.MachineType, m.GCP.Image, m.GCP.Subnetwork
		}
		for _, name := range []string{"machine_type", "image", "subnetwork"} {
			if v, ok := required[name]; !ok || v.IsNull() {
				diags.AddAttributeError(path.Root("gcp").AtName(name), "missing gcp."+name,
					fmt.Sprintf("gcp.%s: platform \"gcp\" needs it in the cluster's gcp block", name))
			}
		}
	}
}

// fieldRE is the field an error of package policy starts with.
var fieldRE = regexp.MustCompile(`^([a-z_]+(?:\.[a-z_]+)*): `)

// providerGCPFields are the gcp settings of the provider's block.
var providerGCPFields = map[string]bool{"gcp.project": true, "gcp.region": true, "gcp.bucket": true}

// planGCPCluster checks a planned gcp cluster at plan time, when the
// provider's block is known: it connects (so that missing or broken
// credentials fail the plan, naming what to set), fills the provider's
// settings in and runs the policy's own validation of the whole
// descriptor, so the plan refuses exactly what apply would (zones of
// another region, a subnetwork elsewhere, the agent's download, join
// token rotation without an acting agent), and on create checks the
// bucket. An error lands on the field it names; the provider's fields are
// named as the provider's. A value not known until apply (a service
// account created in the same run) reads as empty here: an error naming
// such a field is left for apply, which checks the same rules again.
func (r *clusterResource) planGCPCluster(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if r.data == nil || req.Plan.Raw.IsNull() {
		return
	}
	var plan clusterModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() || plan.Platform.IsUnknown() || plan.Platform.ValueString() != policy.PlatformGCP {
		return
	}
	p, err := r.data.backendFor(ctx, policy.PlatformGCP)
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("platform"), "platform gcp unavailable", err.Error())
		return
	}
	c, err := plan.descriptor(ctx)
	if err != nil {
		resp.Diagnostics.AddError("invalid cluster", err.Error())
		return
	}
	c = p.Fill(c)
	if err := c.Validate(); err != nil {
		if field := fieldOf(err); !unknownIn(req.Config.Raw, field) {
			addFieldError(&resp.Diagnostics, field, err)
		}
		return
	}
	if req.State.Raw.IsNull() {
		if err := p.Preflight(ctx, c.Name); err != nil {
			addFieldError(&resp.Diagnostics, fieldOf(err), err)
		}
		return
	}
	var state clusterModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if old, err := state.GCP.descriptor(ctx); err == nil && old != nil && !unknownIn(req.Config.Raw, "gcp.zones") {
		if err := zonesKept(old.Zones, c.GCP.Zones); err != nil {
			addFieldError(&resp.Diagnostics, "gcp.zones", err)
		}
	}
}

// zonesKept refuses to change the zones a cluster's groups were created
// over: a regional Managed Instance Group keeps them, so the update would
// fail at apply, after the descriptor holding the new zones was written.
func zonesKept(old, planned []string) error {
	if len(old) == 0 || len(planned) == 0 || slices.Equal(slices.Sorted(slices.Values(old)), slices.Sorted(slices.Values(planned))) {
		return nil
	}
	return fmt.Errorf("gcp.zones: the cluster's regional Managed Instance Groups spread over %v and their zones cannot change: keep them, or replace the cluster (terraform apply -replace)", old)
}

// fieldOf is the field an error of package policy names ("gcp.zones"),
// "" when it names none.
func fieldOf(err error) string {
	if m := fieldRE.FindStringSubmatch(err.Error()); m != nil {
		return m[1]
	}
	return ""
}

// unknownIn reports whether the configuration's value of field is not
// known yet (or holds a value that is not).
func unknownIn(config tftypes.Value, field string) bool {
	if field == "" {
		return false
	}
	at := tftypes.NewAttributePath()
	for _, part := range strings.Split(field, ".") {
		at = at.WithAttributeName(part)
	}
	v, _, err := tftypes.WalkAttributePath(config, at)
	tv, ok := v.(tftypes.Value)
	return err == nil && ok && !tv.IsFullyKnown()
}

// addFieldError reports err on the field it names: an attribute of the
// resource, or a setting of the provider's gcp block.
func addFieldError(diags *diag.Diagnostics, field string, err error) {
	switch {
	case providerGCPFields[field]:
		diags.AddError("invalid "+field+" of the provider", err.Error()+" (set in the autarky provider's gcp block)")
	case field != "" && !strings.HasPrefix(field, "platform"):
		parts := strings.Split(field, ".")
		at := path.Root(parts[0])
		for _, part := range parts[1:] {
			at = at.AtName(part)
		}
		diags.AddAttributeError(at, "invalid "+field, err.Error())
	default:
		diags.AddError("invalid cluster", err.Error())
	}
}
