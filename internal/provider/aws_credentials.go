package provider

import (
	"context"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-validators/setvalidator"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/validators"
)

// The aws block's role assumption settings, spelled as the hashicorp/aws
// provider spells them so that a Terraform Cloud or CI setup written for
// that provider carries over. Shapes are checked at plan time, each error
// naming its field; what depends on the environment (AWS_ROLE_ARN, the
// token file) is resolved when the platform is first used.

// checked is an optional string attribute refused at plan time, naming
// itself, when check refuses it.
func checked(description, must string, check func(string) error) schema.StringAttribute {
	return schema.StringAttribute{
		Optional:            true,
		MarkdownDescription: description,
		Validators:          []validator.String{validators.Check(must, check)},
	}
}

func sessionAttributes(what string) map[string]schema.Attribute {
	return map[string]schema.Attribute{
		"role_arn":     checked("ARN of the IAM role to assume"+what+".", "must be an IAM role ARN", policy.ValidateRoleARN),
		"session_name": checked("Name of the role session, shown in CloudTrail and in the assumed role's ARN: 2 to 64 letters, digits or `_+=,.@-`.", "must be a session name", policy.ValidateSessionName),
		"duration":     checked("How long the session lasts, from `15m` to `12h` (the role's maximum session duration may be lower). Defaults to STS's one hour; the provider renews it as it runs out.", "must be a duration from 15m to 12h", policy.ValidateSessionDuration),
		"policy":       checked("JSON session policy that further restricts the role's permissions.", "must be a JSON policy document", policy.ValidatePolicyJSON),
		"policy_arns": schema.SetAttribute{
			Optional:            true,
			ElementType:         types.StringType,
			MarkdownDescription: "ARNs of managed policies that further restrict the role's permissions.",
			Validators: []validator.Set{setvalidator.ValueStringsAre(
				validators.Check("must be an IAM policy ARN", policy.ValidatePolicyARN))},
		},
	}
}

func assumeRoleBlock() schema.SingleNestedBlock {
	attrs := sessionAttributes(" (required)")
	attrs["external_id"] = checked("External ID the role's trust policy may require.", "must be an external ID", policy.ValidateExternalID)
	attrs["source_identity"] = checked("Source identity to set on the session (2 to 64 letters, digits or `_+=,.@-`).", "must be a source identity", policy.ValidateSessionName)
	return schema.SingleNestedBlock{
		MarkdownDescription: "Assume this IAM role with the credentials found (or those of `assume_role_with_web_identity`); the platform's calls are then made as the role.",
		Attributes:          attrs,
	}
}

func webIdentityBlock() schema.SingleNestedBlock {
	attrs := sessionAttributes("; defaults to `AWS_ROLE_ARN`")
	attrs["session_name"] = checked("Name of the role session: 2 to 64 letters, digits or `_+=,.@-`. Defaults to `AWS_ROLE_SESSION_NAME`.", "must be a session name", policy.ValidateSessionName)
	attrs["web_identity_token"] = schema.StringAttribute{
		Optional:            true,
		Sensitive:           true,
		MarkdownDescription: "The OIDC token itself. Conflicts with `web_identity_token_file`.",
	}
	attrs["web_identity_token_file"] = schema.StringAttribute{
		Optional:            true,
		MarkdownDescription: "File holding the OIDC token, read again at each renewal. Defaults to `AWS_WEB_IDENTITY_TOKEN_FILE`. Conflicts with `web_identity_token`.",
	}
	return schema.SingleNestedBlock{
		MarkdownDescription: "Exchange an OIDC token for the credentials of an IAM role (STS AssumeRoleWithWebIdentity) instead of using the standard chain.",
		Attributes:          attrs,
	}
}

// validateAWSCredentials checks what the attribute validators cannot: a
// field required by its block, and fields that exclude each other.
func validateAWSCredentials(a *awsProviderModel, diags *diag.Diagnostics) {
	at := path.Root("aws")
	if r := a.AssumeRole; r != nil && r.RoleARN.IsNull() {
		diags.AddAttributeError(at.AtName("assume_role").AtName("role_arn"), "missing aws.assume_role.role_arn",
			"aws.assume_role.role_arn: the block needs the ARN of the role to assume, such as \"arn:aws:iam::123456789012:role/terraform\"")
	}
	if w := a.WebIdentity; w != nil && !w.WebIdentityToken.IsNull() && !w.WebIdentityTokenFile.IsNull() {
		diags.AddAttributeError(at.AtName("assume_role_with_web_identity"), "conflicting aws.assume_role_with_web_identity settings",
			"aws.assume_role_with_web_identity: set web_identity_token or web_identity_token_file, not both")
	}
}

// awsCredentials copies the credential settings of the aws block into c.
func awsCredentials(ctx context.Context, a *awsProviderModel, c *policy.AWSSettings) diag.Diagnostics {
	var diags diag.Diagnostics
	strs := func(v interface {
		IsNull() bool
		IsUnknown() bool
		ElementsAs(context.Context, any, bool) diag.Diagnostics
	}) []string {
		var out []string
		if !v.IsNull() && !v.IsUnknown() {
			diags.Append(v.ElementsAs(ctx, &out, false)...)
		}
		return out
	}
	duration := func(v types.String, block string) time.Duration {
		if v.IsNull() || v.IsUnknown() {
			return 0
		}
		d, err := policy.ParseSessionDuration(v.ValueString())
		if err != nil {
			diags.AddAttributeError(path.Root("aws").AtName(block).AtName("duration"), "invalid aws."+block+".duration", "aws."+block+".duration: "+err.Error())
		}
		return d
	}
	c.SharedConfigFiles = strs(a.SharedConfigFiles)
	if r := a.AssumeRole; r != nil {
		c.AssumeRole = &policy.AWSAssumeRole{
			RoleARN:        r.RoleARN.ValueString(),
			SessionName:    r.SessionName.ValueString(),
			ExternalID:     r.ExternalID.ValueString(),
			Policy:         r.Policy.ValueString(),
			PolicyARNs:     strs(r.PolicyARNs),
			SourceIdentity: r.SourceIdentity.ValueString(),
			Duration:       duration(r.Duration, "assume_role"),
		}
	}
	if w := a.WebIdentity; w != nil {
		c.WebIdentity = &policy.AWSWebIdentity{
			RoleARN:     w.RoleARN.ValueString(),
			SessionName: w.SessionName.ValueString(),
			Token:       policy.Secret(w.WebIdentityToken.ValueString()),
			TokenFile:   w.WebIdentityTokenFile.ValueString(),
			Policy:      w.Policy.ValueString(),
			PolicyARNs:  strs(w.PolicyARNs),
			Duration:    duration(w.Duration, "assume_role_with_web_identity"),
		}
	}
	return diags
}
