package aws

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/autarky/terraform-provider-autarky/internal/packaging"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/swarm"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// The boot script every instance runs, run for real. The provider's own
// code creates a cluster of three managers and a pool of two workers in
// moto; for every instance moto has in service, a test host (its own
// network, mount and UTS namespaces on this machine, with the instance's
// private address: testenv.TestHost) runs the rendered user data as
// cloud-init does, /bin/sh executing the file, with instance metadata
// from amazon-ec2-metadata-mock, the real AWS CLI pointed at moto, Debian's
// dockerd and the real autarky-agent downloaded over HTTP. Only package
// installation (nothing to install) and systemd (testenv/systemctl.sh)
// are stood in for. The three managers boot at once: the SSM init lock
// must let exactly one initialise the swarm. Every node must be Ready in
// that one swarm with its labels, every manager's agent running; a
// reboot (fresh namespaces, same disks) and a rerun of the script on the
// initialising manager and on a worker must change nothing.
//
// It logs the boot figure: instance in service in moto to its node Ready
// through the real script.
func TestBootScriptOnTestHosts(t *testing.T) {
	testenv.RequireLocalPlatform(t)
	testenv.RequireTestHosts(t)
	ctx := context.Background()
	moto := testenv.StartMoto(t)
	c := NewClients(testConfig(moto), Config{Retry: fastRetry}, nil)
	ami, _, _ := testenv.MotoNetwork(t, moto)
	// The instances' subnet is this run's own (TestHostVPC): its route
	// onto the test bridge meets no other run's.
	vpcCIDR, subnetCIDR := testenv.TestHostVPC()
	vpc, err := c.EC2.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: awsv2.String(vpcCIDR)})
	if err != nil {
		t.Fatal(err)
	}
	sn, err := c.EC2.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: vpc.Vpc.VpcId, CidrBlock: awsv2.String(subnetCIDR),
		AvailabilityZone: awsv2.String(testenv.MotoRegion + "a")})
	if err != nil {
		t.Fatal(err)
	}
	sgOut, err := c.EC2.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{VpcId: vpc.Vpc.VpcId,
		GroupName: awsv2.String("swarm"), Description: awsv2.String("swarm nodes")})
	if err != nil {
		t.Fatal(err)
	}
	subnet, sg := awsv2.ToString(sn.Subnet.SubnetId), awsv2.ToString(sgOut.GroupId)
	tnet := testenv.NewTestNet(t, subnetCIDR)
	endpoint := tnet.Forward(t, moto)

	agentBin := testenv.AgentBinary(t)
	agentBytes, err := os.ReadFile(agentBin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(agentBytes)
	var downloads atomic.Int32
	agentURL := tnet.Serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		downloads.Add(1)
		http.ServeFile(w, r, agentBin)
	})) + "/autarky-agent"

	const cluster = "boot"
	p := NewPlatform(c, nil)
	p.Poll = 100 * time.Millisecond
	cl := policy.Cluster{Name: cluster, Platform: policy.PlatformAWS, ManagerCount: 3, HeartbeatPeriod: "5s",
		AWS:   &policy.AWS{AMI: ami, InstanceType: "t3.micro", Subnets: []string{subnet}, SecurityGroups: []string{sg}},
		Agent: &policy.Agent{Enabled: true, EvaluationInterval: "2s", BinaryURL: agentURL, BinarySHA256: hex.EncodeToString(sum[:])}}
	env := []string{"AWS_ENDPOINT_URL=" + endpoint, "AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing",
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null"}

	b := &bootRun{t: t, c: c, ready: map[string]time.Time{}, inService: map[string]time.Time{}}
	stopWatch := b.watchReady()
	defer stopWatch()

	if _, err := p.CreateCluster(ctx, cl); err != nil {
		t.Fatal(err)
	}
	// While the hosts boot, no process in them may have a join token (or
	// the agents' bearer token) among its arguments, where ps shows it.
	secrets := []string{"SWMTKN-"}
	if tok, err := c.SSM.GetParameter(ctx, &ssm.GetParameterInput{Name: awsv2.String(AlertTokenParameter(cluster)), WithDecryption: awsv2.Bool(true)}); err == nil {
		secrets = append(secrets, awsv2.ToString(tok.Parameter.Value))
	}
	stopArgv := b.watchArgv(tnet, secrets)
	defer stopArgv()
	managers := b.startGroup(tnet, GroupName(cluster, policy.ManagerPoolName), policy.RoleManager, env)
	pool := policy.Pool{Cluster: cluster, Name: "web", Role: policy.RoleWorker, MinSize: 2, MaxSize: 3, DesiredSize: 2,
		Labels: map[string]string{"tier": "web"}, WaitForCapacityTimeout: "1m"}
	if _, err := p.CreatePool(ctx, pool, time.Minute); err != nil {
		t.Fatal(err)
	}
	workers := b.startGroup(tnet, GroupName(cluster, "web"), policy.RoleWorker, env)
	b.wg.Wait()
	all := append(slices.Clone(managers), workers...)
	for _, h := range all {
		if h.err != nil || !strings.Contains(h.out, "autarky: done") {
			t.Fatalf("the boot script on %s (%s) failed: %v\n%s\ndocker.log tail:\n%s", h.ID, h.role, h.err, h.out, tail(h.Log("docker.log"), 20))
		}
		// Package installation is not stood in for: curl, the AWS CLI
		// and Docker are installed, and the script must find them.
		for _, what := range []string{"installing curl", "installing the AWS CLI", "installing Docker"} {
			if strings.Contains(h.out, what) {
				t.Fatalf("the boot script on %s went on to install packages (%q): it did not find what is installed\n%s", h.ID, what, h.out)
			}
		}
	}
	b.waitReady(all, 2*time.Minute)
	stopWatch()
	stopArgv()
	for _, h := range all {
		// The script's private directory for tokens went when it exited.
		if left, _ := h.Exec(10*time.Second, "sh", "-c", "ls -d /run/autarky.* 2>/dev/null || true"); left != "" {
			t.Fatalf("the boot script on %s left %s", h.ID, left)
		}
	}

	// Exactly one manager initialised the swarm: the one whose id is in the
	// init lock.
	var initer *bootHost
	for _, h := range managers {
		if strings.Contains(h.out, "initialising the swarm") {
			if initer != nil {
				t.Fatalf("two managers initialised a swarm: %s and %s", initer.ID, h.ID)
			}
			initer = h
		}
	}
	if initer == nil {
		t.Fatalf("no manager initialised the swarm")
	}
	if lock := b.param(InitLockParameter(cluster)); lock.value != initer.ID || lock.version != 1 {
		t.Fatalf("init lock: %+v, want %s at version 1", lock, initer.ID)
	}
	before := b.assertSwarm(managers, workers)
	tokens := map[string]int64{}
	for _, role := range []string{policy.RoleManager, policy.RoleWorker} {
		tokens[role] = b.param(TokenParameter(cluster, role)).version
	}
	for _, h := range managers {
		if !strings.Contains(h.Log("autarky-agent.log"), `"@message":"child ready"`) {
			t.Fatalf("the agent on %s never sent READY=1:\n%s", h.ID, tail(h.Log("autarky-agent.log"), 30))
		}
		resp, err := http.Get("http://" + h.PrivateIP + ":" + fmt.Sprint(policy.AgentPort) + "/metrics")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("the agent on %s does not serve /metrics: %v %v", h.ID, err, resp)
		}
		resp.Body.Close()
		// An operator's first look, as root on the manager: no flags. The
		// agent listens on the private address and wants its token; the
		// boot script left both where the command looks.
		out, err := h.Exec(30*time.Second, "/usr/local/bin/autarky-agent", "status")
		if err != nil || !strings.Contains(out, "cluster "+cluster+" — agent on node") {
			t.Fatalf("autarky-agent status on %s: %v\n%s", h.ID, err, out)
		}
		checkAgentUnit(t, h)
	}
	if n := downloads.Load(); n != 3 {
		t.Fatalf("the agent binary was downloaded %d times, want 3 (once per manager)", n)
	}
	guideSystemdInstall(t, managers[1], agentBin)
	// The workers cannot label their own nodes: the leader's agent does.
	b.waitWorkersLabelled(managers[0], workers, time.Minute)

	b.report(all)

	// Reboot the manager that initialised the swarm, and a worker: the
	// script runs again and changes nothing.
	for _, h := range []*bootHost{initer, workers[0]} {
		start := time.Now()
		if err := h.Reboot(); err != nil {
			t.Fatalf("reboot %s: %v", h.ID, err)
		}
		rebooted := time.Now()
		out, err := h.RunScript(h.script, 5*time.Minute)
		ran := time.Since(rebooted)
		if err != nil || !strings.Contains(out, "autarky: done") {
			t.Fatalf("the boot script after a reboot of %s failed: %v\n%s\ndocker.log tail:\n%s", h.ID, err, out, tail(h.Log("docker.log"), 20))
		}
		if !strings.Contains(out, "already a member of the swarm") || strings.Contains(out, "initialising") ||
			strings.Contains(out, "joined") || strings.Contains(out, "installing") {
			t.Fatalf("after a reboot of %s the script did not find its node a member:\n%s", h.ID, out)
		}
		b.waitReadyAgain(managers, h, 2*time.Minute)
		t.Logf("reboot of %s (%s): shut down and up in %s, script rerun in %s, node Ready again %s after the reboot began", h.ID, h.role,
			rebooted.Sub(start).Round(100*time.Millisecond), ran.Round(100*time.Millisecond), time.Since(start).Round(100*time.Millisecond))
	}
	// A leader change puts the nodes in unknown until they report to the
	// new leader.
	b.waitAllReady(managers[0], len(all), time.Minute)
	after := b.assertSwarm(managers, workers)
	if before != after {
		t.Fatalf("the swarm changed across the reboots:\nbefore %s\nafter  %s", before, after)
	}
	if lock := b.param(InitLockParameter(cluster)); lock.value != initer.ID || lock.version != 1 {
		t.Fatalf("init lock after the reboots: %+v", lock)
	}
	for role, v := range tokens {
		if got := b.param(TokenParameter(cluster, role)).version; got != v {
			t.Fatalf("the %s token parameter went from version %d to %d across the reboots", role, v, got)
		}
	}
	if n := downloads.Load(); n != 3 {
		t.Fatalf("the agent binary was downloaded %d times after the reboot, want still 3", n)
	}
	if !strings.Contains(tail(initer.Log("autarky-agent.log"), 200), `"@message":"child ready"`) {
		t.Fatalf("the agent on %s is not running after the reboot", initer.ID)
	}
}

// checkAgentUnit checks how a manager runs its agent: the unit installed
// is the one this repository ships (internal/packaging, which the agent
// prints), its environment file holds the manager's flags, and the agent
// runs as the unit's user, not root, with no capability, reading its
// token file through its group (root:autarky-agent 0640).
func checkAgentUnit(t *testing.T, h *bootHost) {
	t.Helper()
	unit, err := h.Exec(10*time.Second, "cat", packaging.UnitPath)
	if err != nil || unit != strings.TrimSpace(packaging.Unit) {
		t.Fatalf("%s on %s is not the shipped unit (internal/packaging/%s): %v\n%s", packaging.UnitPath, h.ID, packaging.UnitName, err, unit)
	}
	env, err := h.Exec(10*time.Second, "cat", packaging.EnvironmentFile)
	want := packaging.FlagsVariable + "=--cluster boot --platform aws --region " + testenv.MotoRegion + " --listen " + h.PrivateIP + ":9910 " +
		"--alert-token-file " + policy.AgentTokenFile + " --evaluation-interval 2s --log-format json"
	if err != nil || env != want {
		t.Fatalf("%s on %s: %v\n%s\nwant\n%s", packaging.EnvironmentFile, h.ID, err, env, want)
	}
	out, err := h.Exec(10*time.Second, "sh", "-c", `pid=$(cat /run/autarky-agent/autarky-agent.pid) && grep -E '^(Uid|Groups|CapEff|CapBnd|NoNewPrivs):' /proc/$pid/status && stat -c '%U:%G %a' `+policy.AgentTokenFile+` && id -u `+packaging.User)
	if err != nil {
		t.Fatalf("the agent's process on %s: %v\n%s", h.ID, err, out)
	}
	fields := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		k, v, _ := strings.Cut(line, ":")
		fields[k] = strings.Join(strings.Fields(v), " ")
	}
	lines := strings.Split(out, "\n")
	uid := lines[len(lines)-1]
	if !strings.HasPrefix(fields["Uid"], uid+" ") || uid == "0" || fields["CapEff"] != "0000000000000000" ||
		fields["CapBnd"] != "0000000000000000" || fields["NoNewPrivs"] != "1" || lines[len(lines)-2] != "root:"+packaging.User+" 640" {
		t.Fatalf("the agent on %s does not run as %s (uid %s) without capabilities and new privileges, or its token file is not root:%s 0640:\n%s",
			h.ID, packaging.User, uid, packaging.User, out)
	}
}

// guideSystemdInstall runs the agent-service guide's systemd block on a
// booted manager, as root from a directory holding bin/autarky-agent, with
// the guide's example flags replaced by this manager's (the one
// placeholder the guide names): it installs the same unit and user the
// boot script did, and the agent it restarts under the unit is ready
// (systemctl waits for READY=1) and runs as the unit says.
func guideSystemdInstall(t *testing.T, h *bootHost, agentBin string) {
	t.Helper()
	const example = "--cluster prod --platform aws --region eu-west-1 --listen 10.0.1.10:9910 --alert-token-file /etc/autarky/alert-token"
	text := testenv.DocBlock(t, "templates/guides/agent-service.md.tmpl", "systemd-install")
	if !strings.Contains(text, example) {
		t.Fatalf("the guide's systemd block no longer holds the example flags %q", example)
	}
	flags := "--cluster boot --platform aws --region " + testenv.MotoRegion + " --listen " + h.PrivateIP + ":9910 " +
		"--alert-token-file " + policy.AgentTokenFile + " --evaluation-interval 2s --log-format json"
	text = strings.ReplaceAll(text, example, flags)
	dir := t.TempDir()
	b, err := os.ReadFile(agentBin)
	if err == nil {
		err = os.Mkdir(dir+"/bin", 0o755)
	}
	if err == nil {
		err = os.WriteFile(dir+"/bin/autarky-agent", b, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	if out, err := h.Exec(3*time.Minute, "env", "-C", dir, "bash", "-euo", "pipefail", "-c", text); err != nil {
		t.Fatalf("the guide's systemd block on %s: %v\n%s", h.ID, err, out)
	}
	checkAgentUnit(t, h)
}

// bootRun is one run of TestBootScriptOnTestHosts: the hosts, when their
// instances were in service and when their nodes were first Ready.
type bootRun struct {
	t         *testing.T
	c         *Clients
	wg        sync.WaitGroup
	mu        sync.Mutex
	hosts     []*bootHost
	inService map[string]time.Time
	ready     map[string]time.Time
}

type bootHost struct {
	*testenv.TestHost
	ID, PrivateIP, role string
	script              string
	out                 string
	err                 error
	took                time.Duration // the script's own run time
}

// startGroup starts a test host for every instance in service in group
// and runs the group's user data on each, all at once, in the background.
func (b *bootRun) startGroup(tnet *testenv.TestNet, group, role string, env []string) []*bootHost {
	t := b.t
	t.Helper()
	ctx := context.Background()
	g, err := b.c.AutoScaling.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{group}})
	if err != nil || len(g.AutoScalingGroups) != 1 {
		t.Fatalf("describe %s: %v", group, err)
	}
	now := time.Now()
	var ids []string
	for _, in := range g.AutoScalingGroups[0].Instances {
		if in.LifecycleState == "InService" {
			ids = append(ids, awsv2.ToString(in.InstanceId))
		}
	}
	if len(ids) == 0 {
		t.Fatalf("%s has no instance in service", group)
	}
	script := userDataOf(t, b.c, group)
	out, err := b.c.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids})
	if err != nil {
		t.Fatal(err)
	}
	var hosts []*bootHost
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			id, ip := awsv2.ToString(in.InstanceId), awsv2.ToString(in.PrivateIpAddress)
			b.mu.Lock()
			b.inService[id] = now
			b.mu.Unlock()
			h := &bootHost{ID: id, PrivateIP: ip, role: role, script: script}
			h.TestHost = tnet.StartHost(t, testenv.HostSpec{InstanceID: id, PrivateIP: ip, Env: env})
			hosts = append(hosts, h)
		}
	}
	sort.Slice(hosts, func(i, j int) bool { return hosts[i].ID < hosts[j].ID })
	b.mu.Lock()
	b.hosts = append(b.hosts, hosts...)
	b.mu.Unlock()
	for _, h := range hosts {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			start := time.Now()
			h.out, h.err = h.RunScript(h.script, 6*time.Minute)
			h.took = time.Since(start)
		}()
	}
	return hosts
}

// watchReady polls every manager host's engine for the swarm's nodes and
// notes when each instance's node (by its autarky.instance engine label)
// is first Ready, until stopped.
func (b *bootRun) watchReady() (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	clients := map[string]*swarm.Client{}
	go func() {
		defer close(finished)
		defer func() {
			for _, c := range clients {
				c.Close()
			}
		}()
		for {
			select {
			case <-done:
				return
			case <-time.After(100 * time.Millisecond):
			}
			b.mu.Lock()
			hosts := slices.Clone(b.hosts)
			b.mu.Unlock()
			for _, h := range hosts {
				if h.role != policy.RoleManager {
					continue
				}
				c := clients[h.ID]
				if c == nil {
					var err error
					if c, err = swarm.Dial(h.DockerHost()); err != nil {
						continue
					}
					clients[h.ID] = c
				}
				cctx, cancel := context.WithTimeout(context.Background(), time.Second)
				nodes, err := c.Nodes(cctx)
				cancel()
				if err != nil {
					continue
				}
				now := time.Now()
				b.mu.Lock()
				for _, n := range nodes {
					id := n.EngineLabels[policy.LabelInstance]
					if _, seen := b.ready[id]; !seen && id != "" && n.State == "ready" {
						b.ready[id] = now
					}
				}
				b.mu.Unlock()
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); <-finished }) }
}

// watchArgv samples, every 20 ms until stopped, the argument lists of
// every process in the hosts, and fails the test (when stopped) if one
// held a secret.
func (b *bootRun) watchArgv(tnet *testenv.TestNet, secrets []string) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	var seen []string
	samples := 0
	go func() {
		defer close(finished)
		for {
			for _, cmd := range tnet.Cmdlines() {
				for _, s := range secrets {
					if strings.Contains(cmd, s) {
						seen = append(seen, cmd)
					}
				}
			}
			samples++
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			<-finished
			if len(seen) > 0 {
				b.t.Errorf("processes in the hosts had a token among their arguments (ps shows them): %d seen, first %q", len(seen), seen[0])
			}
			b.t.Logf("argument lists sampled %d times: no token", samples)
		})
	}
}

// waitReady waits until every host's node was seen Ready.
func (b *bootRun) waitReady(hosts []*bootHost, timeout time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b.mu.Lock()
		missing := []string{}
		for _, h := range hosts {
			if _, ok := b.ready[h.ID]; !ok {
				missing = append(missing, h.ID)
			}
		}
		b.mu.Unlock()
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("nodes never Ready: %v", missing)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// nodes lists the swarm's nodes through a manager host's engine.
func (b *bootRun) nodes(h *bootHost) []swarm.Node {
	b.t.Helper()
	c, err := swarm.Dial(h.DockerHost())
	if err != nil {
		b.t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nodes, err := c.Nodes(ctx)
	if err != nil {
		b.t.Fatalf("node list on %s: %v", h.ID, err)
	}
	return nodes
}

// assertSwarm checks the one swarm of the hosts against moto and returns
// what must not change across reboots: the cluster id and every
// instance's node id.
func (b *bootRun) assertSwarm(managers, workers []*bootHost) string {
	t := b.t
	t.Helper()
	clusterIDs := map[string]bool{}
	for _, h := range managers {
		clusterIDs[testenv.Docker(t, h.DockerHost(), "info", "--format", "{{.Swarm.Cluster.ID}}")] = true
	}
	if len(clusterIDs) != 1 {
		t.Fatalf("the managers are in %d swarms: %v", len(clusterIDs), clusterIDs)
	}
	nodes := b.nodes(managers[0])
	if len(nodes) != len(managers)+len(workers) {
		t.Fatalf("the swarm has %d nodes, want %d: %+v", len(nodes), len(managers)+len(workers), nodes)
	}
	byInstance := map[string]swarm.Node{}
	leaders := 0
	for _, n := range nodes {
		byInstance[n.EngineLabels[policy.LabelInstance]] = n
		if n.Leader {
			leaders++
		}
	}
	if leaders != 1 {
		t.Fatalf("%d leaders: %+v", leaders, nodes)
	}
	var ids []string
	for _, hs := range [][]*bootHost{managers, workers} {
		for _, h := range hs {
			n, ok := byInstance[h.ID]
			switch {
			case !ok:
				t.Fatalf("no node has the engine label autarky.instance=%s: %+v", h.ID, nodes)
			case n.State != "ready" || n.Role != h.role || n.Addr != h.PrivateIP:
				t.Fatalf("node of %s: state %s role %s address %s, want ready, %s, %s", h.ID, n.State, n.Role, n.Addr, h.role, h.PrivateIP)
			case n.EngineLabels[policy.LabelCluster] != "boot" || n.Hostname != h.Hostname():
				t.Fatalf("node of %s: engine labels %v host name %s", h.ID, n.EngineLabels, n.Hostname)
			case h.role == policy.RoleManager && n.Reachability != "reachable":
				t.Fatalf("manager %s is %s", h.ID, n.Reachability)
			case h.role == policy.RoleManager && (n.Labels[policy.LabelInstance] != h.ID || n.Labels[policy.LabelPool] != policy.ManagerPoolName || n.Labels[policy.LabelCluster] != "boot"):
				t.Fatalf("manager %s labelled itself %v", h.ID, n.Labels)
			case h.role == policy.RoleWorker && n.EngineLabels["tier"] != "web":
				t.Fatalf("worker %s has engine labels %v, want tier=web among them", h.ID, n.EngineLabels)
			}
			local := testenv.Docker(t, h.DockerHost(), "info", "--format", "{{.Swarm.NodeID}}")
			if local != n.ID {
				t.Fatalf("%s's engine is node %s, the swarm lists it as %s", h.ID, local, n.ID)
			}
			ids = append(ids, h.ID+"="+n.ID)
		}
	}
	for id := range clusterIDs {
		return id + " " + strings.Join(ids, " ")
	}
	return ""
}

// waitWorkersLabelled waits until the leader's agent has given every
// worker's node its autarky.instance node label.
func (b *bootRun) waitWorkersLabelled(mgr *bootHost, workers []*bootHost, timeout time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		labelled := 0
		for _, n := range b.nodes(mgr) {
			for _, w := range workers {
				if n.EngineLabels[policy.LabelInstance] == w.ID && n.Labels[policy.LabelInstance] == w.ID && n.Labels["tier"] == "web" {
					labelled++
				}
			}
		}
		if labelled == len(workers) {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("the agents did not label the workers' nodes within %s:\n%s", timeout, tail(mgr.Log("autarky-agent.log"), 30))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// waitAllReady waits until mgr lists n nodes, all Ready.
func (b *bootRun) waitAllReady(mgr *bootHost, n int, timeout time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		nodes := b.nodes(mgr)
		ready := 0
		for _, node := range nodes {
			if node.State == "ready" {
				ready++
			}
		}
		if len(nodes) == n && ready == n {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("the swarm is not %d Ready nodes %s after the reboots: %+v", n, timeout, nodes)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitReadyAgain waits until h's node is Ready again after a reboot, as a
// manager other than h sees it.
func (b *bootRun) waitReadyAgain(managers []*bootHost, h *bootHost, timeout time.Duration) {
	b.t.Helper()
	var via *bootHost
	for _, m := range managers {
		if m != h {
			via = m
			break
		}
	}
	deadline := time.Now().Add(timeout)
	for {
		for _, n := range b.nodes(via) {
			if n.EngineLabels[policy.LabelInstance] == h.ID && n.State == "ready" && (h.role != policy.RoleManager || n.Reachability == "reachable") {
				return
			}
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%s's node is not Ready again %s after its reboot", h.ID, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

type paramValue struct {
	value   string
	version int64
}

func (b *bootRun) param(name string) paramValue {
	b.t.Helper()
	out, err := b.c.SSM.GetParameter(context.Background(), &ssm.GetParameterInput{Name: awsv2.String(name), WithDecryption: awsv2.Bool(true)})
	if err != nil {
		b.t.Fatalf("get parameter %s: %v", name, err)
	}
	return paramValue{value: awsv2.ToString(out.Parameter.Value), version: out.Parameter.Version}
}

// report logs the boot figure of every node: from its instance in
// service in moto to its node Ready through the real script.
func (b *bootRun) report(hosts []*bootHost) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var figures []time.Duration
	for _, h := range hosts {
		d := b.ready[h.ID].Sub(b.inService[h.ID])
		figures = append(figures, d)
		b.t.Logf("boot figure %s %-7s in service -> node Ready %6s (script ran %s)", h.ID, h.role,
			d.Round(100*time.Millisecond), h.took.Round(100*time.Millisecond))
		b.t.Logf("boot script output on %s:\n%s", h.ID, strings.TrimSpace(h.out))
	}
	slices.Sort(figures)
	b.t.Logf("boot figure median %s over %d nodes (max %s)", figures[len(figures)/2].Round(100*time.Millisecond),
		len(figures), figures[len(figures)-1].Round(100*time.Millisecond))
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
