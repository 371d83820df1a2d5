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
	"sort"
	"strings"
	"time"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/swarm"
)

// Platform is what the provider does on AWS: it creates, reads, changes and
// deletes clusters and node pools as launch templates, Auto Scaling Groups
// and SSM parameters. Every pool, the managers included, is one launch
// template and one group named GroupName(cluster, pool); the group's
// maximum is the pool's max_size plus one (manager_count plus one for the
// managers), the room one replacement needs to join before the instance
// it replaces leaves. The agent keeps the pool inside [min_size, max_size].
type Platform struct {
	clients  *Clients
	region   string
	progress platform.Progress
	// Poll is how often waits ask AWS again; zero means 2s.
	Poll time.Duration
}

// NewPlatform provisions with c; progress receives what it does.
func NewPlatform(c *Clients, progress platform.Progress) *Platform {
	if progress == nil {
		progress = platform.NoProgress
	}
	return &Platform{clients: c, region: c.Config.Region, progress: progress}
}

func (p *Platform) poll() time.Duration {
	if p.Poll > 0 {
		return p.Poll
	}
	return 2 * time.Second
}

func (p *Platform) store(cluster string) (*Store, error) { return NewStore(p.clients.SSM, cluster) }

// Cluster opens the agent's view of cluster name.
func (p *Platform) Cluster(name string) (*Cluster, error) { return NewCluster(p.clients, name, nil) }

// reader opens cluster name for reading only: no progress checks.
func (p *Platform) reader(name string) (*Cluster, error) {
	cl, err := NewCluster(p.clients, name, nil)
	if err != nil {
		return nil, err
	}
	cl.groups.NoProgress = true
	return cl, nil
}

// groups is the platform's own NodeGroups: reads without progress checks.
func (p *Platform) groups() *NodeGroups {
	g := NewNodeGroups(p.clients.AutoScaling)
	g.NoProgress = true
	return g
}

// surge is the room above a pool's maximum for one replacement.
const surge = 1

// CreateCluster writes the descriptor to SSM, then the managers' launch
// template and group, and waits until manager_count instances are in
// service. The first manager's user data initialises the swarm and writes
// the join tokens to SSM. On failure nothing of the cluster is left.
func (p *Platform) CreateCluster(ctx context.Context, c policy.Cluster) (st platform.ClusterStatus, err error) {
	if err := c.Validate(); err != nil {
		return st, err
	}
	if c.Platform != policy.PlatformAWS {
		return st, fmt.Errorf("cluster %s is on platform %q, not aws", c.Name, c.Platform)
	}
	s, err := p.store(c.Name)
	if err != nil {
		return st, err
	}
	if _, err := s.Descriptor(ctx); err == nil {
		gone, gerr := p.managersGone(ctx, c.Name)
		if gerr != nil {
			return st, gerr
		}
		if !gone {
			return st, fmt.Errorf("%w: a cluster named %q already has parameters under %s: choose another name, or import it with `terraform import <address> %s`", platform.ErrExists, c.Name, s.Path(), c.Name)
		}
		// The parameters of a lost cluster (its managers' group is gone):
		// its tokens and init lock name a swarm that no longer exists, so
		// the new first manager must initialise a new one.
		p.progress("the cluster's managers' group is gone: creating it anew over its parameters", "cluster", c.Name)
		if err := s.DeleteTokens(ctx); err != nil {
			return st, err
		}
		if err := s.remove(ctx, InitLockParameter(c.Name)); err != nil {
			return st, err
		}
	} else if !errors.Is(err, platform.ErrNotFound) {
		return st, err
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = time.Now().UTC()
	}
	defer func() {
		if err != nil {
			p.progress("creating the cluster failed: removing what was created", "cluster", c.Name, "error", err)
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
			defer cancel()
			if derr := p.DeleteCluster(cctx, c.Name); derr != nil {
				err = fmt.Errorf("%w (and cleaning up failed: %v)", err, derr)
			}
		}
	}()
	if err := s.PutDescriptor(ctx, c); err != nil {
		return st, err
	}
	if c.JoinTokenRotation != "" {
		// A new swarm's tokens are new: they count as rotated for the
		// trigger the cluster starts with, so the agent leaves them.
		if err := s.MarkTokensRotated(ctx, c.JoinTokenRotation); err != nil {
			return st, err
		}
	}
	if err := p.ensureAgentToken(ctx, s, c); err != nil {
		return st, err
	}
	mp := managerPool(c)
	if err := p.putGroup(ctx, c, mp, false); err != nil {
		return st, err
	}
	p.progress("waiting for the managers to be in service", "cluster", c.Name, "count", c.ManagerCount)
	if err := p.waitInService(ctx, GroupName(c.Name, policy.ManagerPoolName), int(c.ManagerCount)); err != nil {
		return st, err
	}
	_, st, err = p.ReadCluster(ctx, c.Name)
	return st, err
}

// ensureAgentToken creates the agents' bearer token (AlertTokenParameter)
// before any manager that runs the agent boots, since its user data reads
// it; a cluster whose agent is off needs none. Only the parameter's name
// ever reaches Terraform, never its value.
func (p *Platform) ensureAgentToken(ctx context.Context, s *Store, c policy.Cluster) error {
	if c.Agent == nil || !c.Agent.Enabled {
		return nil
	}
	created, err := s.EnsureAlertToken(ctx)
	if created {
		p.progress("created the agents' bearer token", "cluster", c.Name, "parameter", AlertTokenParameter(c.Name))
	}
	return err
}

// managersGone reports whether the managers' group of cluster is gone.
func (p *Platform) managersGone(ctx context.Context, cluster string) (bool, error) {
	name := GroupName(cluster, policy.ManagerPoolName)
	found, err := p.groups().DescribeGroups(ctx, []string{name})
	if err != nil {
		return false, err
	}
	_, ok := found[name]
	return !ok, nil
}

// managerPool is the cluster's manager pool as a pool descriptor.
func managerPool(c policy.Cluster) policy.Pool {
	return policy.Pool{Cluster: c.Name, Name: policy.ManagerPoolName, Role: policy.RoleManager,
		MinSize: c.ManagerCount, MaxSize: c.ManagerCount, DesiredSize: c.ManagerCount, Labels: c.Labels}
}

// ReadCluster reads the descriptor from SSM and the managers' group:
// manager_count drifts with the group's minimum size. The join tokens
// stay in SSM: Terraform's state never holds them.
func (p *Platform) ReadCluster(ctx context.Context, name string) (policy.Cluster, platform.ClusterStatus, error) {
	var st platform.ClusterStatus
	s, err := p.store(name)
	if err != nil {
		return policy.Cluster{}, st, err
	}
	c, err := s.Descriptor(ctx)
	if err != nil {
		return c, st, err
	}
	cl, err := p.reader(name)
	if err != nil {
		return c, st, err
	}
	g, err := cl.group(ctx, policy.ManagerPoolName)
	if errors.Is(err, platform.ErrNotFound) {
		st.Lost = true // the managers' group is gone, and the swarm with it
		return c, st, nil
	}
	if err != nil {
		return c, st, err
	}
	if g.Min != int32(c.ManagerCount) && policy.ValidateManagerCount(int64(g.Min)) == nil {
		c.ManagerCount = int64(g.Min)
	}
	insts, err := cl.Instances(ctx)
	if err != nil {
		return c, st, err
	}
	for _, in := range insts {
		if in.Pool != policy.ManagerPoolName || !in.Running {
			continue
		}
		st.LiveManagers++
		if in.Addr != "" {
			st.ManagerAddresses = append(st.ManagerAddresses, in.Addr+":2377")
		}
	}
	sort.Strings(st.ManagerAddresses)
	return c, st, nil
}

// JoinTokens reads the join tokens from SSM, where the first manager
// stored them; an error naming what to wait for when it has not yet.
func (p *Platform) JoinTokens(ctx context.Context, cluster string) (swarm.Tokens, error) {
	s, err := p.store(cluster)
	if err != nil {
		return swarm.Tokens{}, err
	}
	t, err := s.GetTokens(ctx)
	if errors.Is(err, platform.ErrNotFound) {
		return swarm.Tokens{}, fmt.Errorf("%w: the first manager of %s stores them when it has initialised the swarm; try again once it has booted", err, cluster)
	}
	return swarm.Tokens{Worker: t.Worker, Manager: t.Manager}, err
}

// UpdateCluster writes the new descriptor, a new launch template version
// (labels, agent settings, AWS settings) and the group's size. Managers
// are added one group resize at a time and join by their user data;
// lowering manager_count is refused, since the provider cannot demote a
// manager it does not reach and quorum must never be at risk.
func (p *Platform) UpdateCluster(ctx context.Context, c policy.Cluster) (platform.ClusterStatus, error) {
	var st platform.ClusterStatus
	if err := c.Validate(); err != nil {
		return st, err
	}
	s, err := p.store(c.Name)
	if err != nil {
		return st, err
	}
	old, err := s.Descriptor(ctx)
	if err != nil {
		return st, err
	}
	if c.ManagerCount < old.ManagerCount {
		return st, fmt.Errorf("manager_count: lowering it from %d to %d is not supported on aws: the managers' engines are not reachable from Terraform to demote one safely; replace the cluster, or demote and remove managers by hand and then import", old.ManagerCount, c.ManagerCount)
	}
	c.CreatedAt = old.CreatedAt
	if err := s.PutDescriptor(ctx, c); err != nil {
		return st, err
	}
	if err := p.ensureAgentToken(ctx, s, c); err != nil {
		return st, err
	}
	if err := p.putGroup(ctx, c, managerPool(c), true); err != nil {
		return st, err
	}
	if err := p.waitInService(ctx, GroupName(c.Name, policy.ManagerPoolName), int(c.ManagerCount)); err != nil {
		return st, err
	}
	// Waited for whenever the store has not seen the trigger, not only
	// when it changed: an apply that timed out already wrote it to the
	// descriptor, and the next apply must still wait for the agent.
	if c.JoinTokenRotation != "" {
		if err := p.waitTokensRotated(ctx, s, c.JoinTokenRotation); err != nil {
			return st, err
		}
	}
	_, st, err = p.ReadCluster(ctx, c.Name)
	return st, err
}

// waitTokensRotated waits until the leading agent has rotated the join
// tokens for trigger and stored them (Terraform does not reach the
// engines on aws; the agent reads the new trigger from the descriptor).
func (p *Platform) waitTokensRotated(ctx context.Context, s *Store, trigger string) error {
	for {
		done, err := s.TokensRotatedFor(ctx)
		if err == nil && done == trigger {
			return nil
		}
		select {
		case <-ctx.Done():
			why := "the store still names an earlier rotation"
			if err != nil {
				why = err.Error()
			}
			return fmt.Errorf("join_token_rotation: the agent on the leading manager did not rotate the join tokens for %q before the update's timeout (%s): "+
				"check that it runs and leads (`autarky-agent status` on a manager, `journalctl -u autarky-agent`), then apply again", trigger, why)
		case <-time.After(p.poll()):
		}
	}
}

// DeleteCluster deletes every pool's group and launch template, the
// managers' last, then every parameter of the cluster. What is already
// gone is not an error.
func (p *Platform) DeleteCluster(ctx context.Context, name string) error {
	s, err := p.store(name)
	if err != nil {
		return err
	}
	pools, err := s.Pools(ctx)
	if err != nil {
		return err
	}
	for _, pool := range pools {
		if err := p.deleteGroup(ctx, name, pool.Name); err != nil {
			return err
		}
	}
	if err := p.deleteGroup(ctx, name, policy.ManagerPoolName); err != nil {
		return err
	}
	p.progress("deleting the cluster's SSM parameters", "cluster", name, "path", s.Path())
	return s.Delete(ctx)
}

// CreatePool writes the pool's descriptor, launch template and group. With
// wait > 0 it returns once desired_size instances are in service.
func (p *Platform) CreatePool(ctx context.Context, pool policy.Pool, wait time.Duration) (st platform.PoolStatus, err error) {
	if err := pool.Validate(); err != nil {
		return st, err
	}
	s, err := p.store(pool.Cluster)
	if err != nil {
		return st, err
	}
	c, err := s.Descriptor(ctx)
	if err != nil {
		return st, fmt.Errorf("cluster %s of node pool %s: %w", pool.Cluster, pool.ID(), err)
	}
	if _, err := s.GetPool(ctx, pool.Name); err == nil {
		return st, fmt.Errorf("%w: cluster %s already has a node pool named %q: choose another name, or import it with `terraform import <address> %s`", platform.ErrExists, pool.Cluster, pool.Name, pool.ID())
	} else if !errors.Is(err, platform.ErrNotFound) {
		return st, err
	}
	if pool.CreatedAt.IsZero() {
		pool.CreatedAt = time.Now().UTC()
	}
	defer func() {
		if err != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
			defer cancel()
			if derr := p.DeletePool(cctx, pool.Cluster, pool.Name); derr != nil {
				err = fmt.Errorf("%w (and cleaning up failed: %v)", err, derr)
			}
		}
	}()
	if err := s.PutPool(ctx, pool); err != nil {
		return st, err
	}
	if err := p.putGroup(ctx, c, pool, false); err != nil {
		return st, err
	}
	if wait > 0 {
		wctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		if err := p.waitInService(wctx, GroupName(pool.Cluster, pool.Name), int(pool.DesiredSize)); err != nil {
			return st, fmt.Errorf("node pool %s: %w (wait_for_capacity_timeout %s)", pool.ID(), err, wait)
		}
	}
	_, st, err = p.ReadPool(ctx, pool.Cluster, pool.Name)
	return st, err
}

// ReadPool reads the pool's descriptor and its group: the sizes drift with
// the group's (minimum, maximum less the surge room, desired capacity).
func (p *Platform) ReadPool(ctx context.Context, cluster, name string) (policy.Pool, platform.PoolStatus, error) {
	var st platform.PoolStatus
	s, err := p.store(cluster)
	if err != nil {
		return policy.Pool{}, st, err
	}
	pool, err := s.GetPool(ctx, name)
	if err != nil {
		return pool, st, err
	}
	cl, err := p.reader(cluster)
	if err != nil {
		return pool, st, err
	}
	g, err := cl.group(ctx, name)
	if err != nil {
		return pool, st, err
	}
	pool.MinSize, pool.MaxSize, pool.DesiredSize = int64(g.Min), int64(g.Max-surge), int64(g.Desired)
	if pool.MaxSize < pool.MinSize {
		pool.MaxSize = int64(g.Max)
	}
	insts, err := cl.Instances(ctx)
	if err != nil {
		return pool, st, err
	}
	for _, in := range insts {
		if in.Pool == name && in.Running {
			st.CurrentSize++
			st.Instances = append(st.Instances, in)
		}
	}
	return pool, st, nil
}

// UpdatePool writes the new descriptor, a new launch template version and
// the group's sizes. While the agent owns the size (a scaling policy
// exists), the group's desired capacity is left as the agent set it,
// clamped into the new bounds.
func (p *Platform) UpdatePool(ctx context.Context, pool policy.Pool, wait time.Duration) (policy.Pool, platform.PoolStatus, error) {
	var st platform.PoolStatus
	if err := pool.Validate(); err != nil {
		return pool, st, err
	}
	s, err := p.store(pool.Cluster)
	if err != nil {
		return pool, st, err
	}
	c, err := s.Descriptor(ctx)
	if err != nil {
		return pool, st, err
	}
	old, err := s.GetPool(ctx, pool.Name)
	if err != nil {
		return pool, st, err
	}
	pool.CreatedAt = old.CreatedAt
	if pool.SizeOwner == policy.SizeOwnerAgent {
		pool.DesiredSize = min(max(old.DesiredSize, pool.MinSize), pool.MaxSize)
	}
	if err := s.PutPool(ctx, pool); err != nil {
		return pool, st, err
	}
	if err := p.putGroup(ctx, c, pool, true); err != nil {
		return pool, st, err
	}
	if wait > 0 {
		wctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		if err := p.waitInService(wctx, GroupName(pool.Cluster, pool.Name), int(pool.DesiredSize)); err != nil {
			return pool, st, fmt.Errorf("node pool %s: %w (wait_for_capacity_timeout %s)", pool.ID(), err, wait)
		}
	}
	_, st, err = p.ReadPool(ctx, pool.Cluster, pool.Name)
	return pool, st, err
}

// DeletePool marks the pool as being deleted (so the agent leaves it
// alone), deletes its group and launch template, then its parameters.
func (p *Platform) DeletePool(ctx context.Context, cluster, name string) error {
	s, err := p.store(cluster)
	if err != nil {
		return err
	}
	if pool, err := s.GetPool(ctx, name); err == nil {
		pool.Deleting = true
		if err := s.PutPool(ctx, pool); err != nil {
			return err
		}
	} else if !errors.Is(err, platform.ErrNotFound) {
		return err
	}
	if err := p.deleteGroup(ctx, cluster, name); err != nil {
		return err
	}
	id := policy.PoolID(cluster, name)
	for _, del := range []func() error{
		func() error { return s.DeleteHealingPolicy(ctx, id) },
		func() error { return s.DeleteScalingPolicy(ctx, id) },
		func() error { return s.DeletePool(ctx, name) },
	} {
		if err := del(); err != nil && !errors.Is(err, platform.ErrNotFound) {
			return err
		}
	}
	return nil
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
func (p *Platform) launchTemplateData(c policy.Cluster, pool policy.Pool) (*ec2types.RequestLaunchTemplateData, error) {
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

// putGroup creates (update false) or updates a pool's launch template and
// group. An update adds a launch template version; the group launches
// from $Latest, so new instances boot with it and running ones are left
// alone.
func (p *Platform) putGroup(ctx context.Context, c policy.Cluster, pool policy.Pool, update bool) error {
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
		p.progress("creating launch template", "name", name)
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
		p.progress("adding a launch template version", "name", name)
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
	groups, err := p.groups().DescribeGroups(ctx, []string{name})
	if err != nil {
		return err
	}
	g, found := groups[name]
	if !found {
		p.progress("creating Auto Scaling group", "name", name, "desired", pool.DesiredSize, "min", pool.MinSize, "max", pool.MaxSize)
		_, err := p.clients.AutoScaling.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{
			AutoScalingGroupName:             awsv2.String(name),
			LaunchTemplate:                   ltSpec,
			MinSize:                          awsv2.Int32(int32(pool.MinSize)),
			MaxSize:                          awsv2.Int32(int32(pool.MaxSize + surge)),
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
	p.progress("updating Auto Scaling group", "name", name, "desired", pool.DesiredSize, "min", pool.MinSize, "max", pool.MaxSize)
	if _, err := p.clients.AutoScaling.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{
		AutoScalingGroupName: awsv2.String(name),
		LaunchTemplate:       ltSpec,
		MinSize:              awsv2.Int32(int32(pool.MinSize)),
		MaxSize:              awsv2.Int32(int32(pool.MaxSize + surge)),
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
func (p *Platform) latestVersionDescription(ctx context.Context, name string) (string, bool, error) {
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

// deleteGroup force-deletes a pool's group (terminating its instances),
// waits until AWS has let it go, then deletes its launch template.
func (p *Platform) deleteGroup(ctx context.Context, cluster, pool string) error {
	name := GroupName(cluster, pool)
	groups := p.groups()
	found, err := groups.DescribeGroups(ctx, []string{name})
	if err != nil {
		return err
	}
	if _, ok := found[name]; ok {
		p.progress("deleting Auto Scaling group and its instances", "name", name)
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

// waitInService waits until group has want instances in service.
func (p *Platform) waitInService(ctx context.Context, group string, want int) error {
	groups := p.groups()
	last := -1
	err := platform.WaitFor(ctx, p.poll(), func() (bool, error) {
		found, err := groups.DescribeGroups(ctx, []string{group})
		if err != nil {
			return false, err
		}
		g, ok := found[group]
		if !ok {
			return false, fmt.Errorf("Auto Scaling group %s: %w", group, platform.ErrNotFound)
		}
		n := 0
		for _, in := range g.Instances {
			if in.LifecycleState == string(astypes.LifecycleStateInService) {
				n++
			}
		}
		if n != last {
			p.progress("instances in service", "group", group, "in_service", n, "want", want)
			last = n
		}
		return n >= want, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for %d instances of %s to be in service (%d are): %w", want, group, max(last, 0), err)
	}
	return nil
}

// storeOfPool opens the store of the cluster a pool id names.
func (p *Platform) storeOfPool(poolID string) (*Store, error) {
	cluster, _, err := policy.SplitPoolID(poolID)
	if err != nil {
		return nil, err
	}
	return p.store(cluster)
}

// inStore runs f on the store of the cluster poolID names.
func inStore[T any](p *Platform, poolID string, f func(*Store) (T, error)) (T, error) {
	s, err := p.storeOfPool(poolID)
	if err != nil {
		var zero T
		return zero, err
	}
	return f(s)
}

// PutHealingPolicy writes a healing policy to its cluster's store.
func (p *Platform) PutHealingPolicy(ctx context.Context, h policy.Healing) error {
	_, err := inStore(p, h.PoolID, func(s *Store) (any, error) { return nil, s.PutHealingPolicy(ctx, h) })
	return err
}

// GetHealingPolicy reads a pool's healing policy.
func (p *Platform) GetHealingPolicy(ctx context.Context, poolID string) (policy.Healing, error) {
	return inStore(p, poolID, func(s *Store) (policy.Healing, error) { return s.GetHealingPolicy(ctx, poolID) })
}

// DeleteHealingPolicy removes a pool's healing policy.
func (p *Platform) DeleteHealingPolicy(ctx context.Context, poolID string) error {
	_, err := inStore(p, poolID, func(s *Store) (any, error) { return nil, s.DeleteHealingPolicy(ctx, poolID) })
	return err
}

// PutScalingPolicy writes a scaling policy to its cluster's store.
func (p *Platform) PutScalingPolicy(ctx context.Context, sp policy.Scaling) error {
	_, err := inStore(p, sp.PoolID, func(s *Store) (any, error) { return nil, s.PutScalingPolicy(ctx, sp) })
	return err
}

// GetScalingPolicy reads a pool's scaling policy.
func (p *Platform) GetScalingPolicy(ctx context.Context, poolID string) (policy.Scaling, error) {
	return inStore(p, poolID, func(s *Store) (policy.Scaling, error) { return s.GetScalingPolicy(ctx, poolID) })
}

// DeleteScalingPolicy removes a pool's scaling policy.
func (p *Platform) DeleteScalingPolicy(ctx context.Context, poolID string) error {
	_, err := inStore(p, poolID, func(s *Store) (any, error) { return nil, s.DeleteScalingPolicy(ctx, poolID) })
	return err
}

// HasCluster reports whether the store has cluster's descriptor.
func (p *Platform) HasCluster(ctx context.Context, cluster string) (bool, error) {
	s, err := p.store(cluster)
	if err != nil {
		return false, err
	}
	_, err = s.Descriptor(ctx)
	if errors.Is(err, platform.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Where says where the platform keeps clusters, for messages.
func (p *Platform) Where() string {
	return fmt.Sprintf("SSM Parameter Store (%s, region %s)", PathPrefix, p.region)
}

// WithProgress is a copy of p whose progress goes to progress.
func (p *Platform) WithProgress(progress platform.Progress) *Platform {
	q := *p
	q.progress = progress
	return &q
}
