// Package swarm talks to Docker Swarm managers and nodes through the Docker
// Engine API: initialising and joining a swarm, reading nodes and tasks,
// labelling, draining, demoting and removing nodes. It negotiates the API
// version, so it works against Debian's engine (API 1.41) as well as newer ones.
package swarm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	dswarm "github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"
)

// SwarmPort is the port managers listen on for cluster management traffic.
const SwarmPort = "2377"

// Client is a connection to one Docker engine.
type Client struct {
	host      string
	api       *client.Client
	transport *http.Transport
	// http is the client the listings the agent reads every evaluation go
	// through (list, wire.go): the same transport and deadlines as api's.
	http       *http.Client
	negotiated atomic.Bool
}

// Dial connects to the engine at host ("unix:///path" or "tcp://..."), with
// the default per-call deadlines; it does not talk to the engine until the
// first call.
func Dial(host string) (*Client, error) {
	return DialWith(host, Deadlines{})
}

// DialWith is Dial with per-call deadlines (zero fields: the defaults).
// Every call the client makes passes one transport that puts it under its
// deadline (see Deadlines), so no method can forget one.
func DialWith(host string, d Deadlines) (*Client, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	u, err := client.ParseHostURL(host)
	if err != nil {
		return nil, fmt.Errorf("docker endpoint %s: %w", host, err)
	}
	tr, err := newTransport(u.Scheme, u.Host)
	if err != nil {
		return nil, fmt.Errorf("docker endpoint %s: %w", host, err)
	}
	hc := &http.Client{Transport: &deadlineTransport{host: host, base: tr, d: d.withDefaults()}}
	// WithHost first: it sets the endpoint (and configures a default
	// transport that WithHTTPClient then replaces with ours).
	api, err := client.NewClientWithOpts(client.WithHost(host), client.WithHTTPClient(hc), client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker endpoint %s: %w", host, err)
	}
	return &Client{host: host, api: api, transport: tr, http: hc}, nil
}

// Host is the endpoint this client talks to.
func (c *Client) Host() string { return c.host }

// Close releases the client's connections.
func (c *Client) Close() error {
	err := c.api.Close()
	c.transport.CloseIdleConnections()
	return err
}

// Ping checks the engine answers.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.api.Ping(ctx)
	return err
}

// WaitPing waits until the engine answers or ctx ends.
func (c *Client) WaitPing(ctx context.Context) error {
	var last error
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		last = c.Ping(pctx)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("docker engine at %s did not answer: %w", c.host, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// InitOptions are the settings of a new swarm.
type InitOptions struct {
	Addr            string // IP the manager advertises and listens on
	HeartbeatPeriod time.Duration
	Labels          map[string]string
}

// Init makes the engine the first manager of a new swarm and returns its node id.
func (c *Client) Init(ctx context.Context, o InitOptions) (string, error) {
	req := dswarm.InitRequest{
		ListenAddr:      net.JoinHostPort(o.Addr, SwarmPort),
		AdvertiseAddr:   net.JoinHostPort(o.Addr, SwarmPort),
		DataPathAddr:    o.Addr,
		ForceNewCluster: false,
		Spec:            dswarm.Spec{Annotations: dswarm.Annotations{Labels: o.Labels}},
	}
	req.Spec.Dispatcher.HeartbeatPeriod = o.HeartbeatPeriod
	id, err := c.api.SwarmInit(ctx, req)
	if err != nil {
		return "", fmt.Errorf("swarm init on %s: %w", o.Addr, err)
	}
	return id, nil
}

// Join makes the engine join the swarm managed at managers with token.
// The token is never part of the returned error.
func (c *Client) Join(ctx context.Context, addr string, managers []string, token string) error {
	req := dswarm.JoinRequest{
		ListenAddr:    net.JoinHostPort(addr, SwarmPort),
		AdvertiseAddr: net.JoinHostPort(addr, SwarmPort),
		DataPathAddr:  addr,
		RemoteAddrs:   managers,
		JoinToken:     token,
	}
	if err := c.api.SwarmJoin(ctx, req); err != nil {
		return fmt.Errorf("swarm join from %s via %s: %s", addr, strings.Join(managers, ","), Redact(err.Error(), token))
	}
	return nil
}

// Leave makes the engine leave its swarm.
func (c *Client) Leave(ctx context.Context, force bool) error {
	return c.api.SwarmLeave(ctx, force)
}

// LocalNodeID is the swarm node id of the engine, empty when it is in no swarm.
func (c *Client) LocalNodeID(ctx context.Context) (string, error) {
	info, err := c.api.Info(ctx)
	if err != nil {
		return "", err
	}
	return info.Swarm.NodeID, nil
}

// LocalNodeAddr is the address the engine's node has in its swarm (the
// one other nodes reach it on), empty when it is in no swarm.
func (c *Client) LocalNodeAddr(ctx context.Context) (string, error) {
	info, err := c.api.Info(ctx)
	if err != nil {
		return "", err
	}
	return info.Swarm.NodeAddr, nil
}

// Tokens are a swarm's join tokens, the one token type of every platform.
// They are secrets: they print as "[redacted]", so they cannot leak
// through a log line or an error by accident.
type Tokens struct {
	Worker  string
	Manager string
}

func (Tokens) String() string     { return "Tokens{Worker:" + redacted + " Manager:" + redacted + "}" }
func (t Tokens) GoString() string { return t.String() }

// JoinTokens reads the join tokens; the engine must be a manager.
func (c *Client) JoinTokens(ctx context.Context) (Tokens, error) {
	sw, err := c.api.SwarmInspect(ctx)
	if err != nil {
		return Tokens{}, fmt.Errorf("swarm inspect: %w", err)
	}
	return Tokens{Worker: sw.JoinTokens.Worker, Manager: sw.JoinTokens.Manager}, nil
}

// RotateJoinTokens replaces both join tokens with new ones and returns
// them: a node can no longer join with an old token (nodes already in the
// swarm are not affected). The update is tied to the swarm's version, so a
// concurrent change of the spec makes it fail rather than be undone.
func (c *Client) RotateJoinTokens(ctx context.Context) (Tokens, error) {
	sw, err := c.api.SwarmInspect(ctx)
	if err != nil {
		return Tokens{}, fmt.Errorf("swarm inspect: %w", err)
	}
	flags := dswarm.UpdateFlags{RotateWorkerToken: true, RotateManagerToken: true}
	if err := c.api.SwarmUpdate(ctx, sw.Version, sw.Spec, flags); err != nil {
		return Tokens{}, fmt.Errorf("swarm update (rotating the join tokens): %s", Redact(err.Error(), sw.JoinTokens.Worker, sw.JoinTokens.Manager))
	}
	t, err := c.JoinTokens(ctx)
	if err != nil {
		return Tokens{}, err
	}
	if t.Worker == sw.JoinTokens.Worker || t.Manager == sw.JoinTokens.Manager {
		return Tokens{}, fmt.Errorf("swarm update (rotating the join tokens): the engine still gives an old token")
	}
	return t, nil
}

// Update changes the swarm-wide settings Autarky manages.
func (c *Client) Update(ctx context.Context, heartbeat time.Duration, labels map[string]string) error {
	sw, err := c.api.SwarmInspect(ctx)
	if err != nil {
		return fmt.Errorf("swarm inspect: %w", err)
	}
	spec := sw.Spec
	spec.Dispatcher.HeartbeatPeriod = heartbeat
	spec.Labels = labels
	if err := c.api.SwarmUpdate(ctx, sw.Version, spec, dswarm.UpdateFlags{}); err != nil {
		return fmt.Errorf("swarm update: %w", err)
	}
	return nil
}

// Node is what Autarky needs to know of a swarm node.
type Node struct {
	ID           string
	Hostname     string
	Role         string // "worker" or "manager"
	State        string // "ready", "down", "unknown", "disconnected"
	Availability string // "active", "pause", "drain"
	Addr         string
	Reachability string // managers only: "reachable", "unreachable", "unknown"
	Leader       bool
	Labels       map[string]string // node labels (spec)
	EngineLabels map[string]string // labels the engine was started with
	CreatedAt    time.Time
	UpdatedAt    time.Time
	// Capacity is what the node's engine reports it has.
	Capacity Resources
}

func toNode(n dswarm.Node) Node {
	out := Node{
		ID:           n.ID,
		Hostname:     n.Description.Hostname,
		Role:         string(n.Spec.Role),
		State:        string(n.Status.State),
		Availability: string(n.Spec.Availability),
		Addr:         n.Status.Addr,
		Labels:       n.Spec.Labels,
		EngineLabels: n.Description.Engine.Labels,
		CreatedAt:    n.CreatedAt,
		UpdatedAt:    n.UpdatedAt,
		Capacity:     Resources{NanoCPUs: n.Description.Resources.NanoCPUs, MemoryBytes: n.Description.Resources.MemoryBytes},
	}
	if n.ManagerStatus != nil {
		out.Reachability = string(n.ManagerStatus.Reachability)
		out.Leader = n.ManagerStatus.Leader
		if host, ok := managerHost(n.ManagerStatus.Addr); ok {
			out.Addr = host
		}
	}
	return out
}

// Nodes lists every node of the swarm, sorted by hostname; the engine must
// be a manager. The listing is read by decodeNode (wire.go), which reads
// only what toNode reads.
func (c *Client) Nodes(ctx context.Context) ([]Node, error) {
	out := []Node{}
	err := c.list(ctx, "/nodes", filters.Args{}, func(b []byte) error {
		n, err := decodeNode(b)
		out = append(out, n)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("node list: %w", err)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Hostname != out[j].Hostname {
			return out[i].Hostname < out[j].Hostname
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Node reads one node; found is false when the swarm has no such node.
func (c *Client) Node(ctx context.Context, id string) (n Node, found bool, err error) {
	raw, _, err := c.api.NodeInspectWithRaw(ctx, id)
	if errdefs.IsNotFound(err) {
		return Node{}, false, nil
	}
	if err != nil {
		return Node{}, false, fmt.Errorf("node inspect %s: %w", id, err)
	}
	return toNode(raw), true, nil
}

// updateNode applies change to a node's spec, retrying on version conflicts
// (another writer, such as Swarm itself, updated the node in between).
func (c *Client) updateNode(ctx context.Context, id string, change func(*dswarm.NodeSpec)) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		var raw dswarm.Node
		raw, _, err = c.api.NodeInspectWithRaw(ctx, id)
		if err != nil {
			return fmt.Errorf("node inspect %s: %w", id, err)
		}
		spec := raw.Spec
		change(&spec)
		err = c.api.NodeUpdate(ctx, id, raw.Version, spec)
		if err == nil {
			return nil
		}
		if !strings.Contains(err.Error(), "update out of sequence") {
			break
		}
	}
	return fmt.Errorf("node update %s: %w", id, err)
}

// SetLabels replaces the node labels of a node.
func (c *Client) SetLabels(ctx context.Context, id string, labels map[string]string) error {
	return c.updateNode(ctx, id, func(s *dswarm.NodeSpec) {
		s.Labels = make(map[string]string, len(labels))
		for k, v := range labels {
			s.Labels[k] = v
		}
	})
}

// SetAvailability sets a node to "active", "pause" or "drain".
func (c *Client) SetAvailability(ctx context.Context, id, availability string) error {
	return c.updateNode(ctx, id, func(s *dswarm.NodeSpec) {
		s.Availability = dswarm.NodeAvailability(availability)
	})
}

// LabelDrain marks a node Autarky drained, naming the action that drained
// it, so that a drain an operator set by hand is never undone by Autarky.
const LabelDrain = "autarky.drain"

// Drain sets a node's availability to drain and labels it with the key of
// the action that drains it, in one update.
func (c *Client) Drain(ctx context.Context, id, key string) error {
	return c.updateNode(ctx, id, func(s *dswarm.NodeSpec) {
		s.Availability = dswarm.NodeAvailabilityDrain
		if s.Labels == nil {
			s.Labels = map[string]string{}
		}
		s.Labels[LabelDrain] = key
	})
}

// Undrain makes a node Autarky drained schedulable again and drops its
// drain label; a node drained by hand (without the label) is left as it is.
func (c *Client) Undrain(ctx context.Context, id string) error {
	return c.updateNode(ctx, id, func(s *dswarm.NodeSpec) {
		if _, ours := s.Labels[LabelDrain]; !ours {
			return
		}
		delete(s.Labels, LabelDrain)
		s.Availability = dswarm.NodeAvailabilityActive
	})
}

// Demote turns a manager into a worker.
func (c *Client) Demote(ctx context.Context, id string) error {
	return c.updateNode(ctx, id, func(s *dswarm.NodeSpec) { s.Role = dswarm.NodeRoleWorker })
}

// Remove deletes a node from the swarm. force removes a node that is not Down.
// A node that is already gone is not an error.
func (c *Client) Remove(ctx context.Context, id string, force bool) error {
	err := c.api.NodeRemove(ctx, id, dswarm.NodeRemoveOptions{Force: force})
	if err == nil || errdefs.IsNotFound(err) {
		return nil
	}
	return fmt.Errorf("node rm %s: %w", id, err)
}

// ImportImage loads a root filesystem tarball into the engine as image ref,
// with Dockerfile-style changes such as `ENTRYPOINT ["/x"]`.
func (c *Client) ImportImage(ctx context.Context, ref string, tarball io.Reader, changes ...string) error {
	rc, err := c.api.ImageImport(ctx, image.ImportSource{Source: tarball, SourceName: "-"}, ref, image.ImportOptions{Changes: changes})
	if err != nil {
		return fmt.Errorf("image import %s: %w", ref, err)
	}
	defer rc.Close()
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return fmt.Errorf("image import %s: %w", ref, err)
	}
	return nil
}

// WaitNodes polls the manager until ok accepts the node list or ctx ends.
func (c *Client) WaitNodes(ctx context.Context, what string, ok func([]Node) bool) error {
	var last error
	for {
		nodes, err := c.Nodes(ctx)
		if err == nil && ok(nodes) {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("waiting for %s: %w (last error: %v)", what, ctx.Err(), last)
			}
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// ErrNoManager is returned when no manager of a cluster answers.
var ErrNoManager = errors.New("no manager of the cluster answers")

const redacted = "[redacted]"

// Redact replaces every secret in s with "[redacted]".
func Redact(s string, secrets ...string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, redacted)
		}
	}
	return s
}
