package testenv

import (
	"context"
	"testing"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// HandMadeGroup is an Auto Scaling Group as someone made it before
// Autarky, for the tests of adoption: its name, sizes and tags (each
// propagated to its instances).
type HandMadeGroup struct {
	Name              string
	Min, Desired, Max int32
	Tags              map[string]string
}

// MakeGroups makes in moto a launch template named template, from one of
// moto's images, and groups launching from it in zone <region>a.
func MakeGroups(t testing.TB, ec2c *ec2.Client, asc *autoscaling.Client, region, template string, groups ...HandMadeGroup) {
	t.Helper()
	ctx := context.Background()
	imgs, err := ec2c.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"amazon"}})
	if err != nil || len(imgs.Images) == 0 {
		t.Fatalf("moto has no images to launch from: %v", err)
	}
	if _, err := ec2c.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: awsv2.String(template),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: imgs.Images[0].ImageId, InstanceType: ec2types.InstanceTypeT3Micro}}); err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		var tags []astypes.Tag
		for k, v := range g.Tags {
			tags = append(tags, astypes.Tag{Key: awsv2.String(k), Value: awsv2.String(v), PropagateAtLaunch: awsv2.Bool(true)})
		}
		if _, err := asc.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{
			AutoScalingGroupName: awsv2.String(g.Name),
			LaunchTemplate:       &astypes.LaunchTemplateSpecification{LaunchTemplateName: awsv2.String(template), Version: awsv2.String("$Latest")},
			MinSize:              awsv2.Int32(g.Min), MaxSize: awsv2.Int32(g.Max), DesiredCapacity: awsv2.Int32(g.Desired),
			AvailabilityZones: []string{region + "a"}, Tags: tags,
		}); err != nil {
			t.Fatalf("create group %s: %v", g.Name, err)
		}
	}
}
