package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// The launcher is the local platform's cloud API, for an agent in a
// container.
//
// On a cloud the agent asks an API (an Auto Scaling Group, a Managed
// Instance Group) to start and terminate instances, and the instances do
// not live inside the agent. On the local platform an instance is a dockerd
// process of this machine, which an agent on the machine starts itself.
// An agent in a container cannot: a Swarm service runs neither privileged
// nor in the host's PID namespace, and a node it started would live in
// its container's PID namespace and cgroup and die with it. So an agent
// in a container asks the launcher instead: `autarky-agent launcher`, run
// as root on the machine (by hand, or as a service), serves the
// instance calls of platform.Cluster (list, start, terminate, restart) on
// a unix socket, LauncherSocket(stateDir), and carries them out as an
// agent on the machine would, with real processes that belong to no
// container. Everything else the agent reads and writes (descriptor,
// pools, policies, journal) is files of the state directory, which the
// container mounts at the same path.
//
// The socket is root's and 0600, in the state directory (root's): only
// root on the machine, or a container root gave the socket to, may call
// it, and the launcher also refuses a caller whose uid is not 0
// (SO_PEERCRED). A request names a cluster, a pool and an instance only;
// the launcher reads the pool from its own state directory, so a caller
// can start nothing the cluster's store does not declare.
//
// An agent uses the launcher when AUTARKY_LOCAL_LAUNCHER (LauncherEnv)
// names its socket, as the stack file does; an agent on the machine runs
// without it.

// LauncherEnv names the launcher's socket for an agent in a container.
const LauncherEnv = "AUTARKY_LOCAL_LAUNCHER"

// LauncherSocket is where `autarky-agent launcher` listens by default.
func LauncherSocket(stateDir string) string { return filepath.Join(stateDir, "launcher.sock") }

// NodeDir is where every node sees its own instance directory, in its own
// mount namespace: a container of the node bind-mounts the node's Docker
// socket as NodeDir/docker.sock, the same path on every node (the stack
// file's AUTARKY_DOCKER_SOCKET).
const NodeDir = "/run/autarky/node"

// ServeLauncher serves the launcher on socket until ctx is done.
func (p *Platform) ServeLauncher(ctx context.Context, socket string) error {
	if err := p.checkHost(); err != nil {
		return err
	}
	if c, err := net.Dial("unix", socket); err == nil {
		c.Close()
		return fmt.Errorf("a launcher already serves %s", socket)
	}
	if err := os.Remove(socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	// The socket is 0600 from its first moment.
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", socket)
	syscall.Umask(old)
	if err != nil {
		return fmt.Errorf("launcher: %w", err)
	}
	srv := &http.Server{Handler: p.launcherHandler(), ReadHeaderTimeout: 10 * time.Second}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		// Calls in hand (a node being stopped) finish first. A node
		// launched but still joining in the background is left to
		// itself: if it never joins, the agent's join timeout deals with
		// it, as with a cloud instance whose boot failed.
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	p.progress("launcher serving", "socket", socket)
	err = srv.Serve(rootOnly{ln.(*net.UnixListener), p.progress})
	if errors.Is(err, http.ErrServerClosed) {
		<-stopped
		p.progress("launcher stopped", "socket", socket)
		return nil
	}
	return err
}

// rootOnly accepts connections from processes whose uid is 0 only.
type rootOnly struct {
	*net.UnixListener
	progress platform.Progress
}

func (l rootOnly) Accept() (net.Conn, error) {
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			return nil, err
		}
		raw, err := c.SyscallConn()
		var cred *unix.Ucred
		if err == nil {
			cerr := raw.Control(func(fd uintptr) { cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
			if err == nil {
				err = cerr
			}
		}
		if err == nil && cred.Uid == 0 {
			return c, nil
		}
		if cred != nil {
			l.progress("launcher refused a caller that is not root", "uid", cred.Uid, "pid", cred.Pid)
		}
		c.Close()
	}
}

// wireInstance is an instance as the launcher sends it: with Running,
// which platform.Instance leaves out of JSON (instance.json, where it
// would be stale at once).
type wireInstance struct {
	platform.Instance
	Running bool `json:"running"`
}

func toWire(i platform.Instance) wireInstance { return wireInstance{Instance: i, Running: i.Running} }

func (w wireInstance) instance() platform.Instance {
	i := w.Instance
	i.Running = w.Running
	return i
}

// launcherError is the body of a launcher's error answer.
type launcherError struct {
	Error    string `json:"error"`
	NotFound bool   `json:"not_found,omitempty"`
}

func (p *Platform) launcherHandler() http.Handler {
	mux := http.NewServeMux()
	// cluster is the request's cluster, when its name is valid and the
	// state dir holds it.
	cluster := func(w http.ResponseWriter, r *http.Request) *Cluster {
		name := r.PathValue("cluster")
		if err := policy.ValidateName(name); err != nil {
			launcherFail(w, fmt.Errorf("cluster: %w", err))
			return nil
		}
		ok, err := p.HasCluster(r.Context(), name)
		if err == nil && !ok {
			err = fmt.Errorf("cluster %s in %s: %w", name, p.Where(), platform.ErrNotFound)
		}
		if err != nil {
			launcherFail(w, err)
			return nil
		}
		return p.Cluster(name)
	}
	mux.HandleFunc("GET /v1/clusters/{cluster}/instances", func(w http.ResponseWriter, r *http.Request) {
		if c := cluster(w, r); c != nil {
			insts, err := c.Instances(r.Context())
			out := make([]wireInstance, len(insts))
			for i, inst := range insts {
				out[i] = toWire(inst)
			}
			launcherAnswer(w, out, err)
		}
	})
	mux.HandleFunc("POST /v1/clusters/{cluster}/pools/{pool}/instances", func(w http.ResponseWriter, r *http.Request) {
		c := cluster(w, r)
		if c == nil {
			return
		}
		// The pool is the store's, never the caller's.
		pool, _, err := p.ReadPool(r.Context(), c.name, r.PathValue("pool"))
		if err != nil {
			launcherFail(w, err)
			return
		}
		inst, err := c.StartInstance(r.Context(), pool)
		launcherAnswer(w, toWire(inst), err)
	})
	mux.HandleFunc("DELETE /v1/clusters/{cluster}/instances/{id}", func(w http.ResponseWriter, r *http.Request) {
		if c := cluster(w, r); c != nil {
			launcherAnswer(w, struct{}{}, c.TerminateInstance(r.Context(), r.PathValue("id")))
		}
	})
	mux.HandleFunc("POST /v1/clusters/{cluster}/instances/{id}/restart", func(w http.ResponseWriter, r *http.Request) {
		if c := cluster(w, r); c != nil {
			launcherAnswer(w, struct{}{}, c.Restart(r.Context(), r.PathValue("id")))
		}
	})
	return mux
}

func launcherAnswer(w http.ResponseWriter, v any, err error) {
	if err != nil {
		launcherFail(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func launcherFail(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	notFound := errors.Is(err, platform.ErrNotFound)
	if notFound {
		status = http.StatusNotFound
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(launcherError{Error: err.Error(), NotFound: notFound})
}

// launcherClient is an agent's way to the launcher.
type launcherClient struct {
	socket string
	http   *http.Client
}

func newLauncherClient(socket string) *launcherClient {
	return &launcherClient{socket: socket, http: &http.Client{
		// Stopping a node waits for its dockerd (10 s) and kills what is
		// left; starting one only launches it.
		Timeout: 2 * time.Minute,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}},
	}}
}

// call sends one request; out, when not nil, receives the answer.
func (l *launcherClient) call(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://launcher"+path, nil)
	if err != nil {
		return err
	}
	resp, err := l.http.Do(req)
	if err != nil {
		return fmt.Errorf("local launcher at %s (%s=%s; is `autarky-agent launcher` running on the machine?): %w", l.socket, LauncherEnv, l.socket, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("local launcher at %s: %w", l.socket, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e launcherError
		if json.Unmarshal(body, &e) != nil || e.Error == "" {
			return fmt.Errorf("local launcher at %s: %s: %s", l.socket, resp.Status, bytes.TrimSpace(body))
		}
		if e.NotFound {
			return fmt.Errorf("local launcher: %s: %w", e.Error, platform.ErrNotFound)
		}
		return fmt.Errorf("local launcher: %s", e.Error)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("local launcher at %s: its answer: %w", l.socket, err)
	}
	return nil
}

func (c *Cluster) launcherPath(rest string) string {
	return "/v1/clusters/" + url.PathEscape(c.name) + rest
}

func (c *Cluster) remoteInstances(ctx context.Context) ([]platform.Instance, error) {
	var wire []wireInstance
	if err := c.p.launcher.call(ctx, http.MethodGet, c.launcherPath("/instances"), &wire); err != nil {
		return nil, err
	}
	out := make([]platform.Instance, len(wire))
	for i, w := range wire {
		out[i] = w.instance()
	}
	return out, nil
}

func (c *Cluster) remoteStart(ctx context.Context, pool policy.Pool) (platform.Instance, error) {
	var w wireInstance
	err := c.p.launcher.call(ctx, http.MethodPost, c.launcherPath("/pools/"+url.PathEscape(pool.Name)+"/instances"), &w)
	return w.instance(), err
}

func (c *Cluster) remoteTerminate(ctx context.Context, id string) error {
	return c.p.launcher.call(ctx, http.MethodDelete, c.launcherPath("/instances/"+url.PathEscape(id)), nil)
}

func (c *Cluster) remoteRestart(ctx context.Context, id string) error {
	return c.p.launcher.call(ctx, http.MethodPost, c.launcherPath("/instances/"+url.PathEscape(id)+"/restart"), nil)
}
