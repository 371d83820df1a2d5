package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/swarm"
)

// startInstance allocates an address and starts a node's dockerd, returning
// once its engine answers. The node is in no swarm yet.
func (p *Platform) startInstance(ctx context.Context, cluster, pool, role string) (instanceFile, error) {
	return p.startInstanceWith(ctx, cluster, pool, role, nil)
}

// startInstanceWith is startInstance with engine labels that override the
// node's own (a guest's instance id and cluster).
func (p *Platform) startInstanceWith(ctx context.Context, cluster, pool, role string, override map[string]string) (instanceFile, error) {
	f, err := p.launchWith(cluster, pool, role, override)
	if err != nil {
		return f, err
	}
	if err := p.boot(ctx, f); err != nil {
		_ = p.removeInstance(context.Background(), f)
		return f, err
	}
	return f, nil
}

// launch allocates an address and starts the node's process, like a cloud's
// RunInstances: it does not wait for the engine.
func (p *Platform) launch(cluster, pool, role string) (instanceFile, error) {
	return p.launchWith(cluster, pool, role, nil)
}

func (p *Platform) launchWith(cluster, pool, role string, override map[string]string) (instanceFile, error) {
	f, err := p.allocate(cluster, pool, role)
	if err != nil {
		return f, err
	}
	labels := engineLabels(f.Instance)
	for k, v := range override {
		labels[k] = v
	}
	if err := p.startProcess(&f, labels); err != nil {
		_ = p.removeInstance(context.Background(), f)
		return f, err
	}
	return f, nil
}

// boot waits for a launched node's engine to answer and loads the workload image.
func (p *Platform) boot(ctx context.Context, f instanceFile) error {
	cli, err := swarm.Dial(f.DockerHost)
	if err == nil {
		bctx, cancel := context.WithTimeout(ctx, bootTimeout)
		err = cli.WaitPing(bctx)
		cancel()
		cli.Close()
	}
	if err != nil {
		return fmt.Errorf("node %s did not start: %w\ndockerd log:\n%s", f.ID, err, logTail(f.Dir, 8))
	}
	if f.workload != "" {
		if err := loadWorkload(ctx, f, f.workload); err != nil {
			return err
		}
	}
	p.progress("node started", "instance", f.ID, "addr", f.Addr)
	return nil
}

// allocate reserves the next free host address of the cluster and writes the
// instance record, under the cluster lock.
func (p *Platform) allocate(cluster, pool, role string) (instanceFile, error) {
	var f instanceFile
	unlock, err := p.lock(cluster)
	if err != nil {
		return f, err
	}
	defer unlock()
	metaPath := filepath.Join(p.clusterDir(cluster), "local.json")
	var m clusterMeta
	if err := readJSON(metaPath, &m); err != nil {
		return f, fmt.Errorf("cluster %s: %w", cluster, err)
	}
	used := map[string]bool{}
	insts, err := p.instances(cluster, "")
	if err != nil {
		return f, err
	}
	for _, i := range insts {
		used[i.Addr] = true
	}
	// Addresses are handed out round-robin, so a new node does not take the
	// address of a node Swarm may still remember.
	idx := 0
	for try := 0; try < maxNodesPerCluster; try++ {
		n := (m.NextIndex-1+try)%maxNodesPerCluster + 1
		if !used[m.addr(n)] {
			idx = n
			break
		}
	}
	if idx == 0 {
		return f, fmt.Errorf("cluster %s has %d nodes, the most the local platform holds", cluster, maxNodesPerCluster)
	}
	m.NextIndex = idx%maxNodesPerCluster + 1
	if err := writeJSON(metaPath, m); err != nil {
		return f, err
	}
	addr := m.addr(idx)
	f = instanceFile{
		Instance: platform.Instance{
			ID:        fmt.Sprintf("%s-%s-%d", cluster, pool, idx),
			Cluster:   cluster,
			Pool:      pool,
			Role:      role,
			Addr:      addr,
			CreatedAt: time.Now().UTC(),
		},
		Dir:      p.nodeDir(addr),
		workload: m.WorkloadBinary,
	}
	f.DockerHost = "unix://" + socketPath(f.Dir)
	if err := os.MkdirAll(f.Dir, 0o700); err != nil {
		return f, err
	}
	return f, writeInstance(f)
}

func (p *Platform) recordNode(f *instanceFile, nodeID string) error {
	f.NodeID = nodeID
	return writeInstance(*f)
}

// startAndJoin starts a node and joins it to the cluster in the pool's role,
// with the pool's labels. It returns once the node is Ready (and Reachable,
// for managers).
func (p *Platform) startAndJoin(ctx context.Context, cluster string, pool policy.Pool) (instanceFile, error) {
	mgr, err := p.manager(ctx, cluster)
	if err != nil {
		return instanceFile{}, err
	}
	defer mgr.Close()
	pool.Cluster = cluster
	return p.startAndJoinVia(ctx, mgr, pool)
}

// startAndJoinVia starts a node of pool and joins it through mgr; a node
// that does not join is removed again.
func (p *Platform) startAndJoinVia(ctx context.Context, mgr *swarm.Client, pool policy.Pool) (instanceFile, error) {
	f, err := p.startInstance(ctx, pool.Cluster, pool.Name, pool.Role)
	if err != nil {
		return f, err
	}
	if err := p.join(ctx, mgr, &f, pool); err != nil {
		tail := logTail(f.Dir, 5)
		_ = p.removeInstance(context.Background(), f)
		return f, fmt.Errorf("node %s: %w\ndockerd log:\n%s", f.ID, err, tail)
	}
	return f, nil
}

// join joins a started node through mgr and labels it.
func (p *Platform) join(ctx context.Context, mgr *swarm.Client, f *instanceFile, pool policy.Pool) error {
	return p.joinWith(ctx, mgr, f, pool, true)
}

// joinUnlabelled joins a started node without setting its node labels.
func (p *Platform) joinUnlabelled(ctx context.Context, mgr *swarm.Client, f *instanceFile, pool policy.Pool) error {
	return p.joinWith(ctx, mgr, f, pool, false)
}

func (p *Platform) joinWith(ctx context.Context, mgr *swarm.Client, f *instanceFile, pool policy.Pool, label bool) error {
	tokens, err := mgr.JoinTokens(ctx)
	if err != nil {
		return err
	}
	token := tokens.Worker
	if pool.Role == policy.RoleManager {
		token = tokens.Manager
	}
	addrs, err := p.managerAddrs(f.Cluster)
	if err != nil {
		return err
	}
	nc, err := swarm.Dial(f.DockerHost)
	if err != nil {
		return err
	}
	defer nc.Close()
	if err := nc.Join(ctx, f.Addr, addrs, token); err != nil {
		return err
	}
	nodeID, err := nc.LocalNodeID(ctx)
	if err != nil {
		return err
	}
	if err := p.recordNode(f, nodeID); err != nil {
		return err
	}
	if label {
		if err := mgr.SetLabels(ctx, nodeID, nodeLabels(pool, f.Instance)); err != nil {
			return err
		}
	}
	if pool.Role == policy.RoleManager {
		return mgr.WaitNodes(ctx, "manager "+f.ID+" to be Ready and Reachable", func(ns []swarm.Node) bool {
			for _, n := range ns {
				if n.ID == nodeID {
					return n.State == "ready" && n.Reachability == "reachable"
				}
			}
			return false
		})
	}
	return nil
}

// managerAddrs are the swarm addresses of the cluster's live managers.
func (p *Platform) managerAddrs(cluster string) ([]string, error) {
	if host := p.adoptedManager(cluster); host != "" {
		return adoptedManagerAddrs(cluster, host)
	}
	insts, err := p.instances(cluster, policy.ManagerPoolName)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, i := range insts {
		if i.Running && i.NodeID != "" {
			out = append(out, i.Addr+":"+swarm.SwarmPort)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("cluster %s: %w", cluster, swarm.ErrNoManager)
	}
	return out, nil
}

// removeInstance stops a node's processes and deletes its directory.
func (p *Platform) removeInstance(ctx context.Context, f instanceFile) error {
	if err := stopProcesses(ctx, f, 10*time.Second); err != nil {
		return err
	}
	if err := os.RemoveAll(f.Dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove node %s: %w", f.ID, err)
	}
	return nil
}
