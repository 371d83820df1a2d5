package local

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/swarm"
)

// removeParallelism is how many workers DeleteCluster removes at once.
const removeParallelism = 8

// bootTimeout bounds one node's start: process start to engine answering.
const bootTimeout = 90 * time.Second

// ClusterStatus is what the platform observes of a cluster.
type ClusterStatus = platform.ClusterStatus

// ErrClusterExists is returned when a cluster of that name is already in the state dir.
var ErrClusterExists = platform.ErrExists

// CreateCluster starts the managers, initialises the swarm on the first and
// joins the others. On failure nothing of the cluster is left behind.
func (p *Platform) CreateCluster(ctx context.Context, c policy.Cluster) (st ClusterStatus, err error) {
	if err := c.Validate(); err != nil {
		return st, err
	}
	if err := p.checkHost(); err != nil {
		return st, err
	}
	heartbeat, _ := policy.ParseDuration(c.HeartbeatPeriod)
	if err := p.claimName(c); err != nil {
		return st, err
	}
	defer func() {
		if err != nil {
			p.progress("cluster creation failed; removing what was created", "cluster", c.Name)
			if derr := p.DeleteCluster(context.Background(), c.Name); derr != nil {
				err = fmt.Errorf("%w (and cleaning up failed: %v)", err, derr)
			}
		}
	}()

	p.progress("starting first manager", "cluster", c.Name)
	first, err := p.startInstance(ctx, c.Name, policy.ManagerPoolName, policy.RoleManager)
	if err != nil {
		return st, err
	}
	cli, err := swarm.Dial(first.DockerHost)
	if err != nil {
		return st, err
	}
	defer cli.Close()
	nodeID, err := cli.Init(ctx, swarm.InitOptions{Addr: first.Addr, HeartbeatPeriod: heartbeat, Labels: c.Labels})
	if err != nil {
		return st, fmt.Errorf("%w\n%s", err, logTail(first.Dir, 5))
	}
	if err := p.recordNode(&first, nodeID); err != nil {
		return st, err
	}
	if err := cli.SetLabels(ctx, nodeID, nodeLabels(policy.Pool{}, first.Instance)); err != nil {
		return st, err
	}
	if err := p.addManagers(ctx, c.Name, int(c.ManagerCount)-1); err != nil {
		return st, err
	}
	if err := p.ensureAgents(ctx, c, false); err != nil {
		return st, err
	}
	return p.clusterStatus(ctx, c.Name)
}

// claimName records the cluster, refusing a name already in use. A leftover
// directory whose nodes are all dead (a reboot, a crashed destroy) is cleared.
func (p *Platform) claimName(c policy.Cluster) error {
	unlock, err := p.lock(c.Name)
	if err != nil {
		return err
	}
	defer unlock()
	if err := p.refuseAdopted(c.Name); err != nil {
		return err
	}
	descriptor := filepath.Join(p.clusterDir(c.Name), "cluster.json")
	if _, err := os.Stat(descriptor); err == nil {
		insts, _ := p.instances(c.Name, "")
		for _, i := range insts {
			if i.Running {
				return fmt.Errorf("%w: a cluster named %q already runs in state dir %s: choose another name, or import it with `terraform import <address> %s` (OpenTofu: `tofu import`)", ErrClusterExists, c.Name, p.stateDir, c.Name)
			}
		}
		p.progress("clearing the records of a dead cluster of the same name", "cluster", c.Name)
		for _, i := range insts {
			_ = p.removeInstance(context.Background(), i)
		}
		var old clusterMeta
		if readJSON(filepath.Join(p.clusterDir(c.Name), "local.json"), &old) == nil {
			p.releaseSlot(c.Name, old.Slot)
		}
		_ = os.RemoveAll(filepath.Join(p.clusterDir(c.Name), "pools"))
	}
	slot, err := p.claimSlot(c.Name)
	if err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(p.clusterDir(c.Name), "local.json"), clusterMeta{Slot: slot, NextIndex: 1, WorkloadBinary: p.opts.WorkloadBinary}); err != nil {
		return err
	}
	c.CreatedAt = time.Now().UTC()
	return writeJSON(descriptor, c)
}

// addManagers joins n new managers, one at a time: Raft adds one member per
// configuration change, and each must be Reachable before the next.
func (p *Platform) addManagers(ctx context.Context, cluster string, n int) error {
	for i := 0; i < n; i++ {
		p.progress("starting manager", "cluster", cluster, "manager", i+2)
		if _, err := p.startAndJoin(ctx, cluster, policy.Pool{Cluster: cluster, Name: policy.ManagerPoolName, Role: policy.RoleManager}); err != nil {
			return err
		}
	}
	return nil
}

// removeManagers demotes and removes n managers, newest first, never the leader.
func (p *Platform) removeManagers(ctx context.Context, cluster string, n int) error {
	for i := 0; i < n; i++ {
		leader, err := p.manager(ctx, cluster)
		if err != nil {
			return err
		}
		insts, err := p.instances(cluster, policy.ManagerPoolName)
		if err != nil {
			return err
		}
		nodes, err := leader.Nodes(ctx)
		if err != nil {
			leader.Close()
			return err
		}
		var victim *instanceFile
		for j := len(insts) - 1; j >= 0 && victim == nil; j-- {
			for _, nd := range nodes {
				if nd.ID == insts[j].NodeID && !nd.Leader && insts[j].DockerHost != leader.Host() {
					victim = &insts[j]
					break
				}
			}
		}
		if victim == nil {
			leader.Close()
			return errors.New("no manager can be removed without removing the leader")
		}
		p.progress("demoting and removing manager", "cluster", cluster, "instance", victim.ID)
		err = p.retireNode(ctx, leader, *victim, true)
		leader.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// retireNode takes a node out of the swarm cleanly: demote (managers), leave,
// stop, remove the node record, delete the instance.
func (p *Platform) retireNode(ctx context.Context, mgr *swarm.Client, inst instanceFile, manager bool) error {
	if manager && inst.NodeID != "" {
		if err := mgr.Demote(ctx, inst.NodeID); err != nil {
			return err
		}
		if err := mgr.WaitNodes(ctx, "demotion of "+inst.ID, func(ns []swarm.Node) bool {
			for _, n := range ns {
				if n.ID == inst.NodeID {
					return n.Role == policy.RoleWorker && n.Reachability == ""
				}
			}
			return true
		}); err != nil {
			return err
		}
	}
	if inst.Running {
		if nc, err := swarm.Dial(inst.DockerHost); err == nil {
			lctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			_ = nc.Leave(lctx, true)
			cancel()
			nc.Close()
		}
	}
	if err := p.removeInstance(ctx, inst); err != nil {
		return err
	}
	if inst.NodeID != "" {
		return mgr.Remove(ctx, inst.NodeID, true)
	}
	return nil
}

// manager returns a client of a live manager that answers as a manager,
// preferring the leader.
func (p *Platform) manager(ctx context.Context, cluster string) (*swarm.Client, error) {
	if host := p.adoptedManager(cluster); host != "" {
		return dialAdoptedManager(ctx, cluster, host)
	}
	insts, err := p.instances(cluster, policy.ManagerPoolName)
	if err != nil {
		return nil, err
	}
	var fallback *swarm.Client
	for _, i := range insts {
		if !i.Running {
			continue
		}
		cli, err := swarm.Dial(i.DockerHost)
		if err != nil {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		nodes, err := cli.Nodes(cctx)
		cancel()
		if err != nil {
			cli.Close()
			continue
		}
		for _, n := range nodes {
			if n.Leader && n.ID == i.NodeID {
				if fallback != nil {
					fallback.Close()
				}
				return cli, nil
			}
		}
		if fallback == nil {
			fallback = cli
		} else {
			cli.Close()
		}
	}
	if fallback != nil {
		return fallback, nil
	}
	return nil, fmt.Errorf("cluster %s: %w", cluster, swarm.ErrNoManager)
}

// ReadCluster returns the descriptor and what runs. It returns
// platform.ErrNotFound when the cluster has no descriptor.
func (p *Platform) ReadCluster(ctx context.Context, name string) (policy.Cluster, ClusterStatus, error) {
	var c policy.Cluster
	if err := readJSON(filepath.Join(p.clusterDir(name), "cluster.json"), &c); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return c, ClusterStatus{}, fmt.Errorf("cluster %s: %w", name, platform.ErrNotFound)
		}
		return c, ClusterStatus{}, err
	}
	st, err := p.clusterStatus(ctx, name)
	return c, st, err
}

func (p *Platform) clusterStatus(ctx context.Context, name string) (ClusterStatus, error) {
	var st ClusterStatus
	insts, err := p.instances(name, policy.ManagerPoolName)
	if err != nil {
		return st, err
	}
	for _, i := range insts {
		if i.Running {
			st.LiveManagers++
			st.ManagerAddresses = append(st.ManagerAddresses, net.JoinHostPort(i.Addr, swarm.SwarmPort))
			if st.DockerHost == "" {
				st.DockerHost = i.DockerHost
			}
		}
	}
	if st.LiveManagers == 0 {
		st.Lost = true
		return st, nil
	}
	return st, nil
}

// JoinTokens reads the swarm's join tokens from a manager.
func (p *Platform) JoinTokens(ctx context.Context, cluster string) (swarm.Tokens, error) {
	mgr, err := p.manager(ctx, cluster)
	if err != nil {
		return swarm.Tokens{}, err
	}
	defer mgr.Close()
	return mgr.JoinTokens(ctx)
}

// UpdateCluster applies settings and changes the number of managers in place.
func (p *Platform) UpdateCluster(ctx context.Context, c policy.Cluster) (ClusterStatus, error) {
	if err := c.Validate(); err != nil {
		return ClusterStatus{}, err
	}
	if err := p.checkHost(); err != nil {
		return ClusterStatus{}, err
	}
	var old policy.Cluster
	if err := readJSON(filepath.Join(p.clusterDir(c.Name), "cluster.json"), &old); err != nil {
		return ClusterStatus{}, fmt.Errorf("cluster %s: %w", c.Name, err)
	}
	c.CreatedAt = old.CreatedAt
	mgr, err := p.manager(ctx, c.Name)
	if err != nil {
		return ClusterStatus{}, err
	}
	heartbeat, _ := policy.ParseDuration(c.HeartbeatPeriod)
	err = mgr.Update(ctx, heartbeat, c.Labels)
	if err == nil && c.JoinTokenRotation != "" && c.JoinTokenRotation != old.JoinTokenRotation {
		// A changed trigger rotates both tokens; instances this platform
		// starts later read the new ones from the swarm.
		_, err = mgr.RotateJoinTokens(ctx)
	}
	mgr.Close()
	if err != nil {
		return ClusterStatus{}, err
	}
	insts, err := p.instances(c.Name, policy.ManagerPoolName)
	if err != nil {
		return ClusterStatus{}, err
	}
	live := 0
	for _, i := range insts {
		if i.Running {
			live++
		}
	}
	switch want := int(c.ManagerCount); {
	case want > live:
		err = p.addManagers(ctx, c.Name, want-live)
	case want < live:
		err = p.removeManagers(ctx, c.Name, live-want)
	}
	if err != nil {
		return ClusterStatus{}, err
	}
	if err := writeJSON(filepath.Join(p.clusterDir(c.Name), "cluster.json"), c); err != nil {
		return ClusterStatus{}, err
	}
	if err := p.ensureAgents(ctx, c, !reflect.DeepEqual(old.Agent, c.Agent)); err != nil {
		return ClusterStatus{}, err
	}
	return p.clusterStatus(ctx, c.Name)
}

// DeleteCluster stops every node of the cluster, whatever pool it is in,
// and removes every file, mount and address claim it had.
func (p *Platform) DeleteCluster(ctx context.Context, name string) error {
	// Agents first, so none heals what is going away, nor launches an
	// instance after the list below is read; then workers, then managers,
	// so no manager waits on a departing worker.
	mgrs, err := p.instances(name, policy.ManagerPoolName)
	if err != nil {
		return err
	}
	for i := range mgrs {
		stopAgent(&mgrs[i])
	}
	insts, err := p.instances(name, "")
	if err != nil {
		return err
	}
	var workers, managers []instanceFile
	for _, i := range insts {
		if i.Role == policy.RoleWorker {
			workers = append(workers, i)
		} else {
			managers = append(managers, i)
		}
	}
	// Workers go several at a time: a node's engine takes seconds to stop
	// its containers, and a hundred workers one by one took minutes.
	// Managers go one by one, after them.
	errs := make([]error, len(workers))
	sem := make(chan struct{}, removeParallelism)
	var wg sync.WaitGroup
	for k, i := range workers {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[k] = p.removeInstance(ctx, i)
		}()
	}
	wg.Wait()
	for _, i := range managers {
		errs = append(errs, p.removeInstance(ctx, i))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	var m clusterMeta
	if readJSON(filepath.Join(p.clusterDir(name), "local.json"), &m) == nil {
		p.releaseSlot(name, m.Slot)
	}
	if err := os.RemoveAll(p.clusterDir(name)); err != nil {
		return fmt.Errorf("remove cluster %s: %w", name, err)
	}
	return nil
}
