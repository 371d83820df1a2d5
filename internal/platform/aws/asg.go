package aws

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/platform/group"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

var _ group.Groups = (*asgGroups)(nil)

// asgGroups is the shared layer's groups (group.Groups) over Auto Scaling:
// a pool is an Auto Scaling Group started from a launch template, both
// named GroupName(cluster, pool); instance details come from EC2.
type asgGroups struct {
	clients *Clients
	region  string
	// agent does the agent's reads: with progress checks on demand.
	agent *NodeGroups
	// reader does the provider's reads: no progress checks.
	reader *NodeGroups
	// plat, when set, is the provisioning platform: its progress and poll.
	plat *group.Platform
}

func newASGGroups(c *Clients) *asgGroups {
	r := NewNodeGroups(c.AutoScaling)
	r.NoProgress = true
	return &asgGroups{clients: c, region: c.Config.Region, agent: NewNodeGroups(c.AutoScaling), reader: r}
}

func (p *asgGroups) progress() platform.Progress {
	if p.plat == nil {
		return platform.NoProgress
	}
	return p.plat.Progress()
}

func (p *asgGroups) poll() time.Duration {
	if p.plat == nil {
		return 2 * time.Second
	}
	return p.plat.PollInterval()
}

// Kind names the groups in messages.
func (p *asgGroups) Kind() string { return "Auto Scaling group" }

// Name is GroupName.
func (p *asgGroups) Name(cluster, pool string) string { return GroupName(cluster, pool) }

// Describe reads the named groups (DescribeGroups: one call per 100
// groups). With progress it also asks whether an instance refresh or a
// scaling activity is in progress on each (CheckProgress: two calls per
// group), which Busy needs: the agent asks for it only for the group it
// is about to change.
func (p *asgGroups) Describe(ctx context.Context, names []string, progress bool) (map[string]*group.Group, error) {
	found, err := p.reader.DescribeGroups(ctx, names)
	if err != nil {
		return nil, mark(err)
	}
	out := make(map[string]*group.Group, len(found))
	for name, g := range found {
		if progress {
			// A failed check is recorded in g and makes Busy report it.
			_ = p.agent.CheckProgress(ctx, g)
		}
		out[name] = shared(g)
	}
	return out, nil
}

// shared is g as the shared layer sees it.
func shared(g *Group) *group.Group {
	out := &group.Group{Name: g.Name, Desired: int(g.Desired), Bounded: true, Min: int(g.Min), Max: int(g.Max),
		Busy: func(a group.Action, id string) error {
			if a == group.ScaleIn {
				return g.Busy(ScaleIn, id)
			}
			return g.Busy(Grow, id)
		}}
	for _, in := range g.Instances {
		out.Members = append(out.Members, group.Member{ID: in.ID, Running: running(in.LifecycleState),
			Ready: in.LifecycleState == string(astypes.LifecycleStateInService)})
	}
	return out
}

// Details reads the launch time (CreatedAt) and private address (Addr) of
// every member from EC2, MaxInstancesPerDescribe ids per call. It filters
// on instance-id rather than naming InstanceIds, so an instance that is
// already gone is absent from the answer instead of failing the whole
// call; it keeps a zero CreatedAt.
func (p *asgGroups) Details(ctx context.Context, groups []*group.Group) error {
	var ids []string
	for _, g := range groups {
		for _, m := range g.Members {
			ids = append(ids, m.ID)
		}
	}
	type details struct {
		launched time.Time
		addr     string
	}
	found := make(map[string]details, len(ids))
	for start := 0; start < len(ids); start += MaxInstancesPerDescribe {
		batch := ids[start:min(start+MaxInstancesPerDescribe, len(ids))]
		pages := ec2.NewDescribeInstancesPaginator(p.clients.EC2, &ec2.DescribeInstancesInput{
			Filters:    []ec2types.Filter{{Name: awsv2.String("instance-id"), Values: batch}},
			MaxResults: awsv2.Int32(1000),
		})
		for pages.HasMorePages() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				return mark(fmt.Errorf("describe EC2 instances: %w", err))
			}
			for _, r := range page.Reservations {
				for _, in := range r.Instances {
					found[awsv2.ToString(in.InstanceId)] = details{launched: awsv2.ToTime(in.LaunchTime), addr: awsv2.ToString(in.PrivateIpAddress)}
				}
			}
		}
	}
	for _, g := range groups {
		for i := range g.Members {
			if d, ok := found[g.Members[i].ID]; ok {
				g.Members[i].CreatedAt, g.Members[i].Addr = d.launched, d.addr
			}
		}
	}
	return nil
}

// Resize sets the group's desired capacity (SetDesiredCapacity, absolute).
func (p *asgGroups) Resize(ctx context.Context, name string, size int) error {
	return mark(p.agent.SetDesiredCapacity(ctx, name, int32(size)))
}

// Remove terminates an instance of its group, decrementing the desired
// capacity with shrink (TerminateInstanceInAutoScalingGroup names the
// instance only).
func (p *asgGroups) Remove(ctx context.Context, _ string, id string, shrink bool) error {
	return mark(p.agent.TerminateInstance(ctx, id, shrink))
}

// tagsOf are the tags of a pool's group and launch template: the user's
// (cluster, then pool), then Name and Autarky's own, which win.
func tagsOf(c policy.Cluster, pool policy.Pool) map[string]string {
	tags := map[string]string{}
	if c.AWS != nil {
		for k, v := range c.AWS.Tags {
			tags[k] = v
		}
	}
	if pool.AWS != nil {
		for k, v := range pool.AWS.Tags {
			tags[k] = v
		}
	}
	if _, ok := tags["Name"]; !ok {
		tags["Name"] = GroupName(c.Name, pool.Name)
	}
	tags[TagCluster] = c.Name
	tags[TagPool] = pool.Name
	return tags
}

// launchTemplateData renders the launch template of a pool.
func (p *asgGroups) launchTemplateData(c policy.Cluster, pool policy.Pool) (*ec2types.RequestLaunchTemplateData, error) {
	if c.AWS == nil {
		return nil, fmt.Errorf("cluster %s has no aws settings", c.Name)
	}
	u := UserData{Cluster: c.Name, Pool: pool.Name, Role: pool.Role, Region: p.region,
		ManagerGroup: GroupName(c.Name, policy.ManagerPoolName), Labels: pool.Labels}
	if hb, err := policy.ParseDuration(c.HeartbeatPeriod); err == nil {
		u.HeartbeatPeriod = hb
	}
	if pool.Role == policy.RoleManager && c.Agent != nil && c.Agent.Enabled {
		u.Agent = &AgentBoot{URL: c.Agent.BinaryURL, SHA256: c.Agent.BinarySHA256,
			EvaluationInterval: c.Agent.EvaluationInterval, DryRun: c.Agent.DryRun}
	}
	script, err := RenderUserData(u)
	if err != nil {
		return nil, err
	}
	itype := c.AWS.InstanceType
	if pool.AWS != nil && pool.AWS.InstanceType != "" {
		itype = pool.AWS.InstanceType
	}
	data := &ec2types.RequestLaunchTemplateData{
		ImageId:      awsv2.String(c.AWS.AMI),
		InstanceType: ec2types.InstanceType(itype),
		UserData:     awsv2.String(base64.StdEncoding.EncodeToString([]byte(script))),
		MetadataOptions: &ec2types.LaunchTemplateInstanceMetadataOptionsRequest{
			HttpTokens:   ec2types.LaunchTemplateHttpTokensStateRequired,
			HttpEndpoint: ec2types.LaunchTemplateInstanceMetadataEndpointStateEnabled,
		},
	}
	if len(c.AWS.SecurityGroups) > 0 {
		data.SecurityGroupIds = c.AWS.SecurityGroups
	}
	if c.AWS.KeyName != "" {
		data.KeyName = awsv2.String(c.AWS.KeyName)
	}
	// The managers' pool boots with the cluster's profile; a worker pool
	// with its own, so that its role can hold the worker policy alone.
	if ip := policy.InstanceProfileOf(*c.AWS, pool.AWS); ip != "" {
		if strings.HasPrefix(ip, "arn:") {
			data.IamInstanceProfile = &ec2types.LaunchTemplateIamInstanceProfileSpecificationRequest{Arn: awsv2.String(ip)}
		} else {
			data.IamInstanceProfile = &ec2types.LaunchTemplateIamInstanceProfileSpecificationRequest{Name: awsv2.String(ip)}
		}
	}
	var vtags []ec2types.Tag
	tags := tagsOf(c, pool)
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		vtags = append(vtags, ec2types.Tag{Key: awsv2.String(k), Value: awsv2.String(tags[k])})
	}
	data.TagSpecifications = []ec2types.LaunchTemplateTagSpecificationRequest{{ResourceType: ec2types.ResourceTypeVolume, Tags: vtags}}
	return data, nil
}

// Put creates (update false) or updates a pool's launch template and
// group (group.Groups). An update adds a launch template version; the
// group launches from $Latest, so new instances boot with it and running
// ones are left alone.
func (p *asgGroups) Put(ctx context.Context, c policy.Cluster, pool policy.Pool, update bool) error {
	return mark(p.putGroup(ctx, c, pool, update))
}

func (p *asgGroups) putGroup(ctx context.Context, c policy.Cluster, pool policy.Pool, update bool) error {
	name := GroupName(c.Name, pool.Name)
	data, err := p.launchTemplateData(c, pool)
	if err != nil {
		return err
	}
	tags := tagsOf(c, pool)
	raw, err := json.Marshal(data)
	if err != nil {
		return err
	}
	// The version description carries a digest of the launch data, so an
	// update adds a version only when something an instance boots with
	// changed.
	desc := fmt.Sprintf("autarky %s %x", pool.ID(), sha256.Sum256(raw))
	latest, exists, err := p.latestVersionDescription(ctx, name)
	if err != nil {
		return err
	}
	if !exists {
		p.progress()("creating launch template", "name", name)
		var lt []ec2types.Tag
		for _, k := range slices.Sorted(maps.Keys(tags)) {
			lt = append(lt, ec2types.Tag{Key: awsv2.String(k), Value: awsv2.String(tags[k])})
		}
		if _, err := p.clients.EC2.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{
			LaunchTemplateName: awsv2.String(name),
			LaunchTemplateData: data,
			VersionDescription: awsv2.String(desc),
			TagSpecifications:  []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeLaunchTemplate, Tags: lt}},
		}); err != nil {
			return fmt.Errorf("create launch template %s: %w", name, err)
		}
	} else if update && latest != desc {
		p.progress()("adding a launch template version", "name", name)
		if _, err := p.clients.EC2.CreateLaunchTemplateVersion(ctx, &ec2.CreateLaunchTemplateVersionInput{
			LaunchTemplateName: awsv2.String(name),
			LaunchTemplateData: data,
			VersionDescription: awsv2.String(desc),
		}); err != nil {
			return fmt.Errorf("add a version to launch template %s: %w", name, err)
		}
	}
	var asTags []astypes.Tag
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		asTags = append(asTags, astypes.Tag{Key: awsv2.String(k), Value: awsv2.String(tags[k]),
			PropagateAtLaunch: awsv2.Bool(true), ResourceId: awsv2.String(name), ResourceType: awsv2.String("auto-scaling-group")})
	}
	ltSpec := &astypes.LaunchTemplateSpecification{LaunchTemplateName: awsv2.String(name), Version: awsv2.String("$Latest")}
	groups, err := p.reader.DescribeGroups(ctx, []string{name})
	if err != nil {
		return err
	}
	g, found := groups[name]
	if !found {
		p.progress()("creating Auto Scaling group", "name", name, "desired", pool.DesiredSize, "min", pool.MinSize, "max", pool.MaxSize)
		_, err := p.clients.AutoScaling.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{
			AutoScalingGroupName:             awsv2.String(name),
			LaunchTemplate:                   ltSpec,
			MinSize:                          awsv2.Int32(int32(pool.MinSize)),
			MaxSize:                          awsv2.Int32(int32(pool.MaxSize + group.Surge)),
			DesiredCapacity:                  awsv2.Int32(int32(pool.DesiredSize)),
			VPCZoneIdentifier:                awsv2.String(strings.Join(c.AWS.Subnets, ",")),
			HealthCheckType:                  awsv2.String("EC2"),
			NewInstancesProtectedFromScaleIn: awsv2.Bool(false),
			Tags:                             asTags,
		})
		if err != nil {
			return fmt.Errorf("create Auto Scaling group %s: %w", name, err)
		}
		return nil
	}
	if g.Status != "" {
		return fmt.Errorf("Auto Scaling group %s is %s", name, g.Status)
	}
	p.progress()("updating Auto Scaling group", "name", name, "desired", pool.DesiredSize, "min", pool.MinSize, "max", pool.MaxSize)
	if _, err := p.clients.AutoScaling.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{
		AutoScalingGroupName: awsv2.String(name),
		LaunchTemplate:       ltSpec,
		MinSize:              awsv2.Int32(int32(pool.MinSize)),
		MaxSize:              awsv2.Int32(int32(pool.MaxSize + group.Surge)),
		DesiredCapacity:      awsv2.Int32(int32(pool.DesiredSize)),
		VPCZoneIdentifier:    awsv2.String(strings.Join(c.AWS.Subnets, ",")),
	}); err != nil {
		return fmt.Errorf("update Auto Scaling group %s: %w", name, err)
	}
	if _, err := p.clients.AutoScaling.CreateOrUpdateTags(ctx, &autoscaling.CreateOrUpdateTagsInput{Tags: asTags}); err != nil {
		return fmt.Errorf("tag Auto Scaling group %s: %w", name, err)
	}
	var stale []astypes.Tag
	for k := range g.Tags {
		if _, keep := tags[k]; !keep && !strings.HasPrefix(k, "aws:") {
			stale = append(stale, astypes.Tag{Key: awsv2.String(k), ResourceId: awsv2.String(name), ResourceType: awsv2.String("auto-scaling-group")})
		}
	}
	if len(stale) > 0 {
		if _, err := p.clients.AutoScaling.DeleteTags(ctx, &autoscaling.DeleteTagsInput{Tags: stale}); err != nil {
			return fmt.Errorf("untag Auto Scaling group %s: %w", name, err)
		}
	}
	return nil
}

// latestVersionDescription is the description of a launch template's
// latest version; false when the template does not exist.
func (p *asgGroups) latestVersionDescription(ctx context.Context, name string) (string, bool, error) {
	out, err := p.clients.EC2.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{
		LaunchTemplateName: awsv2.String(name), Versions: []string{"$Latest"}})
	if err != nil {
		if isLaunchTemplateNotFound(err) {
			return "", false, nil
		}
		return "", false, fmt.Errorf("describe launch template %s: %w", name, err)
	}
	if len(out.LaunchTemplateVersions) == 0 {
		return "", false, nil
	}
	return awsv2.ToString(out.LaunchTemplateVersions[0].VersionDescription), true, nil
}

func isLaunchTemplateNotFound(err error) bool {
	var api smithy.APIError
	if !errors.As(err, &api) {
		return false
	}
	code := api.ErrorCode()
	return strings.Contains(code, "NotFound") || strings.Contains(code, "InvalidLaunchTemplateName")
}

// Delete force-deletes a pool's group (terminating its instances), waits
// until AWS has let it go, then deletes its launch template (group.Groups).
func (p *asgGroups) Delete(ctx context.Context, cluster, pool string) error {
	return mark(p.deleteGroup(ctx, cluster, pool))
}

func (p *asgGroups) deleteGroup(ctx context.Context, cluster, pool string) error {
	name := GroupName(cluster, pool)
	groups := p.reader
	found, err := groups.DescribeGroups(ctx, []string{name})
	if err != nil {
		return err
	}
	if _, ok := found[name]; ok {
		p.progress()("deleting Auto Scaling group and its instances", "name", name)
		if _, err := p.clients.AutoScaling.DeleteAutoScalingGroup(ctx, &autoscaling.DeleteAutoScalingGroupInput{
			AutoScalingGroupName: awsv2.String(name),
			ForceDelete:          awsv2.Bool(true),
		}); err != nil && !isGroupNotFound(err) {
			return fmt.Errorf("delete Auto Scaling group %s: %w", name, err)
		}
		if err := platform.WaitFor(ctx, p.poll(), func() (bool, error) {
			left, err := groups.DescribeGroups(ctx, []string{name})
			if err != nil {
				return false, err
			}
			_, still := left[name]
			return !still, nil
		}); err != nil {
			return fmt.Errorf("waiting for Auto Scaling group %s to be deleted: %w", name, err)
		}
	}
	if _, err := p.clients.EC2.DeleteLaunchTemplate(ctx, &ec2.DeleteLaunchTemplateInput{LaunchTemplateName: awsv2.String(name)}); err != nil && !isLaunchTemplateNotFound(err) {
		return fmt.Errorf("delete launch template %s: %w", name, err)
	}
	return nil
}

func isGroupNotFound(err error) bool {
	var api smithy.APIError
	return errors.As(err, &api) && api.ErrorCode() == "ValidationError" && strings.Contains(strings.ToLower(api.ErrorMessage()), "not found")
}
