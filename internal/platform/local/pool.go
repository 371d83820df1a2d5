package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/swarm"
)

// drainWait bounds how long a shrinking pool waits for a drained node's tasks
// to move elsewhere before the node is removed anyway.
const drainWait = 30 * time.Second

// startParallel is how many nodes of a pool boot at once.
const startParallel = 4

// PoolStatus is what the platform observes of a pool.
type PoolStatus = platform.PoolStatus

// ErrPoolExists is returned when the cluster already has a pool of that name.
var ErrPoolExists = platform.ErrExists

// CreatePool records the pool and starts its nodes. With wait > 0 it returns
// only when they are Ready in Swarm. On failure nothing of the pool is left.
func (p *Platform) CreatePool(ctx context.Context, pool policy.Pool, wait time.Duration) (st PoolStatus, err error) {
	if err := pool.Validate(); err != nil {
		return st, err
	}
	if err := p.checkHost(); err != nil {
		return st, err
	}
	if _, err := p.recordPool(pool, true); err != nil {
		return st, err
	}
	defer func() {
		if err != nil {
			p.progress("node pool creation failed; removing what was created", "pool", pool.ID())
			if derr := p.DeletePool(context.Background(), pool.Cluster, pool.Name); derr != nil {
				err = fmt.Errorf("%w (and cleaning up failed: %v)", err, derr)
			}
		}
	}()
	if err := p.reconcile(ctx, pool, wait); err != nil {
		return st, err
	}
	return p.poolStatus(ctx, pool)
}

func (p *Platform) recordPool(pool policy.Pool, create bool) (policy.Pool, error) {
	unlock, err := p.lock(pool.Cluster)
	if err != nil {
		return pool, err
	}
	defer unlock()
	if _, err := os.Stat(p.clusterDir(pool.Cluster) + "/cluster.json"); err != nil {
		return pool, fmt.Errorf("cluster %s: %w", pool.Cluster, platform.ErrNotFound)
	}
	path := p.poolFile(pool.Cluster, pool.Name)
	if create {
		if _, err := os.Stat(path); err == nil {
			return pool, fmt.Errorf("%w: cluster %s already has a node pool named %q: choose another name, or import it with `terraform import <address> %s` (OpenTofu: `tofu import`)", ErrPoolExists, pool.Cluster, pool.Name, pool.ID())
		}
		pool.CreatedAt = time.Now().UTC()
	} else {
		var old policy.Pool
		if err := readJSON(path, &old); err == nil {
			pool.CreatedAt = old.CreatedAt
			if pool.SizeOwner == "" {
				pool.SizeOwner = old.SizeOwner
			}
			if pool.SizeOwner == policy.SizeOwnerAgent {
				// The agent owns the size: keep its size, within the new bounds.
				pool.DesiredSize = max(pool.MinSize, min(old.DesiredSize, pool.MaxSize))
			}
		}
	}
	return pool, writeJSON(path, pool)
}

// ReadPool returns the descriptor and what runs; platform.ErrNotFound when
// the pool or its cluster is gone.
func (p *Platform) ReadPool(ctx context.Context, cluster, name string) (policy.Pool, PoolStatus, error) {
	var pool policy.Pool
	if err := readJSON(p.poolFile(cluster, name), &pool); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return pool, PoolStatus{}, fmt.Errorf("node pool %s: %w", policy.PoolID(cluster, name), platform.ErrNotFound)
		}
		return pool, PoolStatus{}, err
	}
	st, err := p.poolStatus(ctx, pool)
	return pool, st, err
}

func (p *Platform) poolStatus(_ context.Context, pool policy.Pool) (PoolStatus, error) {
	insts, err := p.instances(pool.Cluster, pool.Name)
	if err != nil {
		return PoolStatus{}, err
	}
	st := PoolStatus{NodeIDs: []string{}}
	for _, i := range insts {
		if i.Running {
			st.CurrentSize++
			if i.NodeID != "" {
				st.NodeIDs = append(st.NodeIDs, i.NodeID)
			}
		}
		i.Instance.Running = i.Running
		st.Instances = append(st.Instances, i.Instance)
	}
	return st, nil
}

// UpdatePool applies a changed descriptor: sizes, labels and timeouts. It
// returns the pool as recorded: while the agent owns the size, its size
// (within the new bounds) stands, not the configured one.
func (p *Platform) UpdatePool(ctx context.Context, pool policy.Pool, wait time.Duration) (policy.Pool, PoolStatus, error) {
	if err := pool.Validate(); err != nil {
		return pool, PoolStatus{}, err
	}
	if err := p.checkHost(); err != nil {
		return pool, PoolStatus{}, err
	}
	pool, err := p.recordPool(pool, false)
	if err != nil {
		return pool, PoolStatus{}, err
	}
	if err := p.reconcile(ctx, pool, wait); err != nil {
		return pool, PoolStatus{}, err
	}
	st, err := p.poolStatus(ctx, pool)
	return pool, st, err
}

// reconcile makes the pool's nodes match the descriptor: dead instances are
// cleared from the platform and from Swarm, missing ones started, surplus
// ones drained and removed (newest first), labels applied to every node.
func (p *Platform) reconcile(ctx context.Context, pool policy.Pool, wait time.Duration) error {
	mgr, err := p.manager(ctx, pool.Cluster)
	if err != nil {
		return err
	}
	defer mgr.Close()
	insts, err := p.instances(pool.Cluster, pool.Name)
	if err != nil {
		return err
	}
	var live []instanceFile
	for _, i := range insts {
		if i.Running {
			live = append(live, i)
			continue
		}
		p.progress("clearing dead node", "instance", i.ID)
		if err := p.retireNode(ctx, mgr, i, false); err != nil {
			return err
		}
	}
	desired := int(pool.DesiredSize)
	for len(live) > desired {
		victim := live[len(live)-1]
		p.progress("draining and removing node", "instance", victim.ID)
		if err := p.drain(ctx, mgr, victim); err != nil {
			return err
		}
		if err := p.retireNode(ctx, mgr, victim, false); err != nil {
			return err
		}
		live = live[:len(live)-1]
	}
	for _, i := range live {
		if i.NodeID == "" {
			continue
		}
		if err := mgr.SetLabels(ctx, i.NodeID, nodeLabels(pool, i.Instance)); err != nil {
			return err
		}
	}
	started, err := p.startNodes(ctx, mgr, pool, desired-len(live))
	if err != nil {
		return err
	}
	if wait > 0 && len(started) > 0 {
		return p.waitReady(ctx, mgr, started, wait)
	}
	return nil
}

// startNodes boots n nodes of the pool, a few at a time, and joins them.
func (p *Platform) startNodes(ctx context.Context, mgr *swarm.Client, pool policy.Pool, n int) ([]instanceFile, error) {
	if n <= 0 {
		return nil, nil
	}
	p.progress("starting nodes", "pool", pool.ID(), "count", n)
	var (
		mu      sync.Mutex
		started []instanceFile
		errs    []error
		wg      sync.WaitGroup
		sem     = make(chan struct{}, startParallel)
	)
	for k := 0; k < n; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			f, err := p.startAndJoinVia(ctx, mgr, pool)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			started = append(started, f)
		}()
	}
	wg.Wait()
	return started, errors.Join(errs...)
}

func (p *Platform) waitReady(ctx context.Context, mgr *swarm.Client, insts []instanceFile, wait time.Duration) error {
	want := map[string]bool{}
	for _, i := range insts {
		want[i.NodeID] = true
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	p.progress("waiting for nodes to be Ready", "count", len(want))
	err := mgr.WaitNodes(wctx, fmt.Sprintf("%d nodes to be Ready", len(want)), func(ns []swarm.Node) bool {
		ready := 0
		for _, n := range ns {
			if want[n.ID] && n.State == "ready" {
				ready++
			}
		}
		return ready == len(want)
	})
	if err != nil {
		return fmt.Errorf("wait_for_capacity_timeout (%s) reached: %w", wait, err)
	}
	return nil
}

// drain moves a node's tasks elsewhere before it is removed, bounded by drainWait.
func (p *Platform) drain(ctx context.Context, mgr *swarm.Client, inst instanceFile) error {
	if inst.NodeID == "" {
		return nil
	}
	if err := mgr.SetAvailability(ctx, inst.NodeID, "drain"); err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, drainWait)
	defer cancel()
	err := platform.WaitFor(dctx, 250*time.Millisecond, func() (bool, error) {
		n, err := mgr.TasksStillRunning(dctx, inst.NodeID)
		return err == nil && n == 0, nil
	})
	if err != nil {
		p.progress("drain deadline reached; removing node with tasks still running", "instance", inst.ID)
	}
	return nil
}

// DeletePool removes every node of the pool from Swarm and the machine, then
// the pool's record.
func (p *Platform) DeletePool(ctx context.Context, cluster, name string) error {
	var pool policy.Pool
	if err := readJSON(p.poolFile(cluster, name), &pool); err == nil {
		pool.Deleting = true
		if err := writeJSON(p.poolFile(cluster, name), pool); err != nil {
			return err
		}
	}
	insts, err := p.instances(cluster, name)
	if err != nil {
		return err
	}
	mgr, merr := p.manager(ctx, cluster)
	if mgr != nil {
		defer mgr.Close()
	}
	var errs []error
	for _, i := range insts {
		if mgr != nil {
			errs = append(errs, p.retireNode(ctx, mgr, i, false))
		} else {
			errs = append(errs, p.removeInstance(ctx, i))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := os.Remove(p.poolFile(cluster, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if merr != nil && len(insts) > 0 {
		p.progress("no manager answered; nodes were stopped without leaving the swarm", "pool", policy.PoolID(cluster, name))
	}
	return nil
}
