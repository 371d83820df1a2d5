// RecordedEngine (this file) serves a generated cluster's listing
// (bigswarm.go) over the Engine API: real HTTP on a unix socket, the
// daemon's own paths and JSON, the filters of a task listing applied as
// the daemon applies them. It stands in for a Swarm manager far larger than
// this machine can run; it does not change anything (writes are refused),
// so an agent evaluating against it observes and decides, and acting
// finds nothing to do on the steady cluster it serves.
//
// The engine runs in a child process (the test binary itself, started
// again with AUTARKY_RECORDED_ENGINE set; the package's TestMain calls
// RecordedEngineMain first), as dockerd is a process of its own: the
// benchmark's CPU time and peak memory are then the agent's alone, not
// the engine's generating and encoding 100,000 tasks.
package testenv

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	dswarm "github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/system"
)

// recordedAPIVersion is the API version of the engine the listing is
// shaped after (Docker 28.5).
const recordedAPIVersion = "1.51"

// EngineStats are the calls a RecordedEngine answered since its last
// reset, and the bytes of their answers' bodies.
type EngineStats struct {
	Calls int            `json:"calls"`
	Bytes int64          `json:"bytes"`
	Paths map[string]int `json:"paths"` // "GET /tasks?desired-state=running" -> calls
	// Unknown are calls to paths the engine does not serve.
	Unknown []string `json:"unknown"`
}

// EngineHandler answers Engine API calls from a generated listing; a
// RecordedEngine's process serves one, and a test can serve one itself.
type EngineHandler struct {
	b *BigSwarm

	mu    sync.Mutex
	cache map[string][]byte
	stats EngineStats
}

// NewEngineHandler serves b's listing.
func NewEngineHandler(b *BigSwarm) *EngineHandler {
	return &EngineHandler{b: b, cache: map[string][]byte{}, stats: EngineStats{Paths: map[string]int{}}}
}

type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

func (w *countingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func engineError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
}

func (e *EngineHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := dockerCallPath(r.URL.Path)
	switch path {
	case "/_autarky/stats":
		e.mu.Lock()
		b, _ := json.Marshal(e.stats)
		if r.Method == http.MethodPost {
			e.stats = EngineStats{Paths: map[string]int{}}
		}
		e.mu.Unlock()
		_, _ = w.Write(b)
		return
	}
	cw := &countingWriter{ResponseWriter: w}
	key := r.Method + " " + path
	if f := r.URL.Query().Get("filters"); f != "" {
		key += "?" + f
	}
	known := e.serve(cw, r, path)
	e.mu.Lock()
	e.stats.Calls++
	e.stats.Bytes += cw.n
	e.stats.Paths[key]++
	if !known {
		e.stats.Unknown = append(e.stats.Unknown, key)
	}
	e.mu.Unlock()
}

// serve answers one call; false when the path is not one it serves.
func (e *EngineHandler) serve(w http.ResponseWriter, r *http.Request, path string) bool {
	h := w.Header()
	h.Set("Api-Version", recordedAPIVersion)
	h.Set("Docker-Experimental", "false")
	h.Set("Ostype", "linux")
	h.Set("Server", "Docker/28.5.2 (linux)")
	h.Set("Swarm", "active/manager")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		engineError(w, http.StatusForbidden, "the recorded engine is read-only: "+r.Method+" "+path)
		return false
	}
	switch {
	case path == "/_ping":
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
		_, _ = io.WriteString(w, "OK")
	case path == "/info":
		e.json(w, "info", func() any { return e.info() })
	case path == "/version":
		e.json(w, "version", func() any {
			return map[string]any{"Version": "28.5.2", "ApiVersion": recordedAPIVersion, "MinAPIVersion": "1.24", "Os": "linux", "Arch": "amd64",
				"GoVersion": "go1.24.9", "GitCommit": "89c5e8f", "KernelVersion": "6.1.0-40-amd64", "BuildTime": "2025-11-01T00:00:00.000000000+00:00"}
		})
	case path == "/events":
		// An idle stream: the cluster does not change.
		h.Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		<-r.Context().Done()
	case path == "/nodes" || path == "/services":
		if r.URL.Query().Get("filters") != "" {
			engineError(w, http.StatusBadRequest, "the recorded engine serves "+path+" without filters")
			return true
		}
		e.json(w, path, func() any {
			if path == "/nodes" {
				return e.b.Nodes
			}
			return e.b.Services
		})
	case strings.HasPrefix(path, "/nodes/") || strings.HasPrefix(path, "/services/"):
		kind, id, _ := strings.Cut(path[1:], "/")
		if v, ok := e.inspect(kind, id); ok {
			e.json(w, path, func() any { return v })
			return true
		}
		engineError(w, http.StatusNotFound, strings.TrimSuffix(kind, "s")+" "+id+" not found")
	case path == "/tasks":
		raw := r.URL.Query().Get("filters")
		f, err := filters.FromJSON(raw)
		if err != nil {
			engineError(w, http.StatusBadRequest, err.Error())
			return true
		}
		keep, err := e.taskFilter(f)
		if err != nil {
			status := http.StatusBadRequest
			if strings.HasSuffix(err.Error(), "not found") {
				status = http.StatusNotFound
			}
			engineError(w, status, err.Error())
			return true
		}
		e.json(w, "tasks?"+canonical(f), func() any {
			out := []dswarm.Task{}
			for _, t := range e.b.Tasks {
				if keep(t) {
					out = append(out, t)
				}
			}
			return out
		})
	default:
		engineError(w, http.StatusNotFound, "page not found")
		return false
	}
	return true
}

// Stats are the calls answered so far.
func (e *EngineHandler) Stats() EngineStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.stats
	s.Paths = map[string]int{}
	for k, v := range e.stats.Paths {
		s.Paths[k] = v
	}
	s.Unknown = append([]string(nil), e.stats.Unknown...)
	return s
}

// inspect finds a node or a service by id or name.
func (e *EngineHandler) inspect(kind, id string) (any, bool) {
	if kind == "nodes" {
		for _, n := range e.b.Nodes {
			if n.ID == id || n.Description.Hostname == id {
				return n, true
			}
		}
		return nil, false
	}
	for _, s := range e.b.Services {
		if s.ID == id || s.Spec.Name == id {
			return s, true
		}
	}
	return nil, false
}

// json answers with the JSON of make(), encoded once per key and kept:
// serving costs the engine process a copy, as a manager's store answers
// from memory.
func (e *EngineHandler) json(w http.ResponseWriter, key string, make func() any) {
	e.mu.Lock()
	body, ok := e.cache[key]
	e.mu.Unlock()
	if !ok {
		var err error
		if body, err = json.Marshal(make()); err != nil {
			engineError(w, http.StatusInternalServerError, err.Error())
			return
		}
		body = append(body, '\n')
		e.mu.Lock()
		e.cache[key] = body
		e.mu.Unlock()
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

func canonical(f filters.Args) string {
	var parts []string
	for _, k := range f.Keys() {
		v := f.Get(k)
		sort.Strings(v)
		parts = append(parts, k+"="+strings.Join(v, ","))
	}
	sort.Strings(parts)
	return strings.Join(parts, "&")
}

// taskFilter applies a task listing's filters as the daemon does
// (daemon/cluster/filters.go and swarmkit's store): values of one key
// are alternatives, keys all apply; desired-state takes any task state's
// name, and an unknown one is refused. Filters the agent never sends
// (name, label, runtime, _up-to-date) are refused here, saying so.
func (e *EngineHandler) taskFilter(f filters.Args) (func(dswarm.Task) bool, error) {
	for _, k := range f.Keys() {
		switch k {
		case "desired-state", "service", "node", "id":
		case "name", "label", "runtime", "_up-to-date":
			return nil, fmt.Errorf("the recorded engine does not apply the task filter %q", k)
		default:
			return nil, fmt.Errorf("invalid filter '%s'", k)
		}
	}
	states := map[dswarm.TaskState]bool{}
	for _, s := range f.Get("desired-state") {
		st := dswarm.TaskState(strings.ToLower(s))
		switch st {
		case dswarm.TaskStateNew, dswarm.TaskStateAllocated, dswarm.TaskStatePending, dswarm.TaskStateAssigned, dswarm.TaskStateAccepted,
			dswarm.TaskStatePreparing, dswarm.TaskStateReady, dswarm.TaskStateStarting, dswarm.TaskStateRunning, dswarm.TaskStateComplete,
			dswarm.TaskStateShutdown, dswarm.TaskStateFailed, dswarm.TaskStateRejected, dswarm.TaskStateRemove, dswarm.TaskStateOrphaned:
			states[st] = true
		default:
			if s != "" {
				return nil, fmt.Errorf("Invalid desired-state filter: '%s'", s) //nolint:staticcheck // the daemon's own message
			}
		}
	}
	services := map[string]bool{}
	for _, s := range f.Get("service") {
		found := false
		for _, svc := range e.b.Services {
			if svc.ID == s || svc.Spec.Name == s {
				services[svc.ID], found = true, true
			}
		}
		if !found {
			return nil, fmt.Errorf("service %s not found", s)
		}
	}
	nodes := map[string]bool{}
	for _, s := range f.Get("node") {
		for _, n := range e.b.Nodes {
			if n.ID == s || n.Description.Hostname == s {
				nodes[n.ID] = true
			}
		}
	}
	ids := f.Get("id")
	return func(t dswarm.Task) bool {
		if len(states) > 0 && !states[t.DesiredState] {
			return false
		}
		if f.Contains("service") && !services[t.ServiceID] {
			return false
		}
		if f.Contains("node") && !nodes[t.NodeID] {
			return false
		}
		if len(ids) > 0 {
			ok := false
			for _, p := range ids {
				ok = ok || strings.HasPrefix(t.ID, p)
			}
			return ok
		}
		return true
	}, nil
}

func (e *EngineHandler) info() system.Info {
	leader := e.b.Nodes[0]
	managers := 0
	var peers []dswarm.Peer
	for _, n := range e.b.Nodes {
		if n.ManagerStatus != nil {
			managers++
			peers = append(peers, dswarm.Peer{NodeID: n.ID, Addr: n.ManagerStatus.Addr})
		}
	}
	return system.Info{ID: "7TRN:IPZB:QYBB:VPBQ:UWVH:EBRA:3MM2:J6BS:OZWP:CDQJ:WZ7O:4Q3D", Containers: 4, ContainersRunning: 4,
		Images: 3, Driver: "overlay2", SystemTime: BigSwarmEpoch.Format(time.RFC3339Nano), LoggingDriver: "json-file", CgroupDriver: "systemd",
		CgroupVersion: "2", KernelVersion: "6.1.0-40-amd64", OperatingSystem: "Debian GNU/Linux 12 (bookworm)", OSType: "linux",
		Architecture: "x86_64", NCPU: 4, MemTotal: leader.Description.Resources.MemoryBytes, Name: leader.Description.Hostname,
		ServerVersion: "28.5.2", DockerRootDir: "/var/lib/docker", Labels: []string{"autarky.cluster=" + e.b.Spec.Cluster},
		Swarm: dswarm.Info{NodeID: leader.ID, NodeAddr: leader.Status.Addr, LocalNodeState: dswarm.LocalNodeStateActive,
			ControlAvailable: true, RemoteManagers: peers, Nodes: len(e.b.Nodes), Managers: managers}}
}

// ServeRecordedEngine serves b's listing on ln until ln is closed.
func ServeRecordedEngine(ln net.Listener, b *BigSwarm) error {
	return (&http.Server{Handler: NewEngineHandler(b), ReadHeaderTimeout: 10 * time.Second}).Serve(ln)
}

// RecordedEngine is a child process serving a generated listing.
type RecordedEngine struct {
	// Host is its endpoint, "unix:///tmp/.../docker.sock".
	Host string
	sock string
}

const recordedEngineEnv = "AUTARKY_RECORDED_ENGINE"

// RecordedEngineMain serves a recorded engine and exits when the process
// was started as one (by StartRecordedEngine); otherwise it returns at
// once. A TestMain calls it first.
func RecordedEngineMain() {
	env := os.Getenv(recordedEngineEnv)
	if env == "" {
		return
	}
	sock, specJSON, _ := strings.Cut(env, ";")
	var spec BigSwarmSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "recorded engine: spec:", err)
		os.Exit(2)
	}
	b := spec.Generate()
	ln, err := net.Listen("unix", sock+".tmp")
	if err == nil {
		err = os.Rename(sock+".tmp", sock) // appears only once it serves
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "recorded engine:", err)
		os.Exit(2)
	}
	// The parent holds our stdin: when it ends, so do we.
	go func() {
		_, _ = io.Copy(io.Discard, bufio.NewReader(os.Stdin))
		os.Exit(0)
	}()
	_ = ServeRecordedEngine(ln, b)
	os.Exit(0)
}

// StartRecordedEngine starts the test binary again as an engine serving
// spec's listing, and waits until it answers (generating 100,000 tasks
// takes it a few seconds). It stops when the test ends.
func StartRecordedEngine(t testing.TB, spec BigSwarmSpec) *RecordedEngine {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "akre")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "docker.sock")
	specJSON, _ := json.Marshal(spec)
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), recordedEngineEnv+"="+sock+";"+string(specJSON))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = os.RemoveAll(dir)
	})
	e := &RecordedEngine{Host: "unix://" + sock, sock: sock}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the recorded engine did not serve %s within 2m (does the package's TestMain call testenv.RecordedEngineMain?)", sock)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return e
}

func (e *RecordedEngine) call(method string) (EngineStats, error) {
	c := http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", e.sock)
	}}}
	defer c.CloseIdleConnections()
	req, _ := http.NewRequest(method, "http://engine/_autarky/stats", nil)
	resp, err := c.Do(req)
	if err != nil {
		return EngineStats{}, err
	}
	defer resp.Body.Close()
	var s EngineStats
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// Stats are the calls answered since the last Reset.
func (e *RecordedEngine) Stats(t testing.TB) EngineStats {
	t.Helper()
	s, err := e.call(http.MethodGet)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Reset zeroes the stats.
func (e *RecordedEngine) Reset(t testing.TB) {
	t.Helper()
	if _, err := e.call(http.MethodPost); err != nil {
		t.Fatal(err)
	}
}
