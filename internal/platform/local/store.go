package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// The local store is a directory per cluster:
//
//	clusters/<name>/cluster.json         the cluster descriptor
//	clusters/<name>/pools/<pool>.json    node pool descriptors
//	clusters/<name>/healing/<pool>.json  healing policies
//	clusters/<name>/journal.json         the agent's journal of actions

func (p *Platform) healingFile(cluster, pool string) string {
	return filepath.Join(p.clusterDir(cluster), "healing", pool+".json")
}

// poolExists reports whether pool (a worker pool or the manager pool) exists.
func (p *Platform) poolExists(cluster, pool string) error {
	if _, err := os.Stat(filepath.Join(p.clusterDir(cluster), "cluster.json")); err != nil {
		return fmt.Errorf("cluster %s: %w", cluster, platform.ErrNotFound)
	}
	if pool == policy.ManagerPoolName {
		return nil
	}
	if _, err := os.Stat(p.poolFile(cluster, pool)); err != nil {
		return fmt.Errorf("node pool %s: %w", policy.PoolID(cluster, pool), platform.ErrNotFound)
	}
	return nil
}

// PutHealingPolicy writes a pool's healing policy for the agent.
func (p *Platform) PutHealingPolicy(_ context.Context, h policy.Healing) error {
	if err := h.Validate(); err != nil {
		return err
	}
	cluster, pool, err := policy.SplitPoolID(h.PoolID)
	if err != nil {
		return err
	}
	if err := p.poolExists(cluster, pool); err != nil {
		return err
	}
	return writeJSON(p.healingFile(cluster, pool), h)
}

// GetHealingPolicy reads a pool's healing policy; platform.ErrNotFound when
// there is none.
func (p *Platform) GetHealingPolicy(_ context.Context, poolID string) (policy.Healing, error) {
	var h policy.Healing
	cluster, pool, err := policy.SplitPoolID(poolID)
	if err != nil {
		return h, err
	}
	if err := readJSON(p.healingFile(cluster, pool), &h); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return h, fmt.Errorf("healing policy for %s: %w", poolID, platform.ErrNotFound)
		}
		return h, err
	}
	return h, nil
}

// DeleteHealingPolicy removes a pool's healing policy; removing one that is
// gone is not an error.
func (p *Platform) DeleteHealingPolicy(_ context.Context, poolID string) error {
	cluster, pool, err := policy.SplitPoolID(poolID)
	if err != nil {
		return err
	}
	if err := os.Remove(p.healingFile(cluster, pool)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Cluster is one cluster's store and instances, as the agent sees them.
type Cluster struct {
	p    *Platform
	name string
}

// Cluster opens a cluster of the platform for the agent.
func (p *Platform) Cluster(name string) *Cluster { return &Cluster{p: p, name: name} }

// Name is the cluster's name.
func (c *Cluster) Name() string { return c.name }

// Descriptor reads the cluster descriptor.
func (c *Cluster) Descriptor(context.Context) (policy.Cluster, error) {
	var d policy.Cluster
	if err := readJSON(filepath.Join(c.p.clusterDir(c.name), "cluster.json"), &d); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return d, fmt.Errorf("cluster %s: %w", c.name, platform.ErrNotFound)
		}
		return d, err
	}
	return d, nil
}

// Pools reads every worker pool descriptor, by name.
func (c *Cluster) Pools(context.Context) ([]policy.Pool, error) {
	return readDir[policy.Pool](filepath.Join(c.p.clusterDir(c.name), "pools"))
}

// HealingPolicies reads every healing policy of the cluster.
func (c *Cluster) HealingPolicies(context.Context) ([]policy.Healing, error) {
	return readDir[policy.Healing](filepath.Join(c.p.clusterDir(c.name), "healing"))
}

// readDir reads every *.json file of dir, in name order; a missing dir is empty.
func readDir[T any](dir string) ([]T, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".json") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	out := make([]T, 0, len(names))
	for _, n := range names {
		var v T
		if err := readJSON(filepath.Join(dir, n), &v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}
