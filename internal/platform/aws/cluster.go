package aws

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/swarm"
)

var (
	_ platform.GroupCluster = (*Cluster)(nil)
	_ platform.TokenStore   = (*Cluster)(nil)
)

// transientError marks an AWS error that only means "not now" (IsTransient)
// so the agent, which knows no AWS error codes, reads it as
// platform.Transient.
type transientError struct{ error }

func (e transientError) Transient() bool { return true }
func (e transientError) Unwrap() error   { return e.error }

// mark wraps a transient err in transientError.
func mark(err error) error {
	if err != nil && IsTransient(err) && !platform.IsTransient(err) {
		return transientError{err}
	}
	return err
}

// MaxInstancesPerDescribe is the most instance ids one DescribeInstances
// call filters on (the limit of values in one EC2 filter).
const MaxInstancesPerDescribe = 200

// GroupName is the naming rule for a pool's Auto Scaling Group when the
// cluster is not told otherwise: "<cluster>-<pool>", so the managers of
// cluster "prod" live in the group "prod-managers" and its pool "web" in
// "prod-web".
func GroupName(cluster, pool string) string { return cluster + "-" + pool }

// Cluster is one cluster on AWS as the agent sees it (platform.Cluster):
// the store is SSM Parameter Store (Store), every pool, the manager pool
// included, is one Auto Scaling Group (NodeGroups), and instance details
// the groups do not have come from EC2.
type Cluster struct {
	name   string
	store  *Store
	groups *NodeGroups
	ec2    *ec2.Client
	// asgs maps a pool name to its group's name, where the caller named
	// one; any other pool's group is GroupName(cluster, pool).
	asgs map[string]string
}

// NewCluster opens cluster name on c (from NewClients). asgs maps pool
// names (policy.ManagerPoolName for the managers) to the names of their
// Auto Scaling Groups; a pool absent from asgs, or a nil asgs, follows the
// naming rule GroupName: "<cluster>-<pool>". Two pools cannot share a
// group.
func NewCluster(c *Clients, name string, asgs map[string]string) (*Cluster, error) {
	store, err := NewStore(c.SSM, name)
	if err != nil {
		return nil, err
	}
	cl := &Cluster{name: name, store: store, groups: NewNodeGroups(c.AutoScaling), ec2: c.EC2, asgs: make(map[string]string, len(asgs))}
	owner := make(map[string]string, len(asgs))
	for pool, asg := range asgs {
		if err := policy.ValidateName(pool); err != nil {
			return nil, fmt.Errorf("pool name %q: %w", pool, err)
		}
		if asg == "" {
			asg = GroupName(name, pool)
		}
		cl.asgs[pool] = asg
	}
	for pool := range cl.asgs {
		asg := cl.GroupOf(pool)
		if other, ok := owner[asg]; ok {
			return nil, fmt.Errorf("pools %q and %q of cluster %q both name the Auto Scaling group %s", other, pool, name, asg)
		}
		owner[asg] = pool
	}
	return cl, nil
}

// Name is the cluster's name.
func (c *Cluster) Name() string { return c.name }

// Store is the cluster's store in SSM Parameter Store.
func (c *Cluster) Store() *Store { return c.store }

// GroupOf is the name of pool's Auto Scaling Group.
func (c *Cluster) GroupOf(pool string) string {
	if asg, ok := c.asgs[pool]; ok {
		return asg
	}
	return GroupName(c.name, pool)
}

// Descriptor reads the cluster descriptor from the store.
func (c *Cluster) Descriptor(ctx context.Context) (policy.Cluster, error) {
	return c.store.Descriptor(ctx)
}

// Pools reads every worker pool descriptor from the store.
func (c *Cluster) Pools(ctx context.Context) ([]policy.Pool, error) { return c.store.Pools(ctx) }

// HealingPolicies reads every healing policy from the store.
func (c *Cluster) HealingPolicies(ctx context.Context) ([]policy.Healing, error) {
	return c.store.HealingPolicies(ctx)
}

// ScalingPolicies reads every scaling policy from the store.
func (c *Cluster) ScalingPolicies(ctx context.Context) ([]policy.Scaling, error) {
	return c.store.ScalingPolicies(ctx)
}

// LoadJournal reads the agent's journal from the store.
func (c *Cluster) LoadJournal(ctx context.Context, v any) (string, error) {
	return c.store.LoadJournal(ctx, v)
}

// SaveJournal replaces the agent's journal in the store.
func (c *Cluster) SaveJournal(ctx context.Context, v any, rev string) (string, error) {
	return c.store.SaveJournal(ctx, v, rev)
}

// TokensRotatedFor is platform.TokenStore's: read from SSM.
func (c *Cluster) TokensRotatedFor(ctx context.Context) (string, error) {
	return c.store.TokensRotatedFor(ctx)
}

// PutRotatedTokens is platform.TokenStore's: written to SSM.
func (c *Cluster) PutRotatedTokens(ctx context.Context, trigger string, t swarm.Tokens) error {
	return c.store.PutRotatedTokens(ctx, trigger, t)
}

// SetAsideJournal keeps an unreadable journal for a person.
func (c *Cluster) SetAsideJournal(ctx context.Context) (string, error) {
	return c.store.SetAsideJournal(ctx)
}

// poolNames lists the cluster's pools: the managers, every pool named in
// the constructor's map, and every worker pool in the store; sorted.
func (c *Cluster) poolNames(ctx context.Context) ([]string, error) {
	seen := map[string]bool{policy.ManagerPoolName: true}
	for pool := range c.asgs {
		seen[pool] = true
	}
	pools, err := c.store.Pools(ctx)
	if err != nil {
		return nil, err
	}
	for _, p := range pools {
		seen[p.Name] = true
	}
	out := make([]string, 0, len(seen))
	for pool := range seen {
		out = append(out, pool)
	}
	sort.Strings(out)
	return out, nil
}

// roleOf is the Swarm role of a pool's nodes.
func roleOf(pool string) string {
	if pool == policy.ManagerPoolName {
		return policy.RoleManager
	}
	return policy.RoleWorker
}

// running reports whether an Auto Scaling lifecycle state counts as a
// running instance: InService, or Pending in any form (Pending,
// Pending:Wait and Pending:Proceed while a launch lifecycle hook runs),
// since a launching instance is on its way to join. Everything else
// (Terminating*, Terminated, Standby, Detaching, Warmed:*, ...) is not.
func running(state string) bool {
	return state == string(astypes.LifecycleStateInService) || strings.HasPrefix(state, string(astypes.LifecycleStatePending))
}

// Instances lists every instance of every pool, managers included, sorted
// by pool then id. AWS calls, bounded by the number of pools, never by the
// number of instances per call:
//
//   - the store's pool listing (GetParametersByPath, one call per 10 pools);
//   - one DescribeGroups over every pool's group (one
//     DescribeAutoScalingGroups per 100 groups, plus progress checks of the
//     groups in transition only);
//   - one DescribeInstances per MaxInstancesPerDescribe instances, for the
//     launch times (CreatedAt) and private addresses (Addr).
//
// A pool whose group does not exist (yet, or any more) has no instances.
// An instance EC2 no longer knows keeps a zero CreatedAt.
func (c *Cluster) Instances(ctx context.Context) ([]platform.Instance, error) {
	out, err := c.instances(ctx)
	return out, mark(err)
}

func (c *Cluster) instances(ctx context.Context) ([]platform.Instance, error) {
	pools, err := c.poolNames(ctx)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(pools))
	for _, pool := range pools {
		names = append(names, c.GroupOf(pool))
	}
	groups, err := c.groups.DescribeGroups(ctx, names)
	if err != nil {
		return nil, err
	}
	var out []platform.Instance
	var ids []string
	for _, pool := range pools {
		g, ok := groups[c.GroupOf(pool)]
		if !ok {
			continue
		}
		for _, in := range g.Instances {
			out = append(out, platform.Instance{
				ID:      in.ID,
				Cluster: c.name,
				Pool:    pool,
				Role:    roleOf(pool),
				Running: running(in.LifecycleState),
			})
			ids = append(ids, in.ID)
		}
	}
	details, err := c.describeInstances(ctx, ids)
	if err != nil {
		return nil, err
	}
	for i := range out {
		if d, ok := details[out[i].ID]; ok {
			out[i].CreatedAt = d.launched
			out[i].Addr = d.addr
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Pool != out[j].Pool {
			return out[i].Pool < out[j].Pool
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

type instanceDetails struct {
	launched time.Time
	addr     string
}

// describeInstances reads the launch time and private address of ids from
// EC2, MaxInstancesPerDescribe ids per call. It filters on instance-id
// rather than naming InstanceIds, so an instance that is already gone is
// absent from the answer instead of failing the whole call.
func (c *Cluster) describeInstances(ctx context.Context, ids []string) (map[string]instanceDetails, error) {
	out := make(map[string]instanceDetails, len(ids))
	for start := 0; start < len(ids); start += MaxInstancesPerDescribe {
		batch := ids[start:min(start+MaxInstancesPerDescribe, len(ids))]
		pages := ec2.NewDescribeInstancesPaginator(c.ec2, &ec2.DescribeInstancesInput{
			Filters:    []ec2types.Filter{{Name: awsv2.String("instance-id"), Values: batch}},
			MaxResults: awsv2.Int32(1000),
		})
		for pages.HasMorePages() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("describe EC2 instances: %w", err)
			}
			for _, r := range page.Reservations {
				for _, in := range r.Instances {
					out[awsv2.ToString(in.InstanceId)] = instanceDetails{
						launched: awsv2.ToTime(in.LaunchTime),
						addr:     awsv2.ToString(in.PrivateIpAddress),
					}
				}
			}
		}
	}
	return out, nil
}

// group describes pool's Auto Scaling Group and checks whether Auto
// Scaling is busy with it (CheckProgress); platform.ErrNotFound when the
// group does not exist.
func (c *Cluster) group(ctx context.Context, pool string) (*Group, error) {
	name := c.GroupOf(pool)
	groups, err := c.groups.DescribeGroups(ctx, []string{name})
	if err != nil {
		return nil, err
	}
	g, ok := groups[name]
	if !ok {
		return nil, fmt.Errorf("Auto Scaling group %s of node pool %s: %w", name, policy.PoolID(c.name, pool), platform.ErrNotFound)
	}
	// A failed check is recorded in g and makes Busy report it.
	if !c.groups.NoProgress {
		_ = c.groups.CheckProgress(ctx, g)
	}
	return g, nil
}

// startInstance grows pool's Auto Scaling Group by one: SetDesiredCapacity
// to the current desired capacity plus one, once CheckProgress says Auto
// Scaling is not busy with the group. A busy group returns the
// *BusyError (transient: IsTransient) and changes nothing; a group already
// at its maximum size is an error.
//
// Auto Scaling launches asynchronously, so the instance does not exist
// yet when StartInstance returns: the returned Instance has the cluster,
// pool and role but an EMPTY ID. The agent must not wait for that id; it
// adopts the new instance when it shows up in Instances (a Pending or
// InService instance of the pool it did not know before), and the
// instance joins the swarm by itself through its user data.
func (c *Cluster) startInstance(ctx context.Context, pool policy.Pool) (platform.Instance, error) {
	g, err := c.group(ctx, pool.Name)
	if err != nil {
		return platform.Instance{}, err
	}
	if err := g.Busy(Grow, ""); err != nil {
		return platform.Instance{}, err
	}
	if g.Desired >= g.Max {
		return platform.Instance{}, fmt.Errorf("node pool %s: Auto Scaling group %s is at its maximum size %d", policy.PoolID(c.name, pool.Name), g.Name, g.Max)
	}
	if err := c.groups.SetDesiredCapacity(ctx, g.Name, g.Desired+1); err != nil {
		return platform.Instance{}, err
	}
	return platform.Instance{Cluster: c.name, Pool: pool.Name, Role: roleOf(pool.Name), Running: true}, nil
}

// StartInstance: see startInstance; transient errors are marked.
func (c *Cluster) StartInstance(ctx context.Context, pool policy.Pool) (platform.Instance, error) {
	in, err := c.startInstance(ctx, pool)
	return in, mark(err)
}

// TerminateInstance terminates an instance without decrementing its
// group's desired capacity, so Auto Scaling launches a replacement (heal).
// An instance that is already gone, or no longer in a group, is not an
// error. It does not check whether the group is busy: healing a failed
// instance should not wait for Auto Scaling's own work.
func (c *Cluster) TerminateInstance(ctx context.Context, id string) error {
	return mark(ignoreGone(c.groups.TerminateInstance(ctx, id, false)))
}

// TerminateAndShrink terminates an instance the agent chose (and drained)
// and decrements its group's desired capacity by one (scale in), so Auto
// Scaling does not replace it. An instance that is already gone is not an
// error.
func (c *Cluster) TerminateAndShrink(ctx context.Context, id string) error {
	return mark(ignoreGone(c.groups.TerminateInstance(ctx, id, true)))
}

// CheckScaleIn tells whether the agent may drain and scale in instance id
// of pool now: nil, or the transient *BusyError (protected from scale-in,
// Terminate suspended, a refresh or an activity in progress).
func (c *Cluster) CheckScaleIn(ctx context.Context, pool, id string) error {
	g, err := c.group(ctx, pool)
	if err != nil {
		return mark(err)
	}
	return g.Busy(ScaleIn, id)
}

func ignoreGone(err error) error {
	if errors.Is(err, platform.ErrNotFound) {
		return nil
	}
	return err
}

// SetDesiredSize gives a worker pool size instances and records it in the
// stored pool descriptor. Growing sets the group's desired capacity
// (absolute, so a repeated call resizes once). Shrinking only records the
// size: the agent terminates the instances it chose and drained with
// TerminateAndShrink, one by one, so Auto Scaling never picks a busy one.
// A size outside the descriptor's [min, max] is refused before any
// change, and so is the manager pool, which the cluster's manager_count
// owns. A group busy with its own work (a refresh, suspended launches, an
// activity in progress) is not grown: the transient *BusyError says wait.
func (c *Cluster) SetDesiredSize(ctx context.Context, pool string, size int64) error {
	if pool == policy.ManagerPoolName {
		return fmt.Errorf("node pool %s is the manager pool: its size is the cluster's manager_count", policy.PoolID(c.name, pool))
	}
	d, err := c.store.GetPool(ctx, pool)
	if err != nil {
		return err
	}
	if size < d.MinSize || size > d.MaxSize {
		return fmt.Errorf("size %d of pool %s is outside [%d, %d]", size, d.ID(), d.MinSize, d.MaxSize)
	}
	g, err := c.group(ctx, pool)
	if err != nil {
		return mark(err)
	}
	if int32(size) > g.Desired {
		if err := g.Busy(Grow, ""); err != nil {
			return err
		}
		if err := c.groups.SetDesiredCapacity(ctx, g.Name, int32(size)); err != nil {
			return mark(err)
		}
	}
	if d.DesiredSize == size {
		return nil
	}
	d.DesiredSize = size
	return c.store.PutPool(ctx, d)
}
