package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/swarm"
)

// Adopting a hand-built swarm
//
// A swarm built by hand (dockerd processes someone started and joined with
// `docker swarm init` and `docker swarm join`) is adopted by the agent's
// configuration file (internal/agentconfig), not by Terraform. The local
// platform did not start those processes, so adoption means no more than
// what it can honestly do:
//
//   - The swarm is reached through the manager the agent runs beside (its
//     --docker-host, docker_host in the file), recorded in the state dir
//     as clusters/<name>/adopted.json; no cluster.json is written, since
//     that is the descriptor of a cluster Terraform built.
//   - A node belongs to an adopted pool when its engine was started with
//     the labels every Autarky node carries: autarky.cluster=<cluster>,
//     autarky.pool=<pool> and autarky.instance=<a unique id> (dockerd
//     --label, or "labels" in daemon.json), the labels the aws boot script
//     gives a node. Such a node is one of the pool's instances, running
//     while Swarm does not call it down. Nodes without them (the managers,
//     any node not meant for Autarky) are left alone.
//   - New instances (a replacement, a scale-out) are nodes the platform
//     starts itself, as for a cluster it built: dockerd processes under
//     the state dir, on a loopback range the adopted cluster claims,
//     joined through the manager.
//   - Terminating an adopted node the platform did not start removes it
//     from the swarm (a forced `docker node rm`) and leaves its process
//     alone: stopping a process it did not start is the owner's business.
//     A dead one (the usual case, healing) has nothing left to stop.
//
// Terraform's CreateCluster refuses the name of an adopted cluster while
// its adopted.json is in the state dir, and the agent refuses to adopt a
// cluster Terraform built (platform.Adopt).

// adoptedRecord is clusters/<name>/adopted.json.
type adoptedRecord struct {
	DockerHost string `json:"docker_host"`
	Source     string `json:"source"`
}

func (p *Platform) adoptedFile(cluster string) string {
	return filepath.Join(p.clusterDir(cluster), "adopted.json")
}

// adoptedManager is the Docker endpoint of an adopted cluster's manager,
// "" for a cluster the platform built.
func (p *Platform) adoptedManager(cluster string) string {
	var r adoptedRecord
	if readJSON(p.adoptedFile(cluster), &r) != nil {
		return ""
	}
	return r.DockerHost
}

// refuseAdopted refuses to create a cluster under an adopted cluster's name.
func (p *Platform) refuseAdopted(cluster string) error {
	var r adoptedRecord
	if readJSON(p.adoptedFile(cluster), &r) != nil {
		return nil
	}
	return fmt.Errorf("%w: cluster %q is adopted by an agent's configuration file (%s) in state dir %s: choose another name, or stop that agent and remove %s",
		ErrClusterExists, cluster, r.Source, p.stateDir, p.adoptedFile(cluster))
}

// dialAdoptedManager is a client of an adopted cluster's manager.
func dialAdoptedManager(ctx context.Context, cluster, host string) (*swarm.Client, error) {
	cli, err := swarm.Dial(host)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := cli.Ping(pctx); err != nil {
		cli.Close()
		return nil, fmt.Errorf("cluster %s: its manager at %s: %w", cluster, host, swarm.ErrNoManager)
	}
	return cli, nil
}

// adoptedManagerAddrs are the swarm addresses of an adopted cluster's
// reachable managers, as its manager lists them.
func adoptedManagerAddrs(cluster, host string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cli, err := dialAdoptedManager(ctx, cluster, host)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	nodes, err := cli.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range nodes {
		if n.Role == policy.RoleManager && n.Reachability == "reachable" && n.Addr != "" {
			out = append(out, n.Addr+":"+swarm.SwarmPort)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("cluster %s: %w", cluster, swarm.ErrNoManager)
	}
	return out, nil
}

// AdoptedCluster is the agent's view of a hand-built swarm on this
// machine (see above): the instances are the pool-labelled nodes the
// swarm lists and the nodes the platform started for it; the journal is
// in the state dir as for any cluster.
type AdoptedCluster struct {
	*Cluster
	dockerHost string
}

// Adopted opens the hand-built swarm whose manager is at dockerHost as
// cluster name. It changes nothing until Register.
func (p *Platform) Adopted(name, dockerHost string) *AdoptedCluster {
	return &AdoptedCluster{Cluster: p.Cluster(name), dockerHost: dockerHost}
}

// Register records the adoption in the state dir and claims the loopback
// range of the nodes the platform will start for the cluster (kept across
// restarts of the agent).
func (c *AdoptedCluster) Register(source string) error {
	p := c.p
	unlock, err := p.lock(c.name)
	if err != nil {
		return err
	}
	defer unlock()
	meta := filepath.Join(p.clusterDir(c.name), "local.json")
	if _, err := os.Stat(meta); errors.Is(err, os.ErrNotExist) {
		slot, err := p.claimSlot(c.name)
		if err != nil {
			return err
		}
		if err := writeJSON(meta, clusterMeta{Slot: slot, NextIndex: 1}); err != nil {
			p.releaseSlot(c.name, slot)
			return err
		}
	}
	return writeJSON(p.adoptedFile(c.name), adoptedRecord{DockerHost: c.dockerHost, Source: source})
}

// Instances are the nodes the platform started for the cluster and the
// adopted nodes the manager lists (by their engine labels), a node Swarm
// calls down not running.
func (c *AdoptedCluster) Instances(ctx context.Context) ([]platform.Instance, error) {
	own, err := c.Cluster.Instances(ctx)
	if err != nil {
		return nil, err
	}
	nodes, err := c.adoptedNodes(ctx)
	if err != nil {
		return nil, err
	}
	mine := map[string]bool{}
	for _, in := range own {
		mine[in.ID] = true
	}
	for _, n := range nodes {
		id := n.EngineLabels[policy.LabelInstance]
		if mine[id] {
			continue
		}
		own = append(own, platform.Instance{ID: id, Cluster: c.name, Pool: n.EngineLabels[policy.LabelPool], Role: n.Role,
			Addr: n.Addr, CreatedAt: n.CreatedAt, Running: n.State != "down"})
	}
	return own, nil
}

// adoptedNodes are the swarm's nodes whose engines carry the cluster's
// labels.
func (c *AdoptedCluster) adoptedNodes(ctx context.Context) ([]swarm.Node, error) {
	cli, err := dialAdoptedManager(ctx, c.name, c.dockerHost)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	nodes, err := cli.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	var out []swarm.Node
	for _, n := range nodes {
		l := n.EngineLabels
		if l[policy.LabelCluster] == c.name && l[policy.LabelPool] != "" && l[policy.LabelInstance] != "" {
			out = append(out, n)
		}
	}
	return out, nil
}

// TerminateInstance stops a node the platform started; an adopted node it
// did not start is removed from the swarm, its process left to its owner.
func (c *AdoptedCluster) TerminateInstance(ctx context.Context, id string) error {
	files, err := c.p.instances(c.name, "")
	if err != nil {
		return err
	}
	for _, f := range files {
		if f.ID == id {
			return c.p.removeInstance(ctx, f)
		}
	}
	nodes, err := c.adoptedNodes(ctx)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		if n.EngineLabels[policy.LabelInstance] != id {
			continue
		}
		cli, err := dialAdoptedManager(ctx, c.name, c.dockerHost)
		if err != nil {
			return err
		}
		defer cli.Close()
		if err := cli.Remove(ctx, n.ID, true); err != nil && !strings.Contains(strings.ToLower(err.Error()), "not found") {
			return fmt.Errorf("remove adopted node %s (instance %s) from the swarm: %w", n.ID, id, err)
		}
		c.p.progress("adopted node removed from the swarm; its process is left to its owner", "instance", id, "node", n.ID)
		return nil
	}
	return nil
}

// openAdopted is the agent's view of an adopted cluster: the file's
// configuration over the hand-built swarm, refused when Terraform built a
// cluster of that name here.
func openAdopted(ctx context.Context, p *Platform, s platform.AgentSettings) (platform.Opened, error) {
	inner := p.Adopted(s.Cluster, s.DockerHost)
	cl, err := platform.Adopt(ctx, inner, s.Adopt, p.Where())
	if err != nil {
		return platform.Opened{}, err
	}
	if s.Check {
		// check-config looks, and records nothing.
		return platform.Opened{Cluster: cl}, nil
	}
	if err := inner.Register(s.Adopt.Source); err != nil {
		return platform.Opened{}, err
	}
	return platform.Opened{Cluster: cl}, nil
}
