package aws

import (
	"context"
	"sync"
	"testing"
	"time"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

const testRegion = "us-east-1"

// fastRetry keeps the real backoff logic but with short waits.
var fastRetry = RetryConfig{MaxAttempts: 6, BaseDelay: 5 * time.Millisecond, MaxDelay: 40 * time.Millisecond}

// testConfig is the SDK configuration of the tests: static test
// credentials (moto checks no signature) and one endpoint for every service.
func testConfig(endpoint string) awsv2.Config {
	return awsv2.Config{
		Region:       testRegion,
		Credentials:  credentials.NewStaticCredentialsProvider("testing", "testing", ""),
		BaseEndpoint: awsv2.String(endpoint),
	}
}

// testClients starts moto behind a proxy the test controls and returns
// clients that reach moto through the proxy.
func testClients(t *testing.T, m *Metrics) (*Clients, *awsProxy) {
	t.Helper()
	p := newProxy(t, testenv.StartMoto(t))
	return NewClients(testConfig(p.URL), Config{Retry: fastRetry}, m), p
}

// The proxy in front of moto lives in testenv, shared with the agent's tests.
type (
	fault    = testenv.AWSFault
	awsProxy = testenv.AWSProxy
	call     = testenv.AWSCall
)

var (
	newProxy  = testenv.NewAWSProxy
	formValue = testenv.AWSFormValue
	apiError  = testenv.AWSAPIError
)

// firstN answers the first n calls of action with an error code, then
// forwards.
func firstN(action string, n int, code string) func(call) *fault {
	var mu sync.Mutex
	left := n
	return func(c call) *fault {
		if c.Action != action {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		if left == 0 {
			return nil
		}
		left--
		return apiError(c, code, "Rate exceeded")
	}
}

// fixture creates, in moto, a launch template and Auto Scaling Groups
// tagged for a cluster, as the provider will.
type fixture struct {
	t        *testing.T
	c        *Clients
	cluster  string
	template string
}

func newFixture(t *testing.T, c *Clients, cluster string) *fixture {
	t.Helper()
	ctx := context.Background()
	imgs, err := c.EC2.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"amazon"}})
	if err != nil || len(imgs.Images) == 0 {
		t.Fatalf("moto has no images to launch from: %v", err)
	}
	name := cluster + "-workers"
	_, err = c.EC2.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: awsv2.String(name),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{
			ImageId:      imgs.Images[0].ImageId,
			InstanceType: ec2types.InstanceTypeT3Micro,
		},
	})
	if err != nil {
		t.Fatalf("create launch template: %v", err)
	}
	return &fixture{t: t, c: c, cluster: cluster, template: name}
}

// group creates one Auto Scaling Group of the cluster.
func (f *fixture) group(name string, min, desired, max int32) {
	f.t.Helper()
	_, err := f.c.AutoScaling.CreateAutoScalingGroup(context.Background(), &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: awsv2.String(name),
		LaunchTemplate:       &astypes.LaunchTemplateSpecification{LaunchTemplateName: awsv2.String(f.template), Version: awsv2.String("$Latest")},
		MinSize:              awsv2.Int32(min),
		MaxSize:              awsv2.Int32(max),
		DesiredCapacity:      awsv2.Int32(desired),
		AvailabilityZones:    []string{testRegion + "a"},
		Tags: []astypes.Tag{
			{Key: awsv2.String(TagCluster), Value: awsv2.String(f.cluster), PropagateAtLaunch: awsv2.Bool(true)},
			{Key: awsv2.String(TagPool), Value: awsv2.String(name), PropagateAtLaunch: awsv2.Bool(true)},
		},
	})
	if err != nil {
		f.t.Fatalf("create Auto Scaling group %s: %v", name, err)
	}
}

// describe describes one group straight from moto.
func (f *fixture) describe(name string) astypes.AutoScalingGroup {
	f.t.Helper()
	out, err := f.c.AutoScaling.DescribeAutoScalingGroups(context.Background(), &autoscaling.DescribeAutoScalingGroupsInput{
		AutoScalingGroupNames: []string{name},
	})
	if err != nil || len(out.AutoScalingGroups) != 1 {
		f.t.Fatalf("describe %s: %v (%d groups)", name, err, len(out.AutoScalingGroups))
	}
	return out.AutoScalingGroups[0]
}

// ec2State is an instance's EC2 state in moto.
func (f *fixture) ec2State(id string) string {
	f.t.Helper()
	out, err := f.c.EC2.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		f.t.Fatalf("describe instance %s: %v", id, err)
	}
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			return string(in.State.Name)
		}
	}
	return ""
}
