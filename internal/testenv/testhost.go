package testenv

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Test hosts run a cloud instance's boot script for real on this machine.
//
// A TestNet is a Linux bridge on the machine; a TestHost is one instance
// plugged into it: its own network namespace (ip netns) with a veth pair
// into the bridge carrying the instance's private address, and its own
// mount and UTS namespaces (unshare), where /etc and /usr/local/bin are
// copy-on-write overlays of the machine's and /etc/docker,
// /var/lib/docker, /run and /var/log are directories of its own. So
// several hosts on one machine each have their own dockerd, socket, unit
// files and agent, and a host's private address is the one the cloud
// (moto) gave its instance: the addresses the boot script reads from the
// cloud are the ones it reaches. Instance metadata is served inside each
// host's network namespace on 169.254.169.254 by AWS's own
// amazon-ec2-metadata-mock (IMDSv2 only), configured with the instance's
// id and address. Package installation needs no stand-in (the commands are
// already installed, so the script's install steps return at once);
// systemd has one, systemctl.sh, first on the script's PATH.
//
// Everything a TestNet and its hosts create is named after the test
// process's pid (prefix testHostPrefix): a run that was killed leaves
// names whose pid is gone, and the next run removes them before it starts
// (RemoveStaleTestHosts). Mounts are made only inside the hosts' private
// mount namespaces, so none ever shows on the machine, and the
// namespaces go away with their last process.

// testHostPrefix begins every network namespace, link and directory of
// test hosts, followed by the owning test process's pid.
const testHostPrefix = "akh"

// TestHostVPC is the private network (a /16) whose subnet
// (TestHostVPC's 10.x.1.0/24) a test creates in moto for instances its
// test hosts stand for: the second octet comes from the test process's
// pid, so two runs at once route different subnets onto their bridges.
func TestHostVPC() (vpc, subnet string) {
	x := 100 + os.Getpid()%100
	return fmt.Sprintf("10.%d.0.0/16", x), fmt.Sprintf("10.%d.1.0/24", x)
}

// MetadataMockVersion is the amazon-ec2-metadata-mock `make tools` builds.
const MetadataMockVersion = "1.13.0"

//go:embed systemctl.sh
var systemctlStandIn []byte

// TestNet is the bridge test hosts are plugged into.
type TestNet struct {
	Bridge string
	// Addr is the bridge's address: the machine as every test host
	// reaches it (moto's forwarder, the agent binary's server). It is in
	// 198.18.0.0/15, the range kept for network tests, so it meets no
	// real network; each host has a route to it.
	Addr   string
	subnet *net.IPNet
	dir    string // the machine's directory of the net and its hosts
	bin    string // stand-ins, first on every host's PATH
	mock   string // amazon-ec2-metadata-mock
	prefix string
	mu     sync.Mutex
	n      int
	hosts  []*TestHost
}

// RequireTestHosts fails the test unless test hosts can run here: root,
// iproute2 (ip), util-linux (unshare, nsenter, setsid), Debian's dockerd,
// the AWS CLI and amazon-ec2-metadata-mock, naming what installs each.
func RequireTestHosts(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("test hosts need root (network and mount namespaces): run the tests as root")
	}
	for cmd, pkg := range map[string]string{"ip": "iproute2", "unshare": "util-linux", "nsenter": "util-linux",
		"setsid": "util-linux", "dockerd": "docker.io", "curl": "curl"} {
		if _, err := exec.LookPath(cmd); err != nil {
			t.Fatalf("%s is not installed: run `%s` (it installs Debian's %s)", cmd, Setup, pkg)
		}
	}
	if _, err := exec.LookPath("aws"); err != nil {
		t.Fatalf("the AWS CLI is not installed: run `%s` (it installs awscli from PyPI)", Setup)
	}
	if _, err := os.Stat(MetadataMockPath()); err != nil {
		t.Fatalf("amazon-ec2-metadata-mock is not built: run `%s` (it builds github.com/aws/amazon-ec2-metadata-mock v%s into %s)",
			Setup, MetadataMockVersion, filepath.Dir(MetadataMockPath()))
	}
}

// MetadataMockPath is where `make tools` puts amazon-ec2-metadata-mock.
func MetadataMockPath() string {
	return ToolPath("ec2-metadata-mock-"+MetadataMockVersion, "ec2-metadata-mock")
}

// ToolPath is where `make tools` caches a tool it builds:
// $TOOLS_DIR/<dir>/<bin>, TOOLS_DIR being ~/.cache/autarky unless set.
func ToolPath(dir, bin string) string {
	tools := os.Getenv("TOOLS_DIR")
	if tools == "" {
		home, _ := os.UserHomeDir()
		tools = filepath.Join(home, ".cache", "autarky")
	}
	return filepath.Join(tools, dir, bin)
}

// NewTestNet removes what killed runs left, then creates the bridge with
// its Addr and a route to subnet (the hosts' subnet, moto's) through
// it. It is removed, with every host, when the test ends.
func NewTestNet(t testing.TB, subnet string) *TestNet {
	t.Helper()
	RequireTestHosts(t)
	_, ipnet, err := net.ParseCIDR(subnet)
	if err != nil {
		t.Fatalf("test net subnet %q: %v", subnet, err)
	}
	RemoveStaleTestHosts(t)
	prefix := testHostPrefix + strconv.Itoa(os.Getpid())
	dir, err := os.MkdirTemp("", prefix+"-")
	if err != nil {
		t.Fatal(err)
	}
	n := &TestNet{Bridge: prefix + "b", Addr: fmt.Sprintf("198.18.%d.1", os.Getpid()%250+1), subnet: ipnet, dir: dir, bin: filepath.Join(dir, "bin"),
		mock: MetadataMockPath(), prefix: prefix}
	t.Cleanup(func() {
		_ = run("ip", "link", "del", n.Bridge)
		_ = run("ip", "route", "del", subnet, "dev", n.Bridge)
		_ = os.RemoveAll(dir)
	})
	if err := os.MkdirAll(n.bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(n.bin, "systemctl"), systemctlStandIn, 0o755); err != nil {
		t.Fatal(err)
	}
	// nf_call_iptables 0: bridged frames between hosts do not go through
	// the machine's iptables (where Docker may drop forwarded traffic).
	for _, args := range [][]string{
		{"link", "add", n.Bridge, "type", "bridge", "nf_call_iptables", "0"},
		{"addr", "add", n.Addr + "/32", "dev", n.Bridge},
		{"link", "set", n.Bridge, "up"},
		{"route", "add", subnet, "dev", n.Bridge, "src", n.Addr},
	} {
		if err := run("ip", args...); err != nil {
			t.Fatalf("test net: %v", err)
		}
	}
	return n
}

// Forward serves, on the bridge, a TCP forwarder to target (host:port or
// an http URL, as moto's endpoint) and returns its http URL as hosts reach
// it. It stops when the test ends.
func (n *TestNet) Forward(t testing.TB, target string) string {
	t.Helper()
	target = strings.TrimPrefix(strings.TrimPrefix(target, "http://"), "https://")
	ln, err := net.Listen("tcp", net.JoinHostPort(n.Addr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	var closing atomic.Bool
	var mu sync.Mutex
	open := map[net.Conn]bool{}
	track := func(c net.Conn, add bool) {
		mu.Lock()
		defer mu.Unlock()
		if add {
			open[c] = true
		} else {
			delete(open, c)
		}
	}
	t.Cleanup(func() {
		closing.Store(true)
		ln.Close()
		mu.Lock()
		for c := range open {
			c.Close()
		}
		mu.Unlock()
		conns.Wait()
	})
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer conns.Done()
				out, err := net.DialTimeout("tcp", target, 5*time.Second)
				if err != nil {
					in.Close()
					return
				}
				track(in, true)
				track(out, true)
				done := make(chan struct{}, 2)
				pipe := func(dst, src net.Conn) {
					_, _ = io.Copy(dst, src)
					if tc, ok := dst.(*net.TCPConn); ok {
						_ = tc.CloseWrite()
					}
					done <- struct{}{}
				}
				go pipe(out, in)
				go pipe(in, out)
				<-done
				<-done
				in.Close()
				out.Close()
				track(in, false)
				track(out, false)
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// Serve serves h on the bridge and returns its http URL as hosts reach
// it; it stops when the test ends.
func (n *TestNet) Serve(t testing.TB, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(n.Addr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// Cmdlines lists the argument lists (joined by spaces) of the processes
// running in the net's hosts now, as ps on the hosts would show them.
func (n *TestNet) Cmdlines() []string {
	n.mu.Lock()
	hosts := slices.Clone(n.hosts)
	n.mu.Unlock()
	var out []string
	for _, h := range hosts {
		if h.netIno == 0 {
			continue
		}
		for _, pid := range processesInNetns(h.netIno) {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil {
				out = append(out, strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " ")))
			}
		}
	}
	return out
}

// HostSpec is the instance a test host stands for.
type HostSpec struct {
	// InstanceID and PrivateIP are the cloud's, served as instance
	// metadata; PrivateIP is the host's address on the bridge.
	InstanceID string
	PrivateIP  string
	// Env is the environment of what the host runs (the boot script, and
	// through systemctl what it starts), beside PATH and HOME.
	Env []string
}

// TestHost is one instance on a TestNet.
type TestHost struct {
	Spec   HostSpec
	Name   string // the network namespace
	net    *TestNet
	dir    string // the host's directories, on the machine
	netIno uint64
	holder *exec.Cmd // keeps the mount and UTS namespaces
	exited chan struct{}
	boots  int
}

// StartHost creates a test host for spec and boots it (Boot); it is
// stopped and removed when the test ends, however the test ends.
func (n *TestNet) StartHost(t testing.TB, spec HostSpec) *TestHost {
	t.Helper()
	ip := net.ParseIP(spec.PrivateIP).To4()
	if ip == nil || !n.subnet.Contains(ip) {
		t.Fatalf("test host %s: private address %q is not in the test net's %s", spec.InstanceID, spec.PrivateIP, n.subnet)
	}
	n.mu.Lock()
	n.n++
	idx := n.n
	h := &TestHost{Spec: spec, Name: fmt.Sprintf("%s-%d", n.prefix, idx), net: n,
		dir: filepath.Join(n.dir, "host"+strconv.Itoa(idx))}
	n.hosts = append(n.hosts, h)
	n.mu.Unlock()
	t.Cleanup(func() {
		if err := h.stop(false); err != nil {
			t.Errorf("test host %s: %v", h.Name, err)
		}
		_ = run("ip", "netns", "del", h.Name)
	})
	for _, d := range []string{"etc", "etc.work", "bin", "bin.work", "etc-docker", "var-lib-docker", "run", "log"} {
		if err := os.MkdirAll(filepath.Join(h.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ones, _ := n.subnet.Mask.Size()
	veth := fmt.Sprintf("%sv%d", n.prefix, idx)
	peer := fmt.Sprintf("%sp%d", n.prefix, idx)
	in := func(args ...string) []string { return append([]string{"-n", h.Name}, args...) }
	for _, args := range [][]string{
		{"netns", "add", h.Name},
		{"link", "add", veth, "type", "veth", "peer", "name", peer},
		{"link", "set", peer, "netns", h.Name},
		{"link", "set", veth, "master", n.Bridge, "up"},
		in("link", "set", peer, "name", "eth0"),
		in("addr", "add", fmt.Sprintf("%s/%d", spec.PrivateIP, ones), "dev", "eth0"),
		in("link", "set", "eth0", "up"),
		in("link", "set", "lo", "up"),
		in("addr", "add", "169.254.169.254/32", "dev", "lo"),
		in("route", "add", n.Addr+"/32", "dev", "eth0"),
		in("route", "add", "default", "via", n.Addr, "dev", "eth0"),
	} {
		if err := run("ip", args...); err != nil {
			t.Fatalf("test host %s: %v", spec.InstanceID, err)
		}
	}
	var st syscall.Stat_t
	if err := syscall.Stat("/run/netns/"+h.Name, &st); err != nil {
		t.Fatalf("test host %s: %v", spec.InstanceID, err)
	}
	h.netIno = st.Ino
	imds, _ := json.Marshal(map[string]any{"metadata": map[string]any{"values": map[string]string{
		"instance-id": spec.InstanceID, "local-ipv4": spec.PrivateIP, "local-hostname": h.Hostname(), "hostname": h.Hostname(),
	}}})
	if err := os.WriteFile(filepath.Join(h.dir, "imds.json"), imds, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := h.Boot(); err != nil {
		t.Fatalf("test host %s: %v", spec.InstanceID, err)
	}
	return h
}

// Hostname is the host name EC2 gives the instance, ip-10-0-1-5.
func (h *TestHost) Hostname() string {
	return "ip-" + strings.ReplaceAll(h.Spec.PrivateIP, ".", "-")
}

// holderScript makes a host's file system, inside its fresh mount and UTS
// namespaces ($1 its host name, $2 its directory on the machine), and
// then keeps them as `sleep`.
//
// The network namespace's own sysfs replaces the machine's /sys (as `ip
// netns exec` does), so /sys/class/net shows the host's interfaces; the
// machine's cgroup mounts are carried over, since dockerd needs them.
const holderScript = `set -e
hostname "$1"
d=$2
mkdir -p "$d/cgroup"
mount --rbind /sys/fs/cgroup "$d/cgroup"
umount -l /sys
mount -t sysfs sysfs /sys
mount --rbind "$d/cgroup" /sys/fs/cgroup
umount -l "$d/cgroup"
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$d/etc,workdir=$d/etc.work" /etc
mkdir -p /etc/docker /etc/systemd/system /var/lib/docker
mount --bind "$d/etc-docker" /etc/docker
mount -t overlay overlay -o "lowerdir=/usr/local/bin,upperdir=$d/bin,workdir=$d/bin.work" /usr/local/bin
mount --bind "$d/var-lib-docker" /var/lib/docker
mount --bind "$d/run" /run
mount --bind "$d/log" /var/log
echo ready
exec sleep infinity
`

// Boot starts the host as a machine starts: a fresh mount and UTS
// namespace over the host's disks (its /run empty) and the instance
// metadata service. It does not run the boot script (RunScript does).
func (h *TestHost) Boot() error {
	h.boots++
	out := filepath.Join(h.dir, fmt.Sprintf("holder-%d.log", h.boots))
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := exec.Command("nsenter", "--net=/run/netns/"+h.Name, "unshare", "--mount", "--uts", "--propagation", "private",
		"--", "sh", "-c", holderScript, "holder", h.Hostname(), h.dir)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the host's namespaces: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	h.holder, h.exited = cmd, exited
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(out)
		if bytes.Contains(b, []byte("ready\n")) {
			break
		}
		select {
		case <-exited:
			return fmt.Errorf("the host's namespaces: %s", b)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the host's namespaces were not ready within 10s: %s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The metadata service is the cloud's, not the instance's: it lives
	// in the host's network namespace but not in its mount namespace.
	mlog, err := os.OpenFile(filepath.Join(h.dir, "imds.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer mlog.Close()
	mock := exec.Command("nsenter", "--net=/run/netns/"+h.Name, h.net.mock, "-c", filepath.Join(h.dir, "imds.json"),
		"-n", "169.254.169.254", "-p", "80", "--imdsv2")
	mock.Stdout, mock.Stderr = mlog, mlog
	mock.Dir = h.dir
	mock.Env = []string{"HOME=" + h.dir, "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	mock.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := mock.Start(); err != nil {
		return fmt.Errorf("start amazon-ec2-metadata-mock: %w", err)
	}
	go func() { _ = mock.Wait() }()
	deadline = time.Now().Add(20 * time.Second)
	for {
		got, err := h.Exec(10*time.Second, "curl", "-fsS", "-X", "PUT", "-H", "X-aws-ec2-metadata-token-ttl-seconds: 60",
			"http://169.254.169.254/latest/api/token")
		if err == nil && got != "" {
			return nil
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(h.dir, "imds.log"))
			return fmt.Errorf("amazon-ec2-metadata-mock does not answer on 169.254.169.254: %v %s\n%s", err, got, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Exec runs a command inside the host (its namespaces) and returns its
// output; it is killed after timeout.
func (h *TestHost) Exec(timeout time.Duration, name string, args ...string) (string, error) {
	cmd := exec.Command("nsenter", append([]string{"--target", strconv.Itoa(h.holder.Process.Pid),
		"--net", "--mount", "--uts", "--", name}, args...)...)
	cmd.Dir = "/"
	cmd.Env = h.env()
	var out LockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return strings.TrimSpace(out.String()), err
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		return out.String(), fmt.Errorf("%s did not finish within %s", name, timeout)
	}
}

// env is the environment of what runs in the host: cloud-init's PATH
// with the stand-ins first and the AWS CLI's directory last, root's home,
// and the spec's variables.
func (h *TestHost) env() []string {
	path := h.net.bin + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	if aws, err := exec.LookPath("aws"); err == nil {
		path += ":" + filepath.Dir(aws)
	}
	env := []string{"PATH=" + path, "HOME=/root", "LANG=C.UTF-8"}
	if v := os.Getenv("PYENV_ROOT"); v != "" {
		env = append(env, "PYENV_ROOT="+v)
	}
	return append(env, h.Spec.Env...)
}

// RunScript runs script as cloud-init runs user data: written to a file
// of mode 0700 and executed, so its #! line picks the shell (/bin/sh,
// dash on Debian). It returns the script's output (standard output and
// error) and its error; the script is killed after timeout.
func (h *TestHost) RunScript(script string, timeout time.Duration) (string, error) {
	dir := filepath.Join(h.dir, "run", "cloud")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "user-data"), []byte(script), 0o700); err != nil {
		return "", err
	}
	logPath := filepath.Join(h.dir, fmt.Sprintf("boot-%d.log", h.boots))
	f, err := os.Create(logPath)
	if err != nil {
		return "", err
	}
	defer f.Close()
	// The script's output goes to a file, not a pipe: what it starts in
	// the background keeps its descriptors, and a pipe would not close.
	cmd := exec.Command("nsenter", "--target", strconv.Itoa(h.holder.Process.Pid), "--net", "--mount", "--uts",
		"--", "/run/cloud/user-data")
	cmd.Dir = "/"
	cmd.Env = h.env()
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		err = fmt.Errorf("the boot script did not finish within %s", timeout)
	}
	b, _ := os.ReadFile(logPath)
	return string(b), err
}

// Log reads a file of the host's /var/log (docker.log, autarky-agent.log).
func (h *TestHost) Log(name string) string {
	b, _ := os.ReadFile(filepath.Join(h.dir, "log", name))
	return string(b)
}

// DockerHost is the host's engine as the machine reaches it: its
// /var/run/docker.sock, seen from outside its mount namespace.
func (h *TestHost) DockerHost() string {
	return "unix://" + filepath.Join(h.dir, "run", "docker.sock")
}

// Reboot stops everything in the host as a shutdown does (SIGTERM, then
// SIGKILL after 30 s), empties its /run, and boots it again: same disks,
// same address and metadata, fresh namespaces. It does not run the boot
// script.
func (h *TestHost) Reboot() error {
	if err := h.stop(true); err != nil {
		return err
	}
	entries, _ := os.ReadDir(filepath.Join(h.dir, "run"))
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(h.dir, "run", e.Name())); err != nil {
			return fmt.Errorf("empty /run: %w", err)
		}
	}
	return h.Boot()
}

// stop ends every process in the host's network namespace: graceful
// sends SIGTERM first and waits up to 30 s (the namespaces' holder and
// the metadata service last); then SIGKILL.
func (h *TestHost) stop(graceful bool) error {
	if h.netIno == 0 {
		return nil
	}
	holder := 0
	if h.holder != nil && h.holder.Process != nil {
		holder = h.holder.Process.Pid
	}
	if graceful {
		for _, pid := range processesInNetns(h.netIno) {
			if pid != holder && !isMetadataMock(pid) {
				_ = syscall.Kill(pid, syscall.SIGTERM)
			}
		}
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			left := 0
			for _, pid := range processesInNetns(h.netIno) {
				if pid != holder && !isMetadataMock(pid) {
					left++
				}
			}
			if left == 0 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for attempt := 0; attempt < 100; attempt++ {
		pids := processesInNetns(h.netIno)
		if len(pids) == 0 {
			if h.exited != nil {
				<-h.exited
			}
			return nil
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("processes left in its network namespace: %v", processesInNetns(h.netIno))
}

func isMetadataMock(pid int) bool {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return bytes.Contains(b, []byte("ec2-metadata-mock"))
}

// processesInNetns lists the live processes in the network namespace
// with inode ino.
func processesInNetns(ino uint64) []int {
	want := fmt.Sprintf("net:[%d]", ino)
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !Alive(pid) {
			continue
		}
		if link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid)); err == nil && link == want {
			pids = append(pids, pid)
		}
	}
	return pids
}

// RemoveStaleTestHosts removes the network namespaces, links and
// directories of test hosts whose test process is gone (a run that was
// killed), with every process still in those namespaces.
func RemoveStaleTestHosts(t testing.TB) {
	t.Helper()
	stale := func(name string) bool {
		rest := strings.TrimPrefix(name, testHostPrefix)
		if rest == name {
			return false
		}
		end := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
		if end <= 0 {
			return false
		}
		pid, _ := strconv.Atoi(rest[:end])
		return pid != os.Getpid() && !Alive(pid)
	}
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !stale(f[0]) {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat("/run/netns/"+f[0], &st) == nil {
			for attempt := 0; attempt < 50; attempt++ {
				pids := processesInNetns(st.Ino)
				if len(pids) == 0 {
					break
				}
				for _, pid := range pids {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		if err := run("ip", "netns", "del", f[0]); err != nil {
			t.Logf("removing a stale test host: %v", err)
		}
	}
	out, _ = exec.Command("ip", "-o", "link", "show").Output()
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if stale(name) {
			// A veth went with its peer's namespace: not found is gone.
			if err := run("ip", "link", "del", name); err != nil && !strings.Contains(err.Error(), "Cannot find device") {
				t.Logf("removing a stale test link: %v", err)
			}
		}
	}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), testHostPrefix+"*"))
	for _, d := range dirs {
		if stale(filepath.Base(d)) {
			_ = os.RemoveAll(d)
		}
	}
}

// init marks every descriptor a test process inherited (beyond standard
// input, output and error) close-on-exec, so what the tests start —
// dockerd nodes, moto, test hosts, Terraform and the provider — does not
// inherit them: `flock /tmp/autarky-swarm.lock go test` hands the lock's
// descriptor down, and a dockerd left running by a killed test would hold
// the lock forever, so no later run could start (and clean up).
func init() { closeInheritedOnExec() }

func closeInheritedOnExec() {
	entries, _ := os.ReadDir("/proc/self/fd")
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}

// run runs a command and returns its error with its output.
func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}
