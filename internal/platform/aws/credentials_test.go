package aws

import (
	"fmt"
	"strings"
	"testing"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// A web identity token never shows in a printed configuration, whatever
// the verb: logs and errors that print a Config cannot leak it.
func TestSecretIsRedacted(t *testing.T) {
	w := WebIdentity{RoleARN: "arn:aws:iam::123456789012:role/ci", Token: "tok-canary-7f3a"}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		if out := fmt.Sprintf(verb, w); strings.Contains(out, "tok-canary-7f3a") {
			t.Errorf("%s prints the token: %s", verb, out)
		}
	}
	if got, _ := w.Token.GetIdentityToken(); string(got) != "tok-canary-7f3a" {
		t.Errorf("the token given to STS is %q", got)
	}
}

// The web identity block falls back to the environment the way the AWS
// provider does, and says which field is missing when neither has it.
func TestWebIdentityResolved(t *testing.T) {
	const role = "arn:aws:iam::123456789012:role/ci"
	for _, tc := range []struct {
		name    string
		env     map[string]string
		in      WebIdentity
		want    WebIdentity
		wantErr string
	}{
		{name: "all from the environment",
			env:  map[string]string{"AWS_ROLE_ARN": role, "AWS_ROLE_SESSION_NAME": "run-1", "AWS_WEB_IDENTITY_TOKEN_FILE": "/run/token"},
			want: WebIdentity{RoleARN: role, SessionName: "run-1", TokenFile: "/run/token"}},
		{name: "the block wins",
			env:  map[string]string{"AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/other", "AWS_WEB_IDENTITY_TOKEN_FILE": "/run/other"},
			in:   WebIdentity{RoleARN: role, TokenFile: "/run/token"},
			want: WebIdentity{RoleARN: role, TokenFile: "/run/token"}},
		{name: "an inline token keeps the file variable out",
			env:  map[string]string{"AWS_ROLE_ARN": role, "AWS_WEB_IDENTITY_TOKEN_FILE": "/run/other"},
			in:   WebIdentity{Token: "t"},
			want: WebIdentity{RoleARN: role, Token: "t"}},
		{name: "no role", in: WebIdentity{Token: "t"}, wantErr: "assume_role_with_web_identity.role_arn: not set, and AWS_ROLE_ARN is empty"},
		{name: "no token", in: WebIdentity{RoleARN: role}, wantErr: "neither web_identity_token nor web_identity_token_file is set, and AWS_WEB_IDENTITY_TOKEN_FILE is empty"},
		{name: "both", in: WebIdentity{RoleARN: role, Token: "t", TokenFile: "/run/token"}, wantErr: "set web_identity_token or web_identity_token_file, not both"},
		{name: "bad role from the environment", env: map[string]string{"AWS_ROLE_ARN": "ci"}, in: WebIdentity{Token: "t"},
			wantErr: `assume_role_with_web_identity.role_arn: "ci" is not an IAM role ARN`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, v := range []string{"AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME", "AWS_WEB_IDENTITY_TOKEN_FILE"} {
				t.Setenv(v, tc.env[v])
			}
			got, err := resolveWebIdentity(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.RoleARN != tc.want.RoleARN || got.SessionName != tc.want.SessionName || got.TokenFile != tc.want.TokenFile || got.Token != tc.want.Token {
				t.Fatalf("resolved %+v, want %+v", got, tc.want)
			}
		})
	}
}

// Session durations are STS's: 15 minutes to 12 hours.
func TestParseSessionDuration(t *testing.T) {
	for s, ok := range map[string]bool{"15m": true, "1h": true, "12h": true, "14m59s": false, "12h1s": false, "soon": false, "": false} {
		if _, err := policy.ParseSessionDuration(s); (err == nil) != ok {
			t.Errorf("ParseSessionDuration(%q): %v", s, err)
		}
	}
}
