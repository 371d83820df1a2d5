package provider

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/validators"
)

// The provider's gcp block: where the gcp platform's clusters live
// (project, region, the bucket of their stores) and whose credentials
// reach them. Spelled as the hashicorp/google provider spells the same
// settings (credentials as a path or the JSON itself,
// impersonate_service_account, the GOOGLE_* variables), so that a CI or
// Terraform Cloud setup written for that provider carries over.

type gcpProviderModel struct {
	Project                   types.String       `tfsdk:"project"`
	Region                    types.String       `tfsdk:"region"`
	Bucket                    types.String       `tfsdk:"bucket"`
	Credentials               types.String       `tfsdk:"credentials"`
	ImpersonateServiceAccount types.String       `tfsdk:"impersonate_service_account"`
	Endpoints                 *gcpEndpointsModel `tfsdk:"endpoints"`
}

type gcpEndpointsModel struct {
	Compute types.String `tfsdk:"compute"`
	Storage types.String `tfsdk:"storage"`
}

// Environment variables the gcp block falls back to, as the
// hashicorp/google provider reads them.
const (
	envGoogleProject     = "GOOGLE_PROJECT"
	envGoogleRegion      = "GOOGLE_REGION"
	envGoogleCredentials = "GOOGLE_CREDENTIALS"
)

func gcpProviderBlock() schema.SingleNestedBlock {
	return schema.SingleNestedBlock{
		MarkdownDescription: "Settings of the `gcp` platform, whose node pools are regional Managed Instance Groups and whose clusters keep their descriptors, policies and join tokens " +
			"as objects under `autarky/<cluster>/` in a Cloud Storage bucket. Credentials are `credentials` when set, else `" + envGoogleCredentials + "`, else " +
			"Application Default Credentials (`GOOGLE_APPLICATION_CREDENTIALS`, `gcloud auth application-default login`, workload identity federation, or the metadata server of a VM); " +
			"`impersonate_service_account` then acts as that service account. They are checked when a plan first needs the platform, and missing ones are named then. " +
			"The gcp platform keeps nothing on the machine running Terraform.",
		Attributes: map[string]schema.Attribute{
			"project": schema.StringAttribute{
				Optional:            true,
				MarkdownDescription: "The project of the groups and templates. Defaults to `" + envGoogleProject + "`, else the credentials' project.",
				Validators:          []validator.String{validators.Check("must be a project id", policy.ValidateGCPProject)},
			},
			"region": schema.StringAttribute{
				Optional:            true,
				MarkdownDescription: "The region of every cluster's regional Managed Instance Groups, such as `europe-west1`. Defaults to `" + envGoogleRegion + "`; one of the two is required.",
				Validators:          []validator.String{validators.Check("must be a region", policy.ValidateGCPRegion)},
			},
			"bucket": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: "The Cloud Storage bucket, which must exist, of the clusters' stores: each cluster's objects live under `autarky/<cluster>/`. " +
					"Required. Every VM's startup script reads its cluster's join token there with the VM's service account, and the managers' agents write there.",
				Validators: []validator.String{validators.Check("must be a bucket name", policy.ValidateGCSBucket)},
			},
			"credentials": schema.StringAttribute{
				Optional:  true,
				Sensitive: true,
				MarkdownDescription: "A credentials file (service account key, `authorized_user`, `external_account` for workload identity federation, or `impersonated_service_account`): " +
					"its path, or its JSON content itself. Defaults to `" + envGoogleCredentials + "`, else Application Default Credentials.",
			},
			"impersonate_service_account": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: "A service account email to act as, through the IAM Credentials API: the credentials found need `roles/iam.serviceAccountTokenCreator` on it, " +
					"and the platform's calls are made as it.",
				Validators: []validator.String{validators.Check("must be a service account email", policy.ValidateGCPServiceAccount)},
			},
			"endpoints": schema.SingleNestedAttribute{
				Optional: true,
				MarkdownDescription: "Custom API endpoints, only to reach private endpoints or a test's fakes; empty means Google's. They are where Terraform reaches the APIs, not the VMs. " +
					"When both are loopback URLs (`127.0.0.0/8`, `::1` or `localhost`) and no credentials are set (neither `credentials` nor `" + envGoogleCredentials + "` nor `impersonate_service_account`), " +
					"the provider sends no credentials at all: a fake on this machine needs none, and Application Default Credentials are not handed to it.",
				Attributes: map[string]schema.Attribute{
					"compute": schema.StringAttribute{Optional: true, MarkdownDescription: "The Compute Engine API's base URL, such as `https://compute.googleapis.com` (a trailing `/compute/v1/` is accepted).",
						Validators: []validator.String{validators.Check("must be an http(s) URL", policy.ValidateHTTPURL)}},
					"storage": schema.StringAttribute{Optional: true, MarkdownDescription: "The Cloud Storage JSON API's URL, such as `https://storage.googleapis.com/storage/v1/`.",
						Validators: []validator.String{validators.Check("must be an http(s) URL", policy.ValidateHTTPURL)}},
				},
			},
		},
	}
}

// credentialsJSON reads the credentials setting as the google provider
// does: JSON content when it starts with "{", else the path of a file.
func credentialsJSON(v string) ([]byte, error) {
	if v = strings.TrimSpace(v); v == "" || strings.HasPrefix(v, "{") {
		return []byte(v), nil
	}
	b, err := os.ReadFile(v)
	var pe *fs.PathError
	if errors.As(err, &pe) {
		// Not the path: it may be a secret that is not JSON.
		err = pe.Err
	}
	if err != nil {
		return nil, fmt.Errorf("is neither JSON content (starting with \"{\") nor the path of a file that can be read: %v", err)
	}
	return b, nil
}

// orEnv is the attribute's value, else the environment variable's.
func orEnv(v types.String, env string) string {
	if !v.IsNull() && !v.IsUnknown() && v.ValueString() != "" {
		return v.ValueString()
	}
	return os.Getenv(env)
}

// credentialsSource names where the credentials came from, for errors.
func credentialsSource(g *gcpProviderModel) string {
	if !g.Credentials.IsNull() && g.Credentials.ValueString() != "" {
		return "gcp.credentials"
	}
	return envGoogleCredentials
}

// loopback reports whether u is an http(s) URL of this machine.
func loopback(u string) bool {
	p, err := url.Parse(u)
	if err != nil {
		return false
	}
	return policy.IsLoopbackHost(p.Hostname())
}

// validateGCPProvider checks what the attribute validators cannot: the
// settings that must be there, from the block or the environment.
func validateGCPProvider(g *gcpProviderModel, diags *diag.Diagnostics) {
	at := path.Root("gcp")
	if g.Region.IsNull() && os.Getenv(envGoogleRegion) == "" {
		diags.AddAttributeError(at.AtName("region"), "missing gcp.region",
			"gcp.region: the gcp platform needs the region of its groups: set region in the provider's gcp block, or "+envGoogleRegion)
	}
	if g.Bucket.IsNull() {
		diags.AddAttributeError(at.AtName("bucket"), "missing gcp.bucket",
			"gcp.bucket: the gcp platform keeps each cluster's store in a Cloud Storage bucket: set bucket in the provider's gcp block to an existing bucket's name")
	}
	if v := g.Credentials; !v.IsNull() && !v.IsUnknown() && strings.HasPrefix(strings.TrimSpace(v.ValueString()), "{") {
		if _, err := gcpConfigFrom(g); err != nil {
			diags.AddAttributeError(at.AtName("credentials"), "invalid gcp.credentials", err.Error())
		}
	}
}

// gcpConfigFrom resolves the gcp block, with the environment's defaults.
func gcpConfigFrom(g *gcpProviderModel) (*policy.GCPSettings, error) {
	s := &policy.GCPSettings{
		Bucket:                    g.Bucket.ValueString(),
		Project:                   orEnv(g.Project, envGoogleProject),
		Region:                    orEnv(g.Region, envGoogleRegion),
		ImpersonateServiceAccount: g.ImpersonateServiceAccount.ValueString(),
	}
	if e := g.Endpoints; e != nil {
		s.ComputeEndpoint = strings.TrimSuffix(strings.TrimSuffix(e.Compute.ValueString(), "/"), "/compute/v1")
		s.StorageEndpoint = e.Storage.ValueString()
	}
	creds, err := credentialsJSON(orEnv(g.Credentials, envGoogleCredentials))
	if err != nil {
		return nil, fmt.Errorf("gcp.credentials: %w", err)
	}
	if len(creds) > 0 {
		// Never quote it: it is a secret.
		var obj map[string]any
		if err := json.Unmarshal(creds, &obj); err != nil {
			return nil, fmt.Errorf("gcp.credentials: not a JSON credentials file (from %s): give the file's path or its JSON content", credentialsSource(g))
		}
	}
	s.CredentialsJSON = policy.Secret(creds)
	// A fake on this machine: nothing to authenticate to, and no reason
	// to hand it the user's Application Default Credentials.
	s.NoAuth = len(creds) == 0 && s.ImpersonateServiceAccount == "" &&
		s.ComputeEndpoint != "" && s.StorageEndpoint != "" && loopback(s.ComputeEndpoint) && loopback(s.StorageEndpoint)
	return s, nil
}
