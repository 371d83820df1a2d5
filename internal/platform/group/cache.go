package group

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// The agent reads the cluster's configuration (descriptor, pools, healing,
// scaling and service policies) at every evaluation, every two seconds by
// default. On a cloud each listing is paged (SSM: ten parameters a page),
// so reading it all grew with the pools: 29 calls per evaluation at 100
// pools. The configuration changes rarely and only through the store,
// whose every write also writes a new generation (Store.bumpGeneration).
// So the Cluster reads the generation, one small Get, at most once per
// GenerationRecheck, and reads a part of the configuration again only
// when the generation moved since it last read that part; the calls per
// evaluation stay the same at 1 pool and at 100.
//
// What could go wrong, and the guards:
//   - A write by something that does not bump the generation (a provider
//     from before generations, a hand edit in the console): everything is
//     read again at least every ConfigMaxAge, and a store with no
//     generation at all is never cached.
//   - A write racing a read: the generation is read before the part, so a
//     write after it (whose bump follows the write) is seen at the next
//     check.
//   - A read-modify-write (SetDesiredSize, bounds) reads the store itself,
//     never the cache.

// GenerationRecheck is how long a generation read stays trusted: one read
// serves all of an evaluation's calls, and a change is seen within it.
const GenerationRecheck = time.Second

// ConfigMaxAge bounds how long a cached part is served even when the
// generation says nothing changed.
const ConfigMaxAge = 5 * time.Minute

type configCache struct {
	mu        sync.Mutex
	gen       string
	checkedAt time.Time
	parts     map[string]cachedPart
}

type cachedPart struct {
	gen    string
	readAt time.Time
	value  any
}

// generation is the store's generation, read again once GenerationRecheck
// has passed since the last read.
func (c *Cluster) generation(ctx context.Context) (string, error) {
	c.cache.mu.Lock()
	if !c.cache.checkedAt.IsZero() && time.Since(c.cache.checkedAt) < GenerationRecheck {
		gen := c.cache.gen
		c.cache.mu.Unlock()
		return gen, nil
	}
	c.cache.mu.Unlock()
	gen, err := c.store.Generation(ctx)
	if err != nil {
		return "", err
	}
	c.cache.mu.Lock()
	c.cache.gen, c.cache.checkedAt = gen, time.Now()
	c.cache.mu.Unlock()
	return gen, nil
}

// forgetGeneration makes the next read check the generation again: after
// this Cluster's own write (SetDesiredSize), whose new generation it must
// not wait GenerationRecheck to see.
func (c *Cluster) forgetGeneration() {
	c.cache.mu.Lock()
	c.cache.checkedAt = time.Time{}
	c.cache.mu.Unlock()
}

// cachedRead is part of the configuration, read with read unless the copy
// read at the current generation is still young enough. Errors are not
// cached. Slices are handed out as copies, so a caller that edits one
// does not edit the cache.
func cachedRead[T any](ctx context.Context, c *Cluster, part string, read func(context.Context) (T, error)) (T, error) {
	gen, err := c.generation(ctx)
	if err != nil {
		var zero T
		return zero, err
	}
	if gen == "" {
		return read(ctx)
	}
	c.cache.mu.Lock()
	p, ok := c.cache.parts[part]
	c.cache.mu.Unlock()
	if ok && p.gen == gen && time.Since(p.readAt) < ConfigMaxAge {
		return p.value.(T), nil
	}
	v, err := read(ctx)
	if err != nil {
		return v, err
	}
	c.cache.mu.Lock()
	if c.cache.parts == nil {
		c.cache.parts = map[string]cachedPart{}
	}
	c.cache.parts[part] = cachedPart{gen: gen, readAt: time.Now(), value: v}
	c.cache.mu.Unlock()
	return v, nil
}

func cachedList[T any](ctx context.Context, c *Cluster, part string, read func(context.Context) ([]T, error)) ([]T, error) {
	v, err := cachedRead(ctx, c, part, read)
	return slices.Clone(v), err
}

// Descriptor reads the cluster descriptor (cached by generation).
func (c *Cluster) Descriptor(ctx context.Context) (policy.Cluster, error) {
	return cachedRead(ctx, c, "cluster", c.store.Descriptor)
}

// Pools reads every worker pool descriptor (cached by generation).
func (c *Cluster) Pools(ctx context.Context) ([]policy.Pool, error) {
	return cachedList(ctx, c, "pools", c.store.Pools)
}

// HealingPolicies reads every healing policy (cached by generation).
func (c *Cluster) HealingPolicies(ctx context.Context) ([]policy.Healing, error) {
	return cachedList(ctx, c, "healing", c.store.HealingPolicies)
}

// ScalingPolicies reads every scaling policy (cached by generation).
func (c *Cluster) ScalingPolicies(ctx context.Context) ([]policy.Scaling, error) {
	return cachedList(ctx, c, "scaling", c.store.ScalingPolicies)
}

// ServiceScalingPolicies reads every service scaling policy (cached by
// generation).
func (c *Cluster) ServiceScalingPolicies(ctx context.Context) ([]policy.ServiceScaling, error) {
	return cachedList(ctx, c, "services", c.store.ServiceScalingPolicies)
}
