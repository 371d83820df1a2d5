package aws

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// retries reads autarky_aws_retries_total{operation=op,code=code}.
func retries(m *Metrics, op, code string) float64 {
	var out dto.Metric
	if err := m.Retries.WithLabelValues(op, code).Write(&out); err != nil {
		panic(err)
	}
	return out.GetCounter().GetValue()
}

// TestThrottlingRetriedAndCounted puts a throttling burst between the
// client and moto, in each protocol's own error format, and checks that
// the calls are retried, counted, and then succeed against moto.
func TestThrottlingRetriedAndCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	c, proxy := testClients(t, m)
	f := newFixture(t, c, "throttle")
	f.group("throttle-workers", 0, 1, 5)
	groups := NewNodeGroups(c.AutoScaling)
	ctx := context.Background()

	// Auto Scaling (query protocol): Throttling.
	proxy.Reset()
	proxy.SetFault(firstN("DescribeAutoScalingGroups", 3, CodeThrottling))
	got, err := groups.DescribeGroups(ctx, []string{"throttle-workers"})
	if err != nil {
		t.Fatalf("after a burst of 3 throttles: %v", err)
	}
	if len(got["throttle-workers"].Instances) != 1 {
		t.Fatalf("described %+v", got)
	}
	if n := proxy.Calls("DescribeAutoScalingGroups"); n != 4 {
		t.Errorf("%d DescribeAutoScalingGroups on the wire, want 4 (3 throttled + 1)", n)
	}
	if v := retries(m, "DescribeAutoScalingGroups", CodeThrottling); v != 3 {
		t.Errorf("autarky_aws_retries_total{DescribeAutoScalingGroups,Throttling} = %g, want 3", v)
	}

	// ScalingActivityInProgress on a resize: retried, then moto resizes,
	// once.
	proxy.SetFault(firstN("SetDesiredCapacity", 2, CodeScalingActivityInProgress))
	if err := groups.SetDesiredCapacity(ctx, "throttle-workers", 3); err != nil {
		t.Fatalf("after 2 ScalingActivityInProgress: %v", err)
	}
	if g := f.describe("throttle-workers"); awsv2.ToInt32(g.DesiredCapacity) != 3 || len(g.Instances) != 3 {
		t.Errorf("after the retried resize: desired %d, %d instances", awsv2.ToInt32(g.DesiredCapacity), len(g.Instances))
	}
	if v := retries(m, "SetDesiredCapacity", CodeScalingActivityInProgress); v != 2 {
		t.Errorf("retries of SetDesiredCapacity for ScalingActivityInProgress = %g, want 2", v)
	}

	// EC2 (ec2 query protocol): RequestLimitExceeded.
	proxy.SetFault(firstN("DescribeInstances", 2, CodeRequestLimitExceeded))
	if _, err := c.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{}); err != nil {
		t.Fatalf("after 2 RequestLimitExceeded: %v", err)
	}
	if v := retries(m, "DescribeInstances", CodeRequestLimitExceeded); v != 2 {
		t.Errorf("retries of DescribeInstances for RequestLimitExceeded = %g, want 2", v)
	}

	// SSM (JSON protocol): ThrottlingException.
	store, err := NewStore(c.SSM, "throttle")
	if err != nil {
		t.Fatal(err)
	}
	proxy.SetFault(firstN("PutParameter", 2, CodeThrottlingException))
	if _, err := store.SaveJournal(ctx, map[string]int{"n": 1}, ""); err != nil {
		t.Fatalf("after 2 ThrottlingException: %v", err)
	}
	if v := retries(m, "PutParameter", CodeThrottlingException); v != 2 {
		t.Errorf("retries of PutParameter for ThrottlingException = %g, want 2", v)
	}

	// A burst longer than the attempts: the error is transient (hold, not
	// a pool failure), and every retry was counted.
	proxy.Reset()
	proxy.SetFault(firstN("DescribeAutoScalingGroups", 100, CodeThrottling))
	before := retries(m, "DescribeAutoScalingGroups", CodeThrottling)
	_, err = groups.DescribeGroups(ctx, []string{"throttle-workers"})
	if err == nil || !IsTransient(err) {
		t.Fatalf("an endless burst: %v, want a transient error", err)
	}
	if n := proxy.Calls("DescribeAutoScalingGroups"); n != fastRetry.MaxAttempts {
		t.Errorf("%d attempts, want %d", n, fastRetry.MaxAttempts)
	}
	if d := retries(m, "DescribeAutoScalingGroups", CodeThrottling) - before; d != float64(fastRetry.MaxAttempts-1) {
		t.Errorf("%g retries counted, want %d", d, fastRetry.MaxAttempts-1)
	}

	// The metric is on the registry under its documented name (beside
	// the rate limiter's wait).
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		found = found || mf.GetName() == "autarky_aws_retries_total"
	}
	if !found {
		t.Fatalf("registry holds %v", mfs)
	}
	// Registering again (a second client of one agent) shares the counter.
	m2, err := NewMetrics(reg)
	if err != nil || m2.Retries != m.Retries {
		t.Fatalf("second NewMetrics on one registry: %v", err)
	}
}

func TestIsTransient(t *testing.T) {
	if IsTransient(nil) || IsTransient(errors.New("boom")) {
		t.Error("plain errors are not transient")
	}
	if !IsTransient(&BusyError{Group: "g", Reasons: []string{"x"}}) {
		t.Error("a busy group is transient")
	}
	throttled := fmt.Errorf("operation error Auto Scaling: DescribeAutoScalingGroups: %w", &smithy.GenericAPIError{Code: CodeThrottling, Message: "Rate exceeded"})
	if !IsTransient(throttled) || !IsTransient(scrub(throttled)) {
		t.Error("throttling is transient, scrubbed or not")
	}
	if IsTransient(&smithy.GenericAPIError{Code: "ValidationError"}) {
		t.Error("a ValidationError is not transient")
	}
}

// TestLoadConfigChain resolves credentials and region through the standard
// chain (environment variables here), points each service at its own
// endpoint, and talks to moto.
func TestLoadConfigChain(t *testing.T) {
	moto := testenv.StartMoto(t)
	proxy := newProxy(t, moto)
	isolateAWSEnv(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "testing")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "testing")
	t.Setenv("AWS_REGION", testRegion)
	ctx := context.Background()

	// Only SSM goes through the proxy; the others straight to moto.
	c, err := Connect(ctx, Config{Endpoints: Endpoints{EC2: moto, AutoScaling: moto, SSM: proxy.URL}, Retry: fastRetry}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Config.Region != testRegion {
		t.Errorf("region %q from AWS_REGION", c.Config.Region)
	}
	if err := CheckCredentials(ctx, c.Config); err != nil {
		t.Fatal(err)
	}
	if _, err := NewNodeGroups(c.AutoScaling).DescribeGroups(ctx, []string{"none"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SSM.GetParametersByPath(ctx, &ssm.GetParametersByPathInput{Path: awsv2.String("/autarky")}); err != nil {
		t.Fatal(err)
	}
	if proxy.Calls("GetParametersByPath") != 1 || proxy.Calls("DescribeAutoScalingGroups") != 0 || proxy.Calls("DescribeInstances") != 0 {
		t.Errorf("per-service endpoints not honoured: %v", proxy.CallCounts())
	}

	// An explicit region wins over the environment.
	c, err = Connect(ctx, Config{Region: "eu-west-1"}, nil)
	if err != nil || c.Config.Region != "eu-west-1" {
		t.Fatalf("explicit region: %v, %q", err, c.Config.Region)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	isolateAWSEnv(t)
	ctx := context.Background()
	if _, err := LoadConfig(ctx, Config{}); err == nil || !strings.Contains(err.Error(), "no AWS region") {
		t.Errorf("no region anywhere: %v", err)
	}
	cfg, err := LoadConfig(ctx, Config{Region: testRegion})
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckCredentials(ctx, cfg); err == nil || !strings.Contains(err.Error(), "no valid credential sources found") {
		t.Errorf("no credentials anywhere: %v", err)
	}
	if _, err := LoadConfig(ctx, Config{Region: testRegion, Profile: "nosuchprofile"}); err == nil || !strings.Contains(err.Error(), "nosuchprofile") {
		t.Errorf("unknown profile: %v", err)
	}
}

// isolateAWSEnv hides the machine's AWS settings from the test: no
// environment credentials, no shared files, no instance metadata.
func isolateAWSEnv(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
		"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", dir+"/config")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", dir+"/credentials")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}
