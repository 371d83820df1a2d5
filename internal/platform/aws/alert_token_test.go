package aws

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
)

// The agents' bearer token in moto's Parameter Store: made once, from
// crypto/rand, as a SecureString; made again it keeps the value (an
// operator's rotation, a cluster created anew over its parameters), a
// String parameter in its place is refused naming it, and the cluster's
// Delete removes it.
func TestAlertToken(t *testing.T) {
	c, _ := testClients(t, nil)
	ctx := context.Background()
	s, _ := NewStore(c.SSM, "tok")
	if _, err := s.AlertToken(ctx); !errors.Is(err, platform.ErrNotFound) {
		t.Fatalf("the token of an empty store: %v", err)
	}
	created, err := s.EnsureAlertToken(ctx)
	if err != nil || !created {
		t.Fatalf("EnsureAlertToken: created %t, %v", created, err)
	}
	name := AlertTokenParameter("tok")
	out, err := c.SSM.GetParameter(ctx, &ssm.GetParameterInput{Name: awsv2.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	if out.Parameter.Type != ssmtypes.ParameterTypeSecureString {
		t.Fatalf("%s is a %s parameter, want SecureString", name, out.Parameter.Type)
	}
	first, err := s.AlertToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 64 || strings.Trim(first, "0123456789abcdef") != "" {
		t.Fatalf("the token is not 64 hex digits (%d characters)", len(first))
	}
	if created, err := s.EnsureAlertToken(ctx); err != nil || created {
		t.Fatalf("EnsureAlertToken again: created %t, %v; want the existing token kept", created, err)
	}
	if again, _ := s.AlertToken(ctx); again != first {
		t.Fatal("EnsureAlertToken replaced an existing token")
	}
	other, _ := NewStore(c.SSM, "tok2")
	if _, err := other.EnsureAlertToken(ctx); err != nil {
		t.Fatal(err)
	}
	if tok2, _ := other.AlertToken(ctx); tok2 == first {
		t.Fatal("two clusters got the same token")
	}

	if err := s.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AlertToken(ctx); !errors.Is(err, platform.ErrNotFound) {
		t.Fatalf("the token outlived the cluster's Delete: %v", err)
	}

	// A String parameter in its place would be readable in clear.
	if _, err := c.SSM.PutParameter(ctx, &ssm.PutParameterInput{Name: awsv2.String(name), Value: awsv2.String("plain"),
		Type: ssmtypes.ParameterTypeString}); err != nil {
		t.Fatal(err)
	}
	_, err = s.EnsureAlertToken(ctx)
	if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "SecureString") {
		t.Fatalf("a String parameter in place of the token: %v; want an error naming %s and SecureString", err, name)
	}
}

// The managers' policy reads the agents' token (it lies under the
// cluster's path, which their user data reads at boot); the workers'
// policy names no parameter but the worker join token, so a worker cannot
// read it and post alerts or read the status.
func TestAlertTokenReadableByManagersOnly(t *testing.T) {
	in := PolicyInput{Cluster: "prod", Region: "eu-west-1", AccountID: "123456789012"}
	arn := in.parameterARN(AlertTokenParameter("prod"))
	mgr, err := AgentPolicy(in)
	if err != nil {
		t.Fatal(err)
	}
	if !grantsRead(mgr, arn) {
		t.Errorf("the managers' policy does not let them read %s", arn)
	}
	wrk, err := WorkerPolicy(in)
	if err != nil {
		t.Fatal(err)
	}
	if grantsRead(wrk, arn) {
		t.Errorf("the workers' policy lets them read %s", arn)
	}
}

// grantsRead reports whether an Allow statement of d with
// ssm:GetParameter names arn, exactly or by a trailing '*'.
func grantsRead(d PolicyDocument, arn string) bool {
	for _, st := range d.Statement {
		if st.Effect != "Allow" || !slices.Contains(st.Action, "ssm:GetParameter") {
			continue
		}
		for _, r := range st.Resource {
			if r == arn || r == "*" || strings.HasSuffix(r, "*") && strings.HasPrefix(arn, strings.TrimSuffix(r, "*")) {
				return true
			}
		}
	}
	return false
}
