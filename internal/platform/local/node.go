package local

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
)

// instanceFile is the record of one node process, written before it starts.
type instanceFile struct {
	platform.Instance
	Dir    string `json:"dir"`
	PID    int    `json:"pid"`
	NodeID string `json:"node_id,omitempty"`
	// AgentPID is the autarky-agent beside a manager, when enabled.
	AgentPID int `json:"agent_pid,omitempty"`

	workload string // binary to load as the workload image, from the cluster
}

func (p *Platform) nodeDir(addr string) string { return filepath.Join(p.stateDir, "nodes", addr) }

func socketPath(dir string) string { return filepath.Join(dir, "docker.sock") }

func readInstance(dir string) (instanceFile, error) {
	var f instanceFile
	b, err := os.ReadFile(filepath.Join(dir, "instance.json"))
	if err != nil {
		return f, err
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("%s: %w", filepath.Join(dir, "instance.json"), err)
	}
	return f, nil
}

func writeInstance(f instanceFile) error {
	return writeJSON(filepath.Join(f.Dir, "instance.json"), f)
}

// nodeScript runs as the node's first process: in its own UTS and mount
// namespaces it names the host after the instance, keeps every mount dockerd
// makes private to the node (so a dead node leaves no mount on the host),
// shows its own directory (its working directory) at NodeDir, where its
// containers find the node's socket, and becomes dockerd.
const nodeScript = `set -e; hostname "$0"; mount --make-rprivate /; mkdir -p ` + NodeDir + `; mount --bind "$PWD" ` + NodeDir + `; exec "$AUTARKY_DOCKERD" "$@"`

// startProcess starts dockerd for an instance whose directory already exists.
// The process lives in its own session so it outlives the caller.
func (p *Platform) startProcess(f *instanceFile, engineLabels map[string]string) error {
	dir := f.Dir
	for _, sub := range []string{"data", "exec"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "daemon.json"), []byte("{}\n"), 0o600); err != nil {
		return err
	}
	args := []string{"-c", nodeScript, f.ID,
		"--config-file", filepath.Join(dir, "daemon.json"),
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "dockerd.pid"),
		"--host", "unix://" + socketPath(dir),
		"--iptables=false", "--ip6tables=false", "--bridge=none",
		"--storage-driver=vfs",
		// Several engines on one host must not share containerd state.
		"--containerd-namespace", "autarky-" + f.ID,
		"--containerd-plugins-namespace", "autarky-plugins-" + f.ID,
		// The node's containers live in cgroups of their own, so stopping
		// the node finds them even once dockerd and its shims are gone.
		"--cgroup-parent", cgroupParent(*f),
	}
	for _, k := range sortedKeys(engineLabels) {
		args = append(args, "--label", k+"="+engineLabels[k])
	}
	logf, err := os.OpenFile(filepath.Join(dir, "dockerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command("/bin/sh", args...)
	cmd.Env = append(os.Environ(), "AUTARKY_DOCKERD="+p.dockerd)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Cloneflags: syscall.CLONE_NEWUTS | syscall.CLONE_NEWNS}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start dockerd for %s: %w", f.ID, err)
	}
	f.PID = cmd.Process.Pid
	// Reap the process if it dies while we are still alive; once we exit it
	// is re-parented and keeps running.
	go func() { _ = cmd.Wait() }()
	return writeInstance(*f)
}

// alive reports whether the instance's dockerd process still runs.
func alive(f instanceFile) bool {
	if f.PID <= 0 {
		return false
	}
	if !processRunning(f.PID) {
		return false
	}
	// Guard against pid reuse: the process must still be this node's.
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", f.PID))
	return err == nil && bytes.Contains(cmdline, []byte(f.Dir))
}

// processRunning is true for a process that exists and is not a zombie.
func processRunning(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return false
	}
	state := stat[i+2]
	return state != 'Z' && state != 'X'
}

// cgroupParent is the cgroup under which a node's containers run; the
// address makes it unique on the machine.
func cgroupParent(f instanceFile) string { return "autarky-" + f.Addr }

// nodeProcesses finds every live process that belongs to a node: dockerd,
// its containerd and shims and the agent beside it name the node's
// directory on their command line; its containers run in its cgroup.
func nodeProcesses(f instanceFile) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	cg := []byte("/" + cgroupParent(f) + "/")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() || !processRunning(pid) {
			continue
		}
		if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && bytes.Contains(cmdline, []byte(f.Dir+"/")) {
			pids = append(pids, pid)
			continue
		}
		if groups, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid)); err == nil && bytes.Contains(groups, cg) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// removeCgroups removes the node's (empty) cgroup directories in every
// hierarchy, deepest first.
func removeCgroups(f instanceFile) {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*/" + cgroupParent(f))
	if own, err := os.Stat("/sys/fs/cgroup/" + cgroupParent(f)); err == nil && own.IsDir() {
		roots = append(roots, "/sys/fs/cgroup/"+cgroupParent(f))
	}
	for _, root := range roots {
		var dirs []string
		_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			_ = syscall.Rmdir(dirs[i])
		}
	}
}

// stopProcesses stops a node: SIGTERM to dockerd so it leaves cleanly, then
// SIGKILL to whatever of the node is left after grace.
func stopProcesses(ctx context.Context, f instanceFile, grace time.Duration) error {
	if alive(f) {
		_ = syscall.Kill(f.PID, syscall.SIGTERM)
		deadline := time.Now().Add(grace)
		for alive(f) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}
	for attempt := 0; attempt < 100; attempt++ {
		pids := nodeProcesses(f)
		if len(pids) == 0 {
			removeCgroups(f)
			return nil
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("node %s: processes %v survive SIGKILL", f.ID, nodeProcesses(f))
}

// logTail returns the last lines of a node's dockerd log, for error messages.
func logTail(dir string, lines int) string {
	b, err := os.ReadFile(filepath.Join(dir, "dockerd.log"))
	if err != nil {
		return ""
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}
