package group

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/swarm"
)

// Cloud is what a cloud platform hands the shared provisioning.
type Cloud struct {
	// Platform is the policy's platform name ("aws", "gcp").
	Platform string
	// Where says where the platform keeps clusters, for messages.
	Where string
	// Groups reads and changes the cloud's groups.
	Groups Groups
	// Store opens a cluster's store.
	Store func(cluster string) (*Store, error)
}

// Platform is what the provider does on a cloud (a cloud's
// platform.Backend, with the cloud's WithProgress):
// every pool, the managers included, is one group with its template, and
// the descriptors live in the cluster's store. A group's maximum is the
// pool's max_size plus Surge (manager_count plus Surge for the managers),
// the room one replacement needs to join before the member it replaces
// leaves. The agent keeps the pool inside [min_size, max_size].
type Platform struct {
	cloud    Cloud
	progress platform.Progress
	// Poll is how often waits ask the cloud again; zero means 2s.
	Poll time.Duration
}

// NewPlatform provisions on cloud; progress receives what it does.
func NewPlatform(cloud Cloud, progress platform.Progress) *Platform {
	if progress == nil {
		progress = platform.NoProgress
	}
	return &Platform{cloud: cloud, progress: progress}
}

// PollInterval is how often waits ask the cloud again.
func (p *Platform) PollInterval() time.Duration {
	if p.Poll > 0 {
		return p.Poll
	}
	return 2 * time.Second
}

// Progress is where the platform reports what it does.
func (p *Platform) Progress() platform.Progress { return p.progress }

// Where says where the platform keeps clusters, for messages.
func (p *Platform) Where() string { return p.cloud.Where }

// Name is the cloud's platform name.
func (p *Platform) Name() string { return p.cloud.Platform }

// Fill leaves c as it is: a cloud whose provider settings go into the
// descriptor says so with its own Fill.
func (p *Platform) Fill(c policy.Cluster) policy.Cluster { return c }

// Preflight checks nothing: a cloud that can check its settings before a
// cluster exists says so with its own Preflight.
func (p *Platform) Preflight(context.Context, string) error { return nil }

// Cluster opens the agent's view of cluster name.
func (p *Platform) Cluster(name string) (*Cluster, error) {
	s, err := p.cloud.Store(name)
	if err != nil {
		return nil, err
	}
	return NewCluster(s, p.cloud.Groups, nil)
}

// describe reads one group without progress checks; nil when it does not
// exist.
func (p *Platform) describe(ctx context.Context, name string) (*Group, error) {
	found, err := p.cloud.Groups.Describe(ctx, []string{name}, false)
	if err != nil {
		return nil, err
	}
	return found[name], nil
}

// CreateCluster writes the descriptor to the store, then the managers'
// group, and waits until manager_count members are in service. The first
// manager's boot script initialises the swarm and writes the join tokens
// to the store. On failure nothing of the cluster is left.
func (p *Platform) CreateCluster(ctx context.Context, c policy.Cluster) (st platform.ClusterStatus, err error) {
	if err := c.Validate(); err != nil {
		return st, err
	}
	if c.Platform != p.cloud.Platform {
		return st, fmt.Errorf("cluster %s is on platform %q, not %s", c.Name, c.Platform, p.cloud.Platform)
	}
	s, err := p.cloud.Store(c.Name)
	if err != nil {
		return st, err
	}
	if _, err := s.Descriptor(ctx); err == nil {
		gone, gerr := p.managersGone(ctx, c.Name)
		if gerr != nil {
			return st, gerr
		}
		if !gone {
			return st, fmt.Errorf("%w: a cluster named %q already has a store at %s: choose another name, or import it with `terraform import <address> %s` (OpenTofu: `tofu import`)", platform.ErrExists, c.Name, s.Where(), c.Name)
		}
		// The store of a lost cluster (its managers' group is gone): its
		// tokens and init lock name a swarm that no longer exists, so the
		// new first manager must initialise a new one.
		p.progress("the cluster's managers' group is gone: creating it anew over its store", "cluster", c.Name)
		if err := s.DeleteTokens(ctx); err != nil {
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
	if err := p.cloud.Groups.Put(ctx, c, ManagerPool(c), false); err != nil {
		return st, err
	}
	p.progress("waiting for the managers to be in service", "cluster", c.Name, "count", c.ManagerCount)
	if err := p.waitInService(ctx, p.cloud.Groups.Name(c.Name, policy.ManagerPoolName), int(c.ManagerCount)); err != nil {
		return st, err
	}
	_, st, err = p.ReadCluster(ctx, c.Name)
	return st, err
}

// ensureAgentToken creates the agents' bearer token before any manager
// that runs the agent boots, since its boot script reads it; a cluster
// whose agent is off needs none. Only where it is ever reaches Terraform,
// never its value.
func (p *Platform) ensureAgentToken(ctx context.Context, s *Store, c policy.Cluster) error {
	if c.Agent == nil || !c.Agent.Enabled {
		return nil
	}
	created, err := s.EnsureAlertToken(ctx)
	if created {
		p.progress("created the agents' bearer token", "cluster", c.Name, "key", KeyAlertToken, "in", s.Where())
	}
	return err
}

// managersGone reports whether the managers' group of cluster is gone.
func (p *Platform) managersGone(ctx context.Context, cluster string) (bool, error) {
	g, err := p.describe(ctx, p.cloud.Groups.Name(cluster, policy.ManagerPoolName))
	return g == nil, err
}

// ManagerPool is the cluster's manager pool as a pool descriptor.
func ManagerPool(c policy.Cluster) policy.Pool {
	return policy.Pool{Cluster: c.Name, Name: policy.ManagerPoolName, Role: policy.RoleManager,
		MinSize: c.ManagerCount, MaxSize: c.ManagerCount, DesiredSize: c.ManagerCount, Labels: c.Labels}
}

// ReadCluster reads the descriptor from the store and the managers'
// group: manager_count drifts with the group's minimum size where the
// cloud keeps one. The join tokens stay in the store: Terraform's state
// never holds them.
func (p *Platform) ReadCluster(ctx context.Context, name string) (policy.Cluster, platform.ClusterStatus, error) {
	var st platform.ClusterStatus
	s, err := p.cloud.Store(name)
	if err != nil {
		return policy.Cluster{}, st, err
	}
	c, err := s.Descriptor(ctx)
	if err != nil {
		return c, st, err
	}
	g, err := p.describe(ctx, p.cloud.Groups.Name(name, policy.ManagerPoolName))
	if err != nil {
		return c, st, err
	}
	if g == nil {
		st.Lost = true // the managers' group is gone, and the swarm with it
		return c, st, nil
	}
	if g.Bounded && g.Min != int(c.ManagerCount) && policy.ValidateManagerCount(int64(g.Min)) == nil {
		c.ManagerCount = int64(g.Min)
	}
	// The managers' addresses: the details of this group only.
	if err := p.cloud.Groups.Details(ctx, []*Group{g}); err != nil {
		return c, st, err
	}
	for _, m := range g.Members {
		if !m.Running {
			continue
		}
		st.LiveManagers++
		if m.Addr != "" {
			st.ManagerAddresses = append(st.ManagerAddresses, m.Addr+":2377")
		}
	}
	sort.Strings(st.ManagerAddresses)
	return c, st, nil
}

// JoinTokens reads the join tokens from the store, where the first
// manager stored them; an error naming what to wait for when it has not
// yet.
func (p *Platform) JoinTokens(ctx context.Context, cluster string) (swarm.Tokens, error) {
	s, err := p.cloud.Store(cluster)
	if err != nil {
		return swarm.Tokens{}, err
	}
	t, err := s.GetTokens(ctx)
	if errors.Is(err, platform.ErrNotFound) {
		return swarm.Tokens{}, fmt.Errorf("%w: the first manager of %s stores them when it has initialised the swarm; try again once it has booted", err, cluster)
	}
	return t, err
}

// UpdateCluster writes the new descriptor, the managers' template and
// group size. Managers are added one group resize at a time and join by
// their boot script; lowering manager_count is refused, since the
// provider cannot demote a manager it does not reach and quorum must
// never be at risk.
func (p *Platform) UpdateCluster(ctx context.Context, c policy.Cluster) (platform.ClusterStatus, error) {
	var st platform.ClusterStatus
	if err := c.Validate(); err != nil {
		return st, err
	}
	s, err := p.cloud.Store(c.Name)
	if err != nil {
		return st, err
	}
	old, err := s.Descriptor(ctx)
	if err != nil {
		return st, err
	}
	if c.ManagerCount < old.ManagerCount {
		return st, fmt.Errorf("manager_count: lowering it from %d to %d is not supported on %s: the managers' engines are not reachable from Terraform to demote one safely; replace the cluster, or demote and remove managers by hand and then import", old.ManagerCount, c.ManagerCount, p.cloud.Platform)
	}
	c.CreatedAt = old.CreatedAt
	if err := s.PutDescriptor(ctx, c); err != nil {
		return st, err
	}
	if err := p.ensureAgentToken(ctx, s, c); err != nil {
		return st, p.restoreDescriptor(ctx, s, old, err)
	}
	if err := p.cloud.Groups.Put(ctx, c, ManagerPool(c), true); err != nil {
		return st, p.restoreDescriptor(ctx, s, old, err)
	}
	if err := p.waitInService(ctx, p.cloud.Groups.Name(c.Name, policy.ManagerPoolName), int(c.ManagerCount)); err != nil {
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

// restoreDescriptor puts the cluster's previous descriptor back after an
// update failed on the way, so that the next plan shows the change again
// instead of reading it back as done.
func (p *Platform) restoreDescriptor(ctx context.Context, s *Store, old policy.Cluster, err error) error {
	if rerr := s.PutDescriptor(context.WithoutCancel(ctx), old); rerr != nil {
		return fmt.Errorf("%w (and putting the cluster's settings back failed: %v)", err, rerr)
	}
	return err
}

// waitTokensRotated waits until the leading agent has rotated the join
// tokens for trigger and stored them (Terraform does not reach the
// engines on a cloud; the agent reads the new trigger from the
// descriptor).
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
		case <-time.After(p.PollInterval()):
		}
	}
}

// DeleteCluster deletes every pool's group and template, the managers'
// last, then the cluster's store. What is already gone is not an error.
func (p *Platform) DeleteCluster(ctx context.Context, name string) error {
	s, err := p.cloud.Store(name)
	if err != nil {
		return err
	}
	pools, err := s.Pools(ctx)
	if err != nil {
		return err
	}
	for _, pool := range pools {
		if err := p.cloud.Groups.Delete(ctx, name, pool.Name); err != nil {
			return err
		}
	}
	if err := p.cloud.Groups.Delete(ctx, name, policy.ManagerPoolName); err != nil {
		return err
	}
	p.progress("deleting the cluster's store", "cluster", name, "where", s.Where())
	return s.Delete(ctx)
}

// CreatePool writes the pool's descriptor, template and group. With wait
// > 0 it returns once desired_size members are in service. On failure
// nothing of the pool is left.
func (p *Platform) CreatePool(ctx context.Context, pool policy.Pool, wait time.Duration) (st platform.PoolStatus, err error) {
	if err := pool.Validate(); err != nil {
		return st, err
	}
	s, err := p.cloud.Store(pool.Cluster)
	if err != nil {
		return st, err
	}
	c, err := s.Descriptor(ctx)
	if err != nil {
		return st, fmt.Errorf("cluster %s of node pool %s: %w", pool.Cluster, pool.ID(), err)
	}
	if _, err := s.GetPool(ctx, pool.Name); err == nil {
		return st, fmt.Errorf("%w: cluster %s already has a node pool named %q: choose another name, or import it with `terraform import <address> %s` (OpenTofu: `tofu import`)", platform.ErrExists, pool.Cluster, pool.Name, pool.ID())
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
	if err := p.cloud.Groups.Put(ctx, c, pool, false); err != nil {
		return st, err
	}
	if err := p.waitPool(ctx, pool, wait); err != nil {
		return st, err
	}
	_, st, err = p.ReadPool(ctx, pool.Cluster, pool.Name)
	return st, err
}

// waitPool waits up to wait (none when 0) for desired_size members of pool
// to be in service.
func (p *Platform) waitPool(ctx context.Context, pool policy.Pool, wait time.Duration) error {
	if wait <= 0 {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if err := p.waitInService(wctx, p.cloud.Groups.Name(pool.Cluster, pool.Name), int(pool.DesiredSize)); err != nil {
		return fmt.Errorf("node pool %s: %w (wait_for_capacity_timeout %s)", pool.ID(), err, wait)
	}
	return nil
}

// ReadPool reads the pool's descriptor and its group: the sizes drift with
// the group's (minimum, maximum less the surge room, where the cloud keeps
// them, and desired size).
func (p *Platform) ReadPool(ctx context.Context, cluster, name string) (policy.Pool, platform.PoolStatus, error) {
	var st platform.PoolStatus
	s, err := p.cloud.Store(cluster)
	if err != nil {
		return policy.Pool{}, st, err
	}
	pool, err := s.GetPool(ctx, name)
	if err != nil {
		return pool, st, err
	}
	cl, err := NewCluster(s, p.cloud.Groups, nil)
	if err != nil {
		return pool, st, err
	}
	g, err := cl.Group(ctx, name, false)
	if err != nil {
		return pool, st, err
	}
	// The pool's instances: the details of this group only.
	if err := p.cloud.Groups.Details(ctx, []*Group{g}); err != nil {
		return pool, st, err
	}
	if g.Bounded {
		pool.MinSize, pool.MaxSize = int64(g.Min), int64(g.Max-Surge)
		if pool.MaxSize < pool.MinSize {
			pool.MaxSize = int64(g.Max)
		}
	}
	pool.DesiredSize = int64(g.Desired)
	for _, m := range g.Members {
		if m.Running {
			st.CurrentSize++
			st.Instances = append(st.Instances, platform.Instance{ID: m.ID, Cluster: cluster, Pool: name, Role: roleOf(name),
				Addr: m.Addr, CreatedAt: m.CreatedAt, Running: true})
		}
	}
	return pool, st, nil
}

// UpdatePool writes the new descriptor, template and the group's sizes.
// While the agent owns the size (a scaling policy exists), the group's
// desired size is left as the agent set it, clamped into the new bounds.
func (p *Platform) UpdatePool(ctx context.Context, pool policy.Pool, wait time.Duration) (policy.Pool, platform.PoolStatus, error) {
	var st platform.PoolStatus
	if err := pool.Validate(); err != nil {
		return pool, st, err
	}
	s, err := p.cloud.Store(pool.Cluster)
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
	if err := p.cloud.Groups.Put(ctx, c, pool, true); err != nil {
		// The descriptor goes back to what the group still runs, so the
		// next plan shows the change again instead of reading it back as
		// done.
		if rerr := s.PutPool(context.WithoutCancel(ctx), old); rerr != nil {
			err = fmt.Errorf("%w (and putting the pool's settings back failed: %v)", err, rerr)
		}
		return pool, st, err
	}
	if err := p.waitPool(ctx, pool, wait); err != nil {
		return pool, st, err
	}
	_, st, err = p.ReadPool(ctx, pool.Cluster, pool.Name)
	return pool, st, err
}

// DeletePool marks the pool as being deleted (so the agent leaves it
// alone), deletes its group and template, then its descriptor and
// policies.
func (p *Platform) DeletePool(ctx context.Context, cluster, name string) error {
	s, err := p.cloud.Store(cluster)
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
	if err := p.cloud.Groups.Delete(ctx, cluster, name); err != nil {
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

// waitInService waits until group has want members in service.
func (p *Platform) waitInService(ctx context.Context, group string, want int) error {
	last := -1
	err := platform.WaitFor(ctx, p.PollInterval(), func() (bool, error) {
		g, err := p.describe(ctx, group)
		if err != nil {
			return false, err
		}
		if g == nil {
			return false, fmt.Errorf("%s %s: %w", p.cloud.Groups.Kind(), group, platform.ErrNotFound)
		}
		n := 0
		for _, m := range g.Members {
			if m.Ready {
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

// inStore runs f on the store of the cluster poolID names.
func inStore[T any](p *Platform, poolID string, f func(*Store) (T, error)) (T, error) {
	var zero T
	cluster, _, err := policy.SplitPoolID(poolID)
	if err != nil {
		return zero, err
	}
	s, err := p.cloud.Store(cluster)
	if err != nil {
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

// PutServiceScalingPolicy writes a service scaling policy to its
// cluster's store.
func (p *Platform) PutServiceScalingPolicy(ctx context.Context, sp policy.ServiceScaling) error {
	s, err := p.cloud.Store(sp.ClusterID)
	if err != nil {
		return err
	}
	return s.PutServiceScalingPolicy(ctx, sp)
}

// GetServiceScalingPolicy reads a service scaling policy by its id.
func (p *Platform) GetServiceScalingPolicy(ctx context.Context, id string) (policy.ServiceScaling, error) {
	cluster, service, err := policy.SplitServiceScalingID(id)
	if err != nil {
		return policy.ServiceScaling{}, err
	}
	s, err := p.cloud.Store(cluster)
	if err != nil {
		return policy.ServiceScaling{}, err
	}
	return s.GetServiceScalingPolicy(ctx, service)
}

// DeleteServiceScalingPolicy removes a service scaling policy by its id.
func (p *Platform) DeleteServiceScalingPolicy(ctx context.Context, id string) error {
	cluster, service, err := policy.SplitServiceScalingID(id)
	if err != nil {
		return err
	}
	s, err := p.cloud.Store(cluster)
	if err != nil {
		return err
	}
	return s.DeleteServiceScalingPolicy(ctx, service)
}

// HasCluster reports whether the store has cluster's descriptor.
func (p *Platform) HasCluster(ctx context.Context, cluster string) (bool, error) {
	s, err := p.cloud.Store(cluster)
	if err != nil {
		return false, err
	}
	_, err = s.Descriptor(ctx)
	if errors.Is(err, platform.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}
