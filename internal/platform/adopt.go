package platform

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// Adoption is a cluster that Terraform did not build, declared in the
// agent's configuration file (internal/agentconfig): its descriptor,
// pools and policies, checked by policy's validators.
type Adoption struct {
	// Source names the file, for messages.
	Source     string
	Descriptor policy.Cluster
	Pools      []policy.Pool
	Healing    []policy.Healing
	Scaling    []policy.Scaling
	Services   []policy.ServiceScaling
	// Groups maps a pool to its existing group (aws: the Auto Scaling
	// Group), which the platform's naming rule did not name.
	Groups map[string]string
}

// Adopt is the agent's view of an adopted cluster: the descriptor, pools
// and policies come from the file (a), the instances and the journal from
// the platform's cluster inner. Nothing of the file is written into the
// platform's store: the file is the configuration's one owner, and the
// store keeps only what the agent itself writes (its journal).
//
// A pool's size. The file cannot be written back, so the size the agent
// gives a pool (SetDesiredSize) is kept in memory. Memory is lost when the
// agent restarts (a crash, an upgrade) and is stale in the agent of
// another manager that takes over the lead, while the pool keeps the size
// the last leader gave it: nodes that run tasks. Starting again from the
// file's desired_size would tell healing that the pool is above its size,
// so a failed node would be removed instead of replaced, and the status
// would show a size the pool does not have. So the size is learnt from
// what exists, the first time a pool is read and again whenever the agent
// becomes the leader (Relearn): on a group platform the group's desired
// capacity, on local the pool's instances (a failed one counts until it
// is removed: it is to be replaced), clamped to the file's [min_size,
// max_size]. The file's desired_size is the size of a pool of which
// nothing exists yet (no group, no instance). Learning a size never
// starts or stops anything: it is what healing keeps, and only the
// scaling policy changes it, from the nodes it finds.
//
// It refuses a cluster whose store holds a descriptor: Terraform built
// that one and owns its pools, and two owners would fight over them.
// inner's GroupCluster and desired trimmer stay visible through the
// result; its TokenStore does not, since an adopted cluster has no
// join_token_rotation (its join tokens are the swarm's business).
func Adopt(ctx context.Context, inner Cluster, a *Adoption, where string) (Cluster, error) {
	if _, err := inner.Descriptor(ctx); err == nil {
		return nil, fmt.Errorf("%s adopts cluster %q, but %s holds a cluster of that name that Terraform built: it is Terraform's, and an agent adopting it would fight Terraform over its pools; remove the adopt block to run the agent of that cluster, or adopt under another name", a.Source, a.Descriptor.Name, where)
	} else if !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("adopting cluster %q: reading %s: %w", a.Descriptor.Name, where, err)
	}
	c := &adopted{Cluster: inner, a: a, desired: map[string]int64{}}
	if d, ok := inner.(groupDescriber); ok {
		c.groups = d
	}
	g, isGroup := inner.(GroupCluster)
	t, isTrim := inner.(interface {
		TrimDesired(ctx context.Context, pool string) (from, to int, why string, err error)
	})
	switch {
	case isGroup && isTrim:
		return &adoptedGroupTrim{adoptedGroup{c, g}, t}, nil
	case isGroup:
		return &adoptedGroup{c, g}, nil
	}
	return c, nil
}

type adopted struct {
	Cluster
	a *Adoption
	// groups describes the pools' groups on a group platform; nil
	// elsewhere, where a pool's size is its instance count.
	groups groupDescriber

	mu      sync.Mutex
	desired map[string]int64
}

// AdoptedGroup is the cloud group of an adopted pool as it is now.
type AdoptedGroup struct {
	Kind, Name string // "Auto Scaling Group", and its name
	// Exists is false for a group that does not exist (then only Kind and
	// Name are set).
	Exists  bool
	Desired int
	// Bounded: the cloud keeps Min and Max.
	Bounded  bool
	Min, Max int
}

// groupDescriber is a group platform, whose groups know an adopted pool's
// size better than its instance count: the desired capacity counts the
// launches asked for before they are listed. A pool whose group does not
// exist has nothing of it yet.
type groupDescriber interface {
	AdoptedGroups(ctx context.Context, pools []string) (map[string]AdoptedGroup, error)
}

// Relearner is a Cluster that keeps in memory what another agent may have
// changed since: the agent calls Relearn when it becomes the leader, and
// the next read learns it again from the platform.
type Relearner interface {
	Relearn()
}

// Relearn forgets the sizes in memory: the next Pools learns them from
// what exists (see Adopt).
func (c *adopted) Relearn() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.desired)
}

// learn fills in the sizes of the pools not in memory from what exists.
func (c *adopted) learn(ctx context.Context) error {
	missing := c.unknown()
	if len(missing) == 0 {
		return nil
	}
	var sizes map[string]int
	if c.groups != nil {
		groups, err := c.groups.AdoptedGroups(ctx, missing)
		if err != nil {
			return fmt.Errorf("cluster %s adopted by %s: the sizes of its pools: %w", c.a.Descriptor.Name, c.a.Source, err)
		}
		sizes = groupSizes(groups)
	} else {
		all, err := c.Cluster.Instances(ctx)
		if err != nil {
			return fmt.Errorf("cluster %s adopted by %s: the sizes of its pools: %w", c.a.Descriptor.Name, c.a.Source, err)
		}
		sizes = instanceCounts(all)
	}
	c.learnFrom(sizes)
	return nil
}

// unknown lists the file's pools whose size is not in memory.
func (c *adopted) unknown() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, p := range c.a.Pools {
		if _, ok := c.desired[p.Name]; !ok {
			out = append(out, p.Name)
		}
	}
	return out
}

// groupSizes is the desired capacity of each pool whose group exists.
func groupSizes(groups map[string]AdoptedGroup) map[string]int {
	sizes := map[string]int{}
	for pool, g := range groups {
		if g.Exists {
			sizes[pool] = g.Desired
		}
	}
	return sizes
}

// instanceCounts is how many instances each pool has, a failed one
// included.
func instanceCounts(insts []Instance) map[string]int {
	sizes := map[string]int{}
	for _, in := range insts {
		sizes[in.Pool]++
	}
	return sizes
}

// learnFrom sets each pool's size not in memory from sizes (what exists,
// by pool), within the file's bounds; a pool absent from sizes has
// nothing yet and gets the file's desired_size.
func (c *adopted) learnFrom(sizes map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.a.Pools {
		if _, ok := c.desired[p.Name]; ok {
			continue
		}
		if size, exists := sizes[p.Name]; exists {
			c.desired[p.Name] = min(max(int64(size), p.MinSize), p.MaxSize)
		} else {
			c.desired[p.Name] = p.DesiredSize
		}
	}
}

// Descriptor is the file's, as long as the platform's store holds none: a
// cluster Terraform built under the adopted name since the agent started
// (the local platform refuses the name, a cloud's store cannot) stops the
// agent acting, every evaluation failing with why, rather than two owners
// sharing one journal.
func (c *adopted) Descriptor(ctx context.Context) (policy.Cluster, error) {
	if _, err := c.Cluster.Descriptor(ctx); err == nil {
		return policy.Cluster{}, fmt.Errorf("cluster %q, adopted by %s, has since been built by Terraform (its store holds a descriptor): this agent stops acting; remove the adopt block to serve Terraform's cluster, or adopt under another name", c.a.Descriptor.Name, c.a.Source)
	} else if !errors.Is(err, ErrNotFound) {
		return policy.Cluster{}, err
	}
	return c.a.Descriptor, nil
}

// Pools are the file's, with the sizes learnt from what exists or given
// by the agent since (see Adopt).
func (c *adopted) Pools(ctx context.Context) ([]policy.Pool, error) {
	if err := c.learn(ctx); err != nil {
		return nil, err
	}
	return c.sized(), nil
}

// sized is the file's pools with the sizes in memory.
func (c *adopted) sized() []policy.Pool {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]policy.Pool, 0, len(c.a.Pools))
	for _, p := range c.a.Pools {
		if d, ok := c.desired[p.Name]; ok {
			p.DesiredSize = d
		}
		out = append(out, p)
	}
	return out
}

func (c *adopted) HealingPolicies(context.Context) ([]policy.Healing, error) {
	return append([]policy.Healing(nil), c.a.Healing...), nil
}

func (c *adopted) ScalingPolicies(context.Context) ([]policy.Scaling, error) {
	return append([]policy.Scaling(nil), c.a.Scaling...), nil
}

func (c *adopted) ServiceScalingPolicies(context.Context) ([]policy.ServiceScaling, error) {
	return append([]policy.ServiceScaling(nil), c.a.Services...), nil
}

// adopts reports whether pool is one of the file's.
func (c *adopted) adopts(pool string) bool {
	for _, p := range c.a.Pools {
		if p.Name == pool {
			return true
		}
	}
	return false
}

// Instances are the platform's instances of the file's pools only: the
// managers of an adopted cluster (a group named as the platform names a
// manager pool, say) are not the agent's to heal.
func (c *adopted) Instances(ctx context.Context) ([]Instance, error) {
	all, err := c.Cluster.Instances(ctx)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, in := range all {
		if c.adopts(in.Pool) {
			out = append(out, in)
		}
	}
	return out, nil
}

// StartInstance starts an instance of one of the file's pools, never of
// another (the managers).
func (c *adopted) StartInstance(ctx context.Context, pool policy.Pool) (Instance, error) {
	if !c.adopts(pool.Name) {
		return Instance{}, fmt.Errorf("node pool %s is not in %s: the agent starts instances of the pools the file adopts only (an adopted cluster's managers are not Autarky's)", policy.PoolID(c.a.Descriptor.Name, pool.Name), c.a.Source)
	}
	return c.Cluster.StartInstance(ctx, pool)
}

// SetDesiredSize keeps the size within the file's bounds, in memory; on a
// group platform the group grows to it (growDesired).
func (c *adopted) SetDesiredSize(ctx context.Context, pool string, size int64) error {
	var p *policy.Pool
	for i := range c.a.Pools {
		if c.a.Pools[i].Name == pool {
			p = &c.a.Pools[i]
		}
	}
	if p == nil {
		return fmt.Errorf("node pool %s is not in %s: %w", policy.PoolID(c.a.Descriptor.Name, pool), c.a.Source, ErrNotFound)
	}
	if size < p.MinSize || size > p.MaxSize {
		return fmt.Errorf("size %d of pool %s is outside [%d, %d]", size, p.ID(), p.MinSize, p.MaxSize)
	}
	c.mu.Lock()
	c.desired[pool] = size
	c.mu.Unlock()
	return nil
}

// adoptedGroup is an adopted cluster on a group platform.
type adoptedGroup struct {
	*adopted
	g GroupCluster
}

func (c *adoptedGroup) TerminateAndShrink(ctx context.Context, id string) error {
	return c.g.TerminateAndShrink(ctx, id)
}

func (c *adoptedGroup) CheckScaleIn(ctx context.Context, pool, id string) error {
	return c.g.CheckScaleIn(ctx, pool, id)
}

// SetDesiredSize records the size and grows the pool's group to it: the
// group launches the instances. Shrinking only records, as on every group
// platform: each member leaves with TerminateAndShrink.
func (c *adoptedGroup) SetDesiredSize(ctx context.Context, pool string, size int64) error {
	if err := c.adopted.SetDesiredSize(ctx, pool, size); err != nil {
		return err
	}
	if r, ok := c.g.(interface {
		GrowTo(ctx context.Context, pool string, size int) error
	}); ok {
		return r.GrowTo(ctx, pool, int(size))
	}
	return fmt.Errorf("platform of cluster %s cannot grow an adopted pool's group", c.a.Descriptor.Name)
}

type adoptedGroupTrim struct {
	adoptedGroup
	t interface {
		TrimDesired(ctx context.Context, pool string) (from, to int, why string, err error)
	}
}

func (c *adoptedGroupTrim) TrimDesired(ctx context.Context, pool string) (from, to int, why string, err error) {
	return c.t.TrimDesired(ctx, pool)
}

// PoolSurvey is what exists of an adopted pool now: its group on a group
// platform, and its instances (on local, the nodes labelled for it and
// those the platform started). `autarky-agent check-config` prints it.
type PoolSurvey struct {
	Pool string
	// Group is the pool's group (nil on local).
	Group     *AdoptedGroup
	Instances []Instance
	// Size is what the agent would start from (see Adopt).
	Size int64
}

// Surveyor is an adopted cluster (Adopt) that tells what exists of the
// file's pools, changing nothing.
type Surveyor interface {
	Survey(ctx context.Context) ([]PoolSurvey, error)
}

// Survey lists what exists of each of the file's pools, in the file's
// order. A pool whose group does not exist is an error naming the pool:
// on a group platform the agent could never grow it.
func (c *adopted) Survey(ctx context.Context) ([]PoolSurvey, error) {
	insts, err := c.Instances(ctx)
	if err != nil {
		return nil, fmt.Errorf("cluster %s adopted by %s: listing its pools' instances: %w", c.a.Descriptor.Name, c.a.Source, err)
	}
	names := make([]string, 0, len(c.a.Pools))
	for _, p := range c.a.Pools {
		names = append(names, p.Name)
	}
	var groups map[string]AdoptedGroup
	sizes := instanceCounts(insts)
	if c.groups != nil {
		if groups, err = c.groups.AdoptedGroups(ctx, names); err != nil {
			return nil, fmt.Errorf("cluster %s adopted by %s: describing its pools' groups: %w", c.a.Descriptor.Name, c.a.Source, err)
		}
		sizes = groupSizes(groups)
	}
	// The sizes come from what was just read, as Pools would learn them.
	c.learnFrom(sizes)
	pools := c.sized()
	out := make([]PoolSurvey, 0, len(pools))
	for _, p := range pools {
		s := PoolSurvey{Pool: p.Name, Size: p.DesiredSize}
		if c.groups != nil {
			g := groups[p.Name]
			if !g.Exists {
				return nil, fmt.Errorf("%s: node_pool %q: %s %q does not exist (where the agent's credentials and region look): name the pool's existing group with group = \"...\"", c.a.Source, p.Name, g.Kind, g.Name)
			}
			s.Group = &g
		}
		for _, in := range insts {
			if in.Pool == p.Name {
				s.Instances = append(s.Instances, in)
			}
		}
		slices.SortFunc(s.Instances, func(a, b Instance) int { return strings.Compare(a.ID, b.ID) })
		out = append(out, s)
	}
	return out, nil
}
