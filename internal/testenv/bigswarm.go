// BigSwarm (this file) generates the listing of a Swarm far larger than
// this machine can run — 5,000 nodes, 100,000 tasks — in the Engine API's
// own types (github.com/docker/docker/api/types/swarm), so that the agent's
// whole observe path (HTTP, JSON decoding, the views it builds) can be
// measured at that size against an engine that answers in the daemon's own
// format (RecordedEngine, recordedengine.go).
//
// The shapes are those a real engine gives (Docker 28, Swarm mode): a node
// carries its description (platform, resources, the engine's version,
// labels and plugins, the swarm's TLS trust root), its spec with the
// labels Autarky's agent sets, its status and, for a manager, its manager
// status; a task carries its whole spec (container spec with image digest,
// labels, env, grace period, DNS config; resources; restart policy;
// placement with constraints and platforms; networks), its status with the
// container's status, and the full network objects of its attachments; a
// service carries its spec, mode, update and rollback configs and endpoint.
// Field values are made up but sized like real ones (ids of 25 characters,
// container ids of 64 hex digits, a PEM trust root of some 600 bytes), so
// the bytes on the wire are those of a real cluster of that size. A real
// engine's listing of a small swarm is kept for comparison in
// internal/swarm/testdata/engine-20.10: its nodes are 2.2 KB each as the
// generated ones are; its tasks, attached to no network, 0.7-0.9 KB, where
// a generated task of a stack's service, attached to its overlay network
// (the network object is repeated in every task), is 1.9 KB.
//
// A long-lived cluster's task listing is mostly history: Swarm keeps
// task_history_retention_limit (default 5) tasks per slot, the current one
// and the ones it replaced (shut down, failed, rejected). The generator
// makes RunningTasks slots with HistoryPerSlot old tasks each, a few tasks
// being stopped by a rolling update, a few starting, and Pending tasks
// that fit no node (they name a host that does not exist), so the view
// the agent builds is complete and steady: no healing, no scaling acts.
//
// Generation is deterministic (no randomness, fixed times), so two
// processes given the same spec produce the same cluster: the engine is
// served by a child process (see RecordedEngine) while the benchmark's
// process builds the platform side from the same spec.
package testenv

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	dswarm "github.com/docker/docker/api/types/swarm"
)

// BigSwarmSpec sizes a generated cluster.
type BigSwarmSpec struct {
	Cluster  string // Autarky cluster name, in the engine labels
	Managers int
	Workers  int // spread over Pools worker pools, round-robin
	Pools    int
	Services int
	// RunningTasks are the slots of the replicated services (each one
	// task Swarm wants running), spread over the services and, by their
	// placement constraints, over the nodes of the service's pool.
	RunningTasks int
	// HistoryPerSlot old tasks per slot (desired state shutdown).
	HistoryPerSlot int
	// Pending tasks of one extra service that fit no node.
	Pending int
	// Stopping slots (the first ones of the first services) have their
	// current task told to stop while its container still runs and no
	// replacement yet, as on a node being drained: the tasks Swarm wants
	// running then fall short of the services' replicas.
	Stopping int
}

// Scale5000 is the 5,000-node, 100,000-task cluster of issue 15: 3
// managers and 4,997 workers in 50 pools, 500 services with 20,000 slots
// (4 tasks per worker) and 4 old tasks per slot, as Swarm's default
// retention keeps them, plus 20 pending.
func Scale5000(cluster string) BigSwarmSpec {
	return BigSwarmSpec{Cluster: cluster, Managers: 3, Workers: 4997, Pools: 50, Services: 500,
		RunningTasks: 20000, HistoryPerSlot: 4, Pending: 20}
}

// BigSwarm is a generated cluster's listing, the platform side beside it.
type BigSwarm struct {
	Spec     BigSwarmSpec
	Nodes    []dswarm.Node
	Tasks    []dswarm.Task
	Services []dswarm.Service
	// LeaderID is the node id of the Raft leader (the first manager),
	// the node the agent under test runs beside.
	LeaderID string
}

// BigSwarmInstance is one instance of the platform side: what a platform
// lists for the node of that engine.
type BigSwarmInstance struct {
	ID, Pool, Role, Addr string
	CreatedAt            time.Time
}

// BigSwarmEpoch is the generated cluster's clock: everything in it
// happened before this moment.
var BigSwarmEpoch = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// PoolName is the name of worker pool i.
func (s BigSwarmSpec) PoolName(i int) string { return fmt.Sprintf("pool%02d", i) }

// PoolLabels are the Swarm node labels worker pool i declares.
func (s BigSwarmSpec) PoolLabels(i int) map[string]string {
	return map[string]string{"tier": s.PoolName(i), "zone": fmt.Sprintf("zone-%c", 'a'+i%3)}
}

// Instances lists the platform's instances, one per node, managers first.
func (s BigSwarmSpec) Instances() []BigSwarmInstance {
	out := make([]BigSwarmInstance, 0, s.Managers+s.Workers)
	for i := 0; i < s.Managers+s.Workers; i++ {
		out = append(out, s.instance(i))
	}
	return out
}

// WorkersIn counts the workers of pool p.
func (s BigSwarmSpec) WorkersIn(p int) int {
	n := s.Workers / s.Pools
	if p < s.Workers%s.Pools {
		n++
	}
	return n
}

func (s BigSwarmSpec) instance(i int) BigSwarmInstance {
	in := BigSwarmInstance{ID: fmt.Sprintf("i-%017x", 0x5a000000+i), Role: "worker",
		Addr: fmt.Sprintf("10.%d.%d.%d", 16+i/65000, (i/250)%256, 1+i%250), CreatedAt: BigSwarmEpoch.Add(-30*24*time.Hour + time.Duration(i)*time.Second)}
	if i < s.Managers {
		in.Pool, in.Role = "managers", "manager"
	} else {
		in.Pool = s.PoolName((i - s.Managers) % s.Pools)
	}
	return in
}

// swarmID makes a 25-character lowercase id, as Swarm's are, unique by
// kind and number.
func swarmID(kind byte, n int) string {
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
	b := []byte("0000000000000000000000000")
	b[0] = kind
	x := uint64(n)*2654435761 + uint64(kind)*97
	for i := 1; i < len(b); i++ {
		b[i] = alphabet[x%36]
		x = x/36 + uint64(n+i)*131 + uint64(i)
	}
	// The tail holds n itself, so ids never collide.
	tail := fmt.Sprintf("%08d", n)
	copy(b[len(b)-8:], tail)
	return string(b)
}

func hexOf(seed string, n int) string {
	b := make([]byte, n/2)
	for i := range b {
		b[i] = byte(int(seed[i%len(seed)])*31 + i*7)
	}
	return hex.EncodeToString(b)
}

var trustRoot = "-----BEGIN CERTIFICATE-----\n" + strings.Repeat(base64.StdEncoding.EncodeToString([]byte("autarky generated swarm root CA, sized like a real one.")), 8)[:560] + "\n-----END CERTIFICATE-----\n"

func plugins() []dswarm.PluginDescription {
	var out []dswarm.PluginDescription
	for _, n := range []string{"awslogs", "fluentd", "gcplogs", "gelf", "journald", "json-file", "local", "splunk", "syslog"} {
		out = append(out, dswarm.PluginDescription{Type: "Log", Name: n})
	}
	for _, n := range []string{"bridge", "host", "ipvlan", "macvlan", "null", "overlay"} {
		out = append(out, dswarm.PluginDescription{Type: "Network", Name: n})
	}
	return append(out, dswarm.PluginDescription{Type: "Volume", Name: "local"})
}

// Generate builds the cluster's listing.
func (s BigSwarmSpec) Generate() *BigSwarm {
	b := &BigSwarm{Spec: s}
	pl := plugins()
	tls := dswarm.TLSInfo{TrustRoot: trustRoot, CertIssuerSubject: []byte("0\x1310\x11\x06\x03U\x04\x03\x13\nswarm-ca"),
		CertIssuerPublicKey: []byte(strings.Repeat("\x04\x8a\x11", 30))}
	poolNodes := make([][]string, s.Pools)
	for i, in := range s.Instances() {
		id := swarmID('n', i)
		created := in.CreatedAt
		engine := map[string]string{"autarky.cluster": s.Cluster, "autarky.pool": in.Pool, "autarky.instance": in.ID}
		labels := map[string]string{"autarky.cluster": s.Cluster, "autarky.pool": in.Pool, "autarky.instance": in.ID}
		n := dswarm.Node{ID: id, Meta: dswarm.Meta{Version: dswarm.Version{Index: uint64(1000 + i*7)}, CreatedAt: created, UpdatedAt: created.Add(90 * time.Second)}}
		n.Spec.Role = dswarm.NodeRole(in.Role)
		n.Spec.Availability = dswarm.NodeAvailabilityActive
		n.Description = dswarm.NodeDescription{Hostname: fmt.Sprintf("ip-%s", strings.ReplaceAll(in.Addr, ".", "-")),
			Platform:  dswarm.Platform{Architecture: "x86_64", OS: "linux"},
			Resources: dswarm.Resources{NanoCPUs: 4_000_000_000, MemoryBytes: 16_391_028_736},
			Engine:    dswarm.EngineDescription{EngineVersion: "28.5.2", Labels: engine, Plugins: pl},
			TLSInfo:   tls}
		n.Status = dswarm.NodeStatus{State: dswarm.NodeStateReady, Addr: in.Addr}
		if in.Role == "manager" {
			n.ManagerStatus = &dswarm.ManagerStatus{Leader: i == 0, Reachability: dswarm.ReachabilityReachable, Addr: in.Addr + ":2377"}
		} else {
			p := (i - s.Managers) % s.Pools
			for k, v := range s.PoolLabels(p) {
				labels[k] = v
			}
			poolNodes[p] = append(poolNodes[p], id)
		}
		n.Spec.Labels = labels
		b.Nodes = append(b.Nodes, n)
	}
	b.LeaderID = b.Nodes[0].ID

	net := dswarm.Network{ID: swarmID('w', 1), Meta: dswarm.Meta{Version: dswarm.Version{Index: 12}, CreatedAt: BigSwarmEpoch.Add(-40 * 24 * time.Hour), UpdatedAt: BigSwarmEpoch.Add(-40 * 24 * time.Hour)},
		Spec: dswarm.NetworkSpec{Annotations: dswarm.Annotations{Name: "apps_default", Labels: map[string]string{"com.docker.stack.namespace": "apps"}},
			DriverConfiguration: &dswarm.Driver{Name: "overlay"}, Scope: "swarm"},
		DriverState: dswarm.Driver{Name: "overlay", Options: map[string]string{"com.docker.network.driver.overlay.vxlanid_list": "4097"}},
		IPAMOptions: &dswarm.IPAMOptions{Driver: dswarm.Driver{Name: "default"}, Configs: []dswarm.IPAMConfig{{Subnet: "10.0.0.0/16", Gateway: "10.0.0.1"}}}}
	// Replicated services, each bound to one pool by its constraint, then
	// one service whose tasks fit no node.
	nsvc := s.Services
	if s.Pending > 0 {
		nsvc++
	}
	per := 0
	if s.Services > 0 {
		per = s.RunningTasks / s.Services
	}
	ntask, stopping := 0, 0
	for si := 0; si < nsvc; si++ {
		pool := si % s.Pools
		replicas := per
		if si < s.Services && si < s.RunningTasks%max(s.Services, 1) {
			replicas++
		}
		constraints := []string{"node.labels.tier==" + s.PoolName(pool), "node.role==worker"}
		name := fmt.Sprintf("apps_svc%03d", si)
		if si == s.Services {
			replicas = s.Pending
			constraints = []string{"node.hostname==gpu-box-1"}
			name = "apps_gpu"
		}
		created := BigSwarmEpoch.Add(-20*24*time.Hour + time.Duration(si)*time.Minute)
		svc := s.service(si, name, replicas, constraints, created, net)
		b.Services = append(b.Services, svc)
		for slot := 1; slot <= replicas; slot++ {
			var node string
			if si < s.Services && len(poolNodes[pool]) > 0 {
				// Slots spread over the pool's nodes as Swarm's spread
				// strategy leaves them.
				node = poolNodes[pool][(si/s.Pools*per+slot)%len(poolNodes[pool])]
			}
			for h := s.HistoryPerSlot; h >= 0; h-- {
				if si == s.Services && h > 0 {
					continue
				}
				t := s.task(ntask, svc, slot, node, h, net)
				if h == 0 && si < s.Services && stopping < s.Stopping && t.Status.State == dswarm.TaskStateRunning {
					t.DesiredState = dswarm.TaskStateShutdown
					stopping++
				}
				ntask++
				b.Tasks = append(b.Tasks, t)
			}
		}
	}
	return b
}

func (s BigSwarmSpec) service(si int, name string, replicas int, constraints []string, created time.Time, net dswarm.Network) dswarm.Service {
	r := uint64(replicas)
	spec := dswarm.ServiceSpec{Annotations: dswarm.Annotations{Name: name, Labels: map[string]string{"com.docker.stack.image": "registry.example.com/apps/web:2.14.3", "com.docker.stack.namespace": "apps"}}}
	grace := 10 * time.Second
	spec.TaskTemplate = dswarm.TaskSpec{
		ContainerSpec: &dswarm.ContainerSpec{Image: "registry.example.com/apps/web:2.14.3@sha256:" + hexOf(name, 64),
			Labels: map[string]string{"com.docker.stack.namespace": "apps"}, Args: []string{"--listen", ":8080", "--log-format", "json"},
			Env:        []string{"APP_ENV=production", "APP_SERVICE=" + name, "GOMAXPROCS=1", "OTEL_EXPORTER_OTLP_ENDPOINT=http://otel:4317"},
			Privileges: &dswarm.Privileges{NoNewPrivileges: false}, StopGracePeriod: &grace, DNSConfig: &dswarm.DNSConfig{}, Isolation: "default"},
		Resources: &dswarm.ResourceRequirements{Limits: &dswarm.Limit{NanoCPUs: 500_000_000, MemoryBytes: 536_870_912},
			Reservations: &dswarm.Resources{NanoCPUs: 250_000_000, MemoryBytes: 268_435_456}},
		RestartPolicy: &dswarm.RestartPolicy{Condition: dswarm.RestartPolicyConditionAny},
		Placement:     &dswarm.Placement{Constraints: constraints, Platforms: []dswarm.Platform{{Architecture: "amd64", OS: "linux"}}},
		Networks:      []dswarm.NetworkAttachmentConfig{{Target: net.ID, Aliases: []string{strings.TrimPrefix(name, "apps_")}}},
		ForceUpdate:   0, Runtime: dswarm.RuntimeContainer,
	}
	spec.Mode.Replicated = &dswarm.ReplicatedService{Replicas: &r}
	spec.UpdateConfig = &dswarm.UpdateConfig{Parallelism: 1, FailureAction: "pause", Monitor: 5 * time.Second, MaxFailureRatio: 0, Order: "stop-first"}
	spec.RollbackConfig = &dswarm.UpdateConfig{Parallelism: 1, FailureAction: "pause", Monitor: 5 * time.Second, MaxFailureRatio: 0, Order: "stop-first"}
	spec.EndpointSpec = &dswarm.EndpointSpec{Mode: dswarm.ResolutionModeVIP}
	svc := dswarm.Service{ID: swarmID('s', si), Meta: dswarm.Meta{Version: dswarm.Version{Index: uint64(5000 + si*13)}, CreatedAt: created, UpdatedAt: created.Add(time.Hour)},
		Spec: spec, PreviousSpec: nil,
		Endpoint: dswarm.Endpoint{Spec: dswarm.EndpointSpec{Mode: dswarm.ResolutionModeVIP},
			VirtualIPs: []dswarm.EndpointVirtualIP{{NetworkID: net.ID, Addr: fmt.Sprintf("10.0.%d.%d/16", si/250, 2+si%250)}}}}
	return svc
}

// task makes one task of svc's slot: h == 0 is the current one, h > 0 the
// h-th one before it (shut down, failed or rejected). A few current tasks
// are starting, and a few being stopped by a rolling update whose
// replacements already run (so the listing stays complete). A slot
// without a node is pending: the scheduler found no node for it.
func (s BigSwarmSpec) task(n int, svc dswarm.Service, slot int, node string, h int, net dswarm.Network) dswarm.Task {
	ts := svc.UpdatedAt.Add(time.Duration(slot)*time.Second - time.Duration(h)*36*time.Hour)
	t := dswarm.Task{ID: swarmID('t', n), Meta: dswarm.Meta{Version: dswarm.Version{Index: uint64(20000 + n*3)}, CreatedAt: ts, UpdatedAt: ts.Add(4 * time.Second)},
		Spec: svc.Spec.TaskTemplate, ServiceID: svc.ID, Slot: slot, NodeID: node,
		Status:       dswarm.TaskStatus{Timestamp: ts.Add(4 * time.Second), PortStatus: dswarm.PortStatus{}},
		DesiredState: dswarm.TaskStateRunning}
	t.Labels = map[string]string{}
	cid := hexOf(t.ID, 64)
	switch {
	case node == "":
		t.Status.State, t.Status.Message, t.Status.Err = dswarm.TaskStatePending, "pending task scheduling", "no suitable node (scheduling constraints not satisfied on 5000 nodes)"
		return t
	case h == 0 && n%997 == 5:
		t.Status.State, t.Status.Message = dswarm.TaskStateStarting, "starting"
	case h == 0:
		t.Status.State, t.Status.Message = dswarm.TaskStateRunning, "started"
	case h == 1 && n%1499 == 7:
		// The old task of a rolling update, told to stop, not yet stopped.
		t.DesiredState = dswarm.TaskStateShutdown
		t.Status.State, t.Status.Message = dswarm.TaskStateRunning, "started"
	case h%3 == 2:
		t.DesiredState = dswarm.TaskStateShutdown
		t.Status.State, t.Status.Message, t.Status.Err = dswarm.TaskStateFailed, "started", "task: non-zero exit (137)"
	default:
		t.DesiredState = dswarm.TaskStateShutdown
		t.Status.State, t.Status.Message = dswarm.TaskStateShutdown, "shutdown"
	}
	t.Status.ContainerStatus = &dswarm.ContainerStatus{ContainerID: cid, PID: 4000 + n%60000}
	if t.Status.State == dswarm.TaskStateFailed {
		t.Status.ContainerStatus.ExitCode = 137
		t.Status.ContainerStatus.PID = 0
	}
	t.NetworksAttachments = []dswarm.NetworkAttachment{{Network: net, Addresses: []string{fmt.Sprintf("10.0.%d.%d/16", (n/250)%256, 2+n%250)}}}
	return t
}
