package group

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/swarm"
)

var (
	_ platform.GroupCluster = (*Cluster)(nil)
	_ platform.TokenStore   = (*Cluster)(nil)
)

// Cluster is one cluster on a cloud as the agent sees it
// (platform.GroupCluster): the store is a Store, and every pool, the
// managers included, is one group of Groups. It is the same on every
// cloud:
//
//   - growing sets the group's desired size, absolutely, and only when the
//     cloud is not busy with the group (Group.Busy);
//   - shrinking only records the size; each member the agent chose and
//     drained leaves with Remove(shrink), so the cloud never picks a busy
//     node itself;
//   - healing removes a member without shrinking, so the group launches
//     the replacement;
//   - sizes stay inside the pool descriptor's [min, max], and the manager
//     pool's size is the cluster's manager_count.
type Cluster struct {
	name   string
	store  *Store
	groups Groups
	// names maps a pool to its group's name where the caller named one;
	// any other pool's group is groups.Name(cluster, pool).
	names map[string]string

	// cache holds the configuration read at the store's generation
	// (cache.go).
	cache configCache

	mu sync.Mutex
	// owner maps a member id to its group, from the last listing: Remove
	// needs the group on clouds whose API names it (a MIG).
	owner map[string]string
}

// NewCluster opens cluster store.Name() on groups. names maps pool names
// (policy.ManagerPoolName for the managers) to the names of their groups;
// a pool absent from names follows groups.Name. Two pools cannot share a
// group.
func NewCluster(store *Store, groups Groups, names map[string]string) (*Cluster, error) {
	c := &Cluster{name: store.Name(), store: store, groups: groups, names: make(map[string]string, len(names)), owner: map[string]string{}}
	owner := make(map[string]string, len(names))
	for pool, g := range names {
		if err := policy.ValidateName(pool); err != nil {
			return nil, fmt.Errorf("pool name %q: %w", pool, err)
		}
		if g == "" {
			g = groups.Name(c.name, pool)
		}
		c.names[pool] = g
	}
	for pool := range c.names {
		g := c.GroupOf(pool)
		if other, ok := owner[g]; ok {
			return nil, fmt.Errorf("pools %q and %q of cluster %q both name the %s %s", other, pool, c.name, groups.Kind(), g)
		}
		owner[g] = pool
	}
	return c, nil
}

// Name is the cluster's name.
func (c *Cluster) Name() string { return c.name }

// Store is the cluster's store.
func (c *Cluster) Store() *Store { return c.store }

// GroupOf is the name of pool's group.
func (c *Cluster) GroupOf(pool string) string {
	if g, ok := c.names[pool]; ok {
		return g
	}
	return c.groups.Name(c.name, pool)
}

// NotifyWebhook reads the webhook URL the agents notify from the store
// (KeyNotifyWebhook); "" when there is none.
func (c *Cluster) NotifyWebhook(ctx context.Context) (string, error) {
	return c.store.NotifyWebhook(ctx)
}

// NotifyWebhookWhere says where NotifyWebhook reads, for messages.
func (c *Cluster) NotifyWebhookWhere() string {
	return KeyNotifyWebhook + " in " + c.store.kv.Where()
}

// LoadJournal reads the agent's journal from the store.
func (c *Cluster) LoadJournal(ctx context.Context, v any) (string, error) {
	return c.store.LoadJournal(ctx, v)
}

// SaveJournal replaces the agent's journal in the store.
func (c *Cluster) SaveJournal(ctx context.Context, v any, rev string) (string, error) {
	return c.store.SaveJournal(ctx, v, rev)
}

// SetAsideJournal keeps an unreadable journal for a person.
func (c *Cluster) SetAsideJournal(ctx context.Context) (string, error) {
	return c.store.SetAsideJournal(ctx)
}

// TokensRotatedFor is platform.TokenStore's, from the store.
func (c *Cluster) TokensRotatedFor(ctx context.Context) (string, error) {
	return c.store.TokensRotatedFor(ctx)
}

// PutRotatedTokens is platform.TokenStore's, to the store.
func (c *Cluster) PutRotatedTokens(ctx context.Context, trigger string, t swarm.Tokens) error {
	return c.store.PutRotatedTokens(ctx, trigger, t)
}

// poolNames lists the cluster's pools: the managers, every pool named in
// the constructor's map, and every worker pool in the store; sorted.
func (c *Cluster) poolNames(ctx context.Context) ([]string, error) {
	seen := map[string]bool{policy.ManagerPoolName: true}
	for pool := range c.names {
		seen[pool] = true
	}
	pools, err := c.Pools(ctx)
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

// Instances lists every member of every pool's group, managers included,
// sorted by pool then id: the store's pool listing, one Describe over
// every pool's group without progress checks, and one Details. A pool
// whose group does not exist (yet, or any more) has no instances.
func (c *Cluster) Instances(ctx context.Context) ([]platform.Instance, error) {
	pools, found, err := c.describeAll(ctx)
	if err != nil {
		return nil, err
	}
	var groups []*Group
	for _, pool := range pools {
		if g, ok := found[c.GroupOf(pool)]; ok {
			groups = append(groups, g)
		}
	}
	if err := c.groups.Details(ctx, groups); err != nil {
		return nil, err
	}
	var out []platform.Instance
	for _, pool := range pools {
		g, ok := found[c.GroupOf(pool)]
		if !ok {
			continue
		}
		for _, m := range g.Members {
			out = append(out, platform.Instance{ID: m.ID, Cluster: c.name, Pool: pool, Role: roleOf(pool),
				Addr: m.Addr, CreatedAt: m.CreatedAt, Running: m.Running})
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

// describeAll describes every pool's group without progress checks (one
// Describe) and remembers which group each member belongs to.
func (c *Cluster) describeAll(ctx context.Context) ([]string, map[string]*Group, error) {
	pools, err := c.poolNames(ctx)
	if err != nil {
		return nil, nil, err
	}
	names := make([]string, 0, len(pools))
	for _, pool := range pools {
		names = append(names, c.GroupOf(pool))
	}
	found, err := c.groups.Describe(ctx, names, false)
	if err != nil {
		return nil, nil, err
	}
	owner := map[string]string{}
	for _, g := range found {
		for _, m := range g.Members {
			owner[m.ID] = g.Name
		}
	}
	c.mu.Lock()
	c.owner = owner
	c.mu.Unlock()
	return pools, found, nil
}

// Group describes pool's group with the cloud's own work on it
// (progress), for a change; platform.ErrNotFound when the group does not
// exist.
func (c *Cluster) Group(ctx context.Context, pool string, progress bool) (*Group, error) {
	name := c.GroupOf(pool)
	found, err := c.groups.Describe(ctx, []string{name}, progress)
	if err != nil {
		return nil, err
	}
	g, ok := found[name]
	if !ok {
		return nil, fmt.Errorf("%s %s of node pool %s: %w", c.groups.Kind(), name, policy.PoolID(c.name, pool), platform.ErrNotFound)
	}
	return g, nil
}

// StartInstance grows pool's group by one once the cloud is not busy with
// it. The cloud launches asynchronously, so the returned Instance has the
// cluster, pool and role but an EMPTY ID: the agent adopts the new
// instance when it shows up in Instances, and it joins the swarm by itself
// through its boot script. A busy group returns the transient Busy error
// and changes nothing; a group already at its maximum is an error.
func (c *Cluster) StartInstance(ctx context.Context, pool policy.Pool) (platform.Instance, error) {
	g, err := c.Group(ctx, pool.Name, true)
	if err != nil {
		return platform.Instance{}, err
	}
	if err := g.busy(Grow, ""); err != nil {
		return platform.Instance{}, err
	}
	_, hi, err := c.bounds(ctx, pool.Name, g)
	if err != nil {
		return platform.Instance{}, err
	}
	if g.Desired >= hi+Surge {
		return platform.Instance{}, fmt.Errorf("node pool %s: %s %s is at its maximum size %d", policy.PoolID(c.name, pool.Name), c.groups.Kind(), g.Name, hi+Surge)
	}
	if err := c.groups.Resize(ctx, g.Name, g.Desired+1); err != nil {
		return platform.Instance{}, err
	}
	return platform.Instance{Cluster: c.name, Pool: pool.Name, Role: roleOf(pool.Name), Running: true}, nil
}

// bounds are pool's [min, max]: the cloud's where it keeps them (max less
// the surge room), else the pool descriptor's (manager_count for the
// managers).
func (c *Cluster) bounds(ctx context.Context, pool string, g *Group) (lo, hi int, err error) {
	if g.Bounded {
		return g.Min, g.Max - Surge, nil
	}
	if pool == policy.ManagerPoolName {
		d, err := c.store.Descriptor(ctx)
		return int(d.ManagerCount), int(d.ManagerCount), err
	}
	p, err := c.store.GetPool(ctx, pool)
	return int(p.MinSize), int(p.MaxSize), err
}

// groupOfMember is the group member id belongs to, from the last listing
// (describing the groups again, without their members' details, when it
// is not there).
func (c *Cluster) groupOfMember(ctx context.Context, id string) (string, error) {
	c.mu.Lock()
	g, ok := c.owner[id]
	c.mu.Unlock()
	if ok {
		return g, nil
	}
	if _, _, err := c.describeAll(ctx); err != nil {
		return "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if g, ok := c.owner[id]; ok {
		return g, nil
	}
	return "", fmt.Errorf("instance %s of cluster %s: %w", id, c.name, platform.ErrNotFound)
}

// TerminateInstance removes a member without shrinking its group, so the
// group launches a replacement (heal). A member that is already gone is
// not an error. It does not check whether the group is busy: healing a
// failed member should not wait for the cloud's own work.
func (c *Cluster) TerminateInstance(ctx context.Context, id string) error {
	return c.remove(ctx, id, false)
}

// TerminateAndShrink removes a member the agent chose (and drained) and
// lowers its group's desired size by one (scale in), so the group does not
// replace it. A member that is already gone is not an error.
func (c *Cluster) TerminateAndShrink(ctx context.Context, id string) error {
	return c.remove(ctx, id, true)
}

func (c *Cluster) remove(ctx context.Context, id string, shrink bool) error {
	g, err := c.groupOfMember(ctx, id)
	if err != nil {
		return ignoreGone(err)
	}
	return ignoreGone(c.groups.Remove(ctx, g, id, shrink))
}

// CheckScaleIn tells whether the agent may drain and scale in member id
// of pool now: nil, or the transient Busy error.
func (c *Cluster) CheckScaleIn(ctx context.Context, pool, id string) error {
	g, err := c.Group(ctx, pool, true)
	if err != nil {
		return err
	}
	return g.busy(ScaleIn, id)
}

// SetDesiredSize gives a worker pool size instances and records it in the
// stored pool descriptor. Growing sets the group's desired size
// (absolute, so a repeated call resizes once). Shrinking only records the
// size: the agent removes the members it chose and drained with
// TerminateAndShrink, one by one, so the cloud never picks a busy one. A
// size outside the descriptor's [min, max] is refused before any change,
// and so is the manager pool, which the cluster's manager_count owns. A
// group busy with its own work is not grown: the transient Busy error
// says wait.
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
	if err := c.GrowTo(ctx, pool, int(size)); err != nil {
		return err
	}
	if d.DesiredSize == size {
		return nil
	}
	d.DesiredSize = size
	defer c.forgetGeneration()
	return c.store.PutPool(ctx, d)
}

// TrimDesired gives up the launches a pool's group was asked for and never
// made: it lowers the group's desired size to the members it lists as
// running, never below the pool's minimum, and returns the size before and
// after, and why the group says it is busy (the failed launch: a quota or
// capacity error), "" when it says nothing. It never asks the cloud to
// remove anything: a group holding as many members as it desires has none
// to shed. The agent calls it only for a request no instance answered
// within provision_timeout (a capacity or quota shortage), long after any
// describe lag; it does not wait for a busy group, since the busy work is
// the failing launch.
func (c *Cluster) TrimDesired(ctx context.Context, pool string) (from, to int, why string, err error) {
	g, err := c.Group(ctx, pool, true)
	if err != nil {
		return 0, 0, "", err
	}
	if busy := g.busy(Grow, ""); busy != nil {
		why = busy.Error()
	}
	lo, _, err := c.bounds(ctx, pool, g)
	if err != nil {
		return g.Desired, g.Desired, why, err
	}
	live := 0
	for _, m := range g.Members {
		if m.Running {
			live++
		}
	}
	target := max(live, lo)
	if target >= g.Desired {
		return g.Desired, g.Desired, why, nil
	}
	if err := c.groups.Resize(ctx, g.Name, target); err != nil {
		return g.Desired, g.Desired, why, err
	}
	return g.Desired, target, why, nil
}
