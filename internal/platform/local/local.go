// Package local is the platform of real dockerd processes on this machine.
//
// A node is a dockerd with its own loopback address (127.a.b.n), data root,
// exec root, unix socket, pid file and log under the state directory, in its
// own UTS and mount namespaces. Nodes form a real Swarm over their loopback
// addresses; killing a node's process is a real node failure. Each cluster
// claims a /24 of 127.0.0.0/8 machine-wide, so clusters of different state
// directories (and parallel tests) coexist. It needs root and Debian's
// docker.io.
//
// An agent on the machine starts and stops nodes itself. An agent in a
// container (the Swarm service of internal/packaging's stack file) cannot
// start a process that outlives its container; it asks the launcher,
// `autarky-agent launcher`, a root process of the machine serving the
// instance calls on a 0600 unix socket in the state dir, as an agent on a
// cloud asks the cloud's API (launcher.go). Every node shows its own
// directory, and so its Docker socket, at NodeDir in its mount namespace,
// the one path the stack file mounts on every manager.
//
// A swarm built by hand, whose engines the platform did not start, can be
// adopted by the agent's configuration file: its labelled engines become a
// pool's first instances, and the platform starts the pool's new ones
// (adopt.go says what adoption can and cannot mean here).
package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/swarm"
)

// slotDir is where clusters claim their address ranges, machine-wide.
var slotDir = "/run/autarky/slots"

// maxNodesPerCluster is what one /24 holds.
const maxNodesPerCluster = 254

// Platform manages clusters of dockerd processes under one state directory.
type Platform struct {
	stateDir string
	dockerd  string
	progress platform.Progress
	opts     Options
	launcher *launcherClient // Options.Launcher's
}

// Options are optional settings of the platform.
type Options struct {
	// WorkloadBinary, when set, is a static executable loaded into every node
	// of clusters created from now on as the image autarky/workload:latest.
	WorkloadBinary string
	// Launcher, when set, is the socket of `autarky-agent launcher`: the
	// agent's clusters start, stop and list instances through it (an
	// agent in a container; see launcher.go).
	Launcher string
}

// New opens the platform at stateDir. It fails early, naming the fix, when
// the machine cannot run nodes.
func New(stateDir string, progress platform.Progress, opts Options) (*Platform, error) {
	stateDir = filepath.Clean(stateDir)
	if err := policy.ValidateStateDir(stateDir); err != nil {
		return nil, err
	}
	if opts.WorkloadBinary != "" {
		if err := policy.ValidateWorkloadBinary(opts.WorkloadBinary); err != nil {
			return nil, err
		}
	}
	if progress == nil {
		progress = platform.NoProgress
	}
	p := &Platform{stateDir: stateDir, progress: progress, opts: opts}
	if opts.Launcher != "" {
		p.launcher = newLauncherClient(opts.Launcher)
	}
	return p, nil
}

// StateDir is the platform's state directory.
func (p *Platform) StateDir() string { return p.stateDir }

// checkHost verifies what starting a node needs.
func (p *Platform) checkHost() error {
	if p.dockerd != "" {
		return nil
	}
	if os.Geteuid() != 0 {
		return errors.New("the local platform runs dockerd processes and needs root: run terraform as root")
	}
	path, err := exec.LookPath("dockerd")
	if err != nil {
		return errors.New("dockerd is not installed: install Debian's docker.io (apt-get install docker.io, or make tools)")
	}
	for _, tool := range []string{"hostname", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is not installed: the local platform needs it to start nodes", tool)
		}
	}
	p.dockerd = path
	return nil
}

func (p *Platform) clusterDir(name string) string {
	return filepath.Join(p.stateDir, "clusters", name)
}

func (p *Platform) poolFile(cluster, pool string) string {
	return filepath.Join(p.clusterDir(cluster), "pools", pool+".json")
}

// clusterMeta is the local platform's own record of a cluster.
type clusterMeta struct {
	Slot           int    `json:"slot"`
	NextIndex      int    `json:"next_index"`
	WorkloadBinary string `json:"workload_binary,omitempty"`
}

// addr is the loopback address of host index n in the cluster's range.
func (m clusterMeta) addr(n int) string {
	return fmt.Sprintf("127.%d.%d.%d", 64+m.Slot/256, m.Slot%256, n)
}

// lock takes the cluster's exclusive lock; it serialises every change of a
// cluster's records across processes (terraform runs resources in parallel).
func (p *Platform) lock(cluster string) (unlock func(), err error) {
	dir := p.clusterDir(cluster)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	unlock, err = flockFile(context.Background(), filepath.Join(dir, ".lock"))
	if err != nil {
		return nil, fmt.Errorf("lock cluster %s: %w", cluster, err)
	}
	return unlock, nil
}

// flockFile takes an exclusive flock on path (created if need be), waiting
// for it as long as ctx lets it.
func flockFile(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	wait := time.Millisecond
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { _ = unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, err
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// claimSlot claims a free /24 machine-wide for a cluster. A claim whose
// cluster no longer records it is stale and is taken over.
func (p *Platform) claimSlot(cluster string) (int, error) {
	if err := os.MkdirAll(slotDir, 0o700); err != nil {
		return 0, fmt.Errorf("address ranges: %w", err)
	}
	owner := p.clusterDir(cluster)
	for slot := 1; slot < 64*256; slot++ {
		path := filepath.Join(slotDir, strconv.Itoa(slot))
		err := os.Mkdir(path, 0o700)
		if errors.Is(err, os.ErrExist) {
			if !p.slotStale(path, slot) {
				continue
			}
			_ = os.RemoveAll(path)
			err = os.Mkdir(path, 0o700)
		}
		if err != nil {
			continue
		}
		if rangeInUse(slot) {
			// A process outside any record (one a crash left behind)
			// still listens in this range: not this one.
			_ = os.RemoveAll(path)
			continue
		}
		if err := os.WriteFile(filepath.Join(path, "owner"), []byte(owner), 0o600); err != nil {
			return 0, err
		}
		return slot, nil
	}
	return 0, errors.New("no free loopback address range: destroy unused local clusters")
}

// rangeInUse reports whether the first addresses of slot's range have a
// swarm port bound already.
func rangeInUse(slot int) bool {
	m := clusterMeta{Slot: slot}
	for n := 1; n <= 3; n++ {
		ln, err := net.Listen("tcp", net.JoinHostPort(m.addr(n), swarm.SwarmPort))
		if err != nil {
			return true
		}
		ln.Close()
	}
	return false
}

func (p *Platform) slotStale(path string, slot int) bool {
	owner, err := os.ReadFile(filepath.Join(path, "owner"))
	if err != nil {
		// Being written right now by another claimant: not stale.
		return false
	}
	var m clusterMeta
	if err := readJSON(filepath.Join(string(owner), "local.json"), &m); err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	return m.Slot != slot
}

func (p *Platform) releaseSlot(cluster string, slot int) {
	path := filepath.Join(slotDir, strconv.Itoa(slot))
	owner, err := os.ReadFile(filepath.Join(path, "owner"))
	if err == nil && string(owner) == p.clusterDir(cluster) {
		_ = os.RemoveAll(path)
	}
}

// instances lists every instance of a cluster (pool "" = all pools),
// dead ones included, in creation order.
func (p *Platform) instances(cluster, pool string) ([]instanceFile, error) {
	entries, err := os.ReadDir(filepath.Join(p.stateDir, "nodes"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []instanceFile
	for _, e := range entries {
		f, err := readInstance(filepath.Join(p.stateDir, "nodes", e.Name()))
		if err != nil {
			continue // a node directory being created or removed right now
		}
		if f.Cluster != cluster || (pool != "" && f.Pool != pool) {
			continue
		}
		f.Running = alive(f)
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// writeJSON replaces path atomically with v as indented JSON.
func writeJSON(path string, v any) error {
	b, err := marshalJSON(v)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return writeFileAtomic(path, b)
}

// marshalJSON is the form every store file is written in.
func marshalJSON(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// writeFileAtomic replaces path with data so that a reader sees the old
// file or the new one, whole, never a mix, and the new one survives a
// crash once this returns: a temporary file of its own in the same
// directory (concurrent writers never share one), written and synced,
// renamed over path, and the directory synced. The temporary file is
// removed on any failure.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	closed := false
	defer func() {
		if err != nil {
			if !closed {
				_ = f.Close()
			}
			_ = os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	closed = true
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes a rename or removal in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// nodeLabels are the Swarm node labels of an instance: the pool's labels plus
// Autarky's own, which win.
func nodeLabels(pool policy.Pool, inst platform.Instance) map[string]string {
	out := map[string]string{}
	for k, v := range pool.Labels {
		out[k] = v
	}
	for k, v := range engineLabels(inst) {
		out[k] = v
	}
	return out
}

func engineLabels(inst platform.Instance) map[string]string {
	return map[string]string{
		policy.LabelCluster:  inst.Cluster,
		policy.LabelPool:     inst.Pool,
		policy.LabelInstance: inst.ID,
	}
}

// Where says where the platform keeps clusters, for messages.
func (p *Platform) Where() string { return "state dir " + p.stateDir }

// HasCluster reports whether the state dir holds cluster's descriptor.
func (p *Platform) HasCluster(ctx context.Context, cluster string) (bool, error) {
	_, err := p.Cluster(cluster).Descriptor(ctx)
	if errors.Is(err, platform.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}
