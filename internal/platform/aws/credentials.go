package aws

import (
	"context"
	"errors"
	"fmt"
	"os"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// Role assumption, as the provider's aws block declares it. The settings
// are spelled as the hashicorp/aws provider spells them (assume_role,
// assume_role_with_web_identity), so a team moving a configuration between
// the two providers, or reading one provider's documentation for the
// other, finds the same knobs doing the same thing.
//
// The order is the AWS provider's: the base credentials come from the
// assume_role_with_web_identity block when there is one, else from the
// standard chain (which itself honours AWS_ROLE_ARN and
// AWS_WEB_IDENTITY_TOKEN_FILE, the way Terraform Cloud's dynamic provider
// credentials and EKS service accounts hand over a web identity); the
// assume_role block, when there is one, is then assumed with them.
//
// Every STS call goes to Endpoints.STS when it is set, the SDK's own chain
// included: a private (VPC) STS endpoint, or an emulator, must see the
// AssumeRoleWithWebIdentity of a run, not the public endpoint.
//
// Credentials are never logged, never returned in an error and never
// reach Terraform state: the provider block is not part of state, the
// token is a Secret whose printed form is redacted, and the SDK's
// providers keep the keys they get in memory only.

// The settings' types are policy's (policy.AWSAssumeRole and so on): the
// provider fills them, this package resolves and uses them.
type (
	AssumeRole  = policy.AWSAssumeRole
	WebIdentity = policy.AWSWebIdentity
	Secret      = policy.Secret
)

// resolveWebIdentity fills the web identity's empty fields from the environment, as
// the AWS provider does, and checks that a role and a token are known.
func resolveWebIdentity(w WebIdentity) (WebIdentity, error) {
	if w.RoleARN == "" {
		w.RoleARN = os.Getenv("AWS_ROLE_ARN")
	}
	if w.SessionName == "" {
		w.SessionName = os.Getenv("AWS_ROLE_SESSION_NAME")
	}
	if w.Token == "" && w.TokenFile == "" {
		w.TokenFile = os.Getenv("AWS_WEB_IDENTITY_TOKEN_FILE")
	}
	switch {
	case w.RoleARN == "":
		return w, errors.New("assume_role_with_web_identity.role_arn: not set, and AWS_ROLE_ARN is empty: name the role to assume")
	case w.Token != "" && w.TokenFile != "":
		return w, errors.New("assume_role_with_web_identity: set web_identity_token or web_identity_token_file, not both")
	case w.Token == "" && w.TokenFile == "":
		return w, errors.New("assume_role_with_web_identity: neither web_identity_token nor web_identity_token_file is set, and AWS_WEB_IDENTITY_TOKEN_FILE is empty: give the OIDC token or the file that holds it")
	}
	if err := policy.ValidateRoleARN(w.RoleARN); err != nil {
		return w, fmt.Errorf("assume_role_with_web_identity.role_arn: %w", err)
	}
	return w, nil
}

// stsOptions are the SDK loader's options that send the STS calls of its
// own credential chain (web identity from the environment or a profile,
// role_arn in a profile) to endpoint. The loader makes those clients
// itself, from the configuration it is still loading, so the endpoint is
// put on each call instead.
func stsOptions(endpoint string) []func(*config.LoadOptions) error {
	if endpoint == "" {
		return nil
	}
	at := func(o *sts.Options) { o.BaseEndpoint = awsv2.String(endpoint) }
	return []func(*config.LoadOptions) error{
		config.WithWebIdentityRoleCredentialOptions(func(o *stscreds.WebIdentityRoleOptions) {
			if o.Client != nil { // nil on the loader's first, checking pass
				o.Client = webIdentityAt{next: o.Client, at: at}
			}
		}),
		config.WithAssumeRoleCredentialOptions(func(o *stscreds.AssumeRoleOptions) {
			if o.Client != nil {
				o.Client = assumeRoleAt{next: o.Client, at: at}
			}
		}),
	}
}

type webIdentityAt struct {
	next stscreds.AssumeRoleWithWebIdentityAPIClient
	at   func(*sts.Options)
}

func (c webIdentityAt) AssumeRoleWithWebIdentity(ctx context.Context, in *sts.AssumeRoleWithWebIdentityInput, opts ...func(*sts.Options)) (*sts.AssumeRoleWithWebIdentityOutput, error) {
	return c.next.AssumeRoleWithWebIdentity(ctx, in, append(opts, c.at)...)
}

type assumeRoleAt struct {
	next stscreds.AssumeRoleAPIClient
	at   func(*sts.Options)
}

func (c assumeRoleAt) AssumeRole(ctx context.Context, in *sts.AssumeRoleInput, opts ...func(*sts.Options)) (*sts.AssumeRoleOutput, error) {
	return c.next.AssumeRole(ctx, in, append(opts, c.at)...)
}

// assumeRoles replaces cfg's credentials with those of the web identity
// and assume_role blocks of c, in the AWS provider's order. Each provider
// is cached, so STS is called once per session, not once per API call.
func assumeRoles(cfg *awsv2.Config, c Config) error {
	stsClient := func() *sts.Client {
		return sts.NewFromConfig(*cfg, func(o *sts.Options) {
			if c.Endpoints.STS != "" {
				o.BaseEndpoint = awsv2.String(c.Endpoints.STS)
			}
		})
	}
	if c.WebIdentity != nil {
		w, err := resolveWebIdentity(*c.WebIdentity)
		if err != nil {
			return err
		}
		var token stscreds.IdentityTokenRetriever = w.Token
		if w.TokenFile != "" {
			token = stscreds.IdentityTokenFile(w.TokenFile)
		}
		cfg.Credentials = awsv2.NewCredentialsCache(stscreds.NewWebIdentityRoleProvider(stsClient(), w.RoleARN, token, func(o *stscreds.WebIdentityRoleOptions) {
			o.RoleSessionName = w.SessionName
			o.Duration = w.Duration
			o.Policy = optional(w.Policy)
			o.PolicyARNs = policyARNs(w.PolicyARNs)
		}))
	}
	if a := c.AssumeRole; a != nil {
		if err := policy.ValidateRoleARN(a.RoleARN); err != nil {
			return fmt.Errorf("assume_role.role_arn: %w", err)
		}
		cfg.Credentials = awsv2.NewCredentialsCache(stscreds.NewAssumeRoleProvider(stsClient(), a.RoleARN, func(o *stscreds.AssumeRoleOptions) {
			o.RoleSessionName = a.SessionName
			o.ExternalID = optional(a.ExternalID)
			if a.Duration > 0 {
				o.Duration = a.Duration
			}
			o.Policy = optional(a.Policy)
			o.PolicyARNs = policyARNs(a.PolicyARNs)
			o.SourceIdentity = optional(a.SourceIdentity)
		}))
	}
	return nil
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return awsv2.String(s)
}

func policyARNs(arns []string) []ststypes.PolicyDescriptorType {
	var out []ststypes.PolicyDescriptorType
	for _, a := range arns {
		out = append(out, ststypes.PolicyDescriptorType{Arn: awsv2.String(a)})
	}
	return out
}
