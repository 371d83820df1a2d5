package local

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// The launcher's guards, with a real launcher on its socket and real
// callers: the socket is root's and 0600 from the start, a second
// launcher on it is refused, a caller that is not root is cut off even
// when the socket's mode would let it in (SO_PEERCRED), and a request for
// a cluster the state dir does not hold, a bad name or a pool the store
// does not declare gets an error naming it, which an agent's client sees
// as platform.ErrNotFound where it is one. Starting and stopping real
// nodes through it is TestAgentStackHealsOnLocalCluster
// (internal/packaging).
func TestLauncherRefuses(t *testing.T) {
	testenv.RequireLocalPlatform(t)
	dir := testenv.StateDir(t)
	var mu sync.Mutex
	var said []string
	p, err := New(dir, func(msg string, kv ...any) {
		t.Log(append([]any{msg}, kv...)...)
		mu.Lock()
		said = append(said, msg)
		mu.Unlock()
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	socket := LauncherSocket(dir)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- p.ServeLauncher(ctx, socket) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("launcher: %v", err)
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	var st os.FileInfo
	for st, err = os.Stat(socket); err != nil && time.Now().Before(deadline); st, err = os.Stat(socket) {
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil || st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != 0o600 {
		t.Fatalf("launcher socket %s: %v %v, want a socket of mode 0600", socket, st, err)
	}
	if err := p.ServeLauncher(context.Background(), socket); err == nil || !strings.Contains(err.Error(), "already serves") {
		t.Fatalf("a second launcher on the socket: %v", err)
	}

	agent, err := New(dir, nil, Options{Launcher: socket})
	if err != nil {
		t.Fatal(err)
	}
	_, err = agent.Cluster("nope").Instances(ctx)
	if !errors.Is(err, platform.ErrNotFound) || !strings.Contains(err.Error(), "cluster nope") {
		t.Fatalf("instances of a cluster the state dir lacks: %v", err)
	}
	_, err = agent.Cluster("Bad_Name").StartInstance(ctx, policy.Pool{Name: "web"})
	if err == nil || !strings.Contains(err.Error(), "cluster:") {
		t.Fatalf("a bad cluster name: %v", err)
	}
	if err := agent.Cluster("nope").TerminateInstance(ctx, "i-1"); !errors.Is(err, platform.ErrNotFound) {
		t.Fatalf("terminate in a cluster the state dir lacks: %v", err)
	}

	// A caller that is not root, let in by the socket's mode (and its
	// directory's), is cut off.
	for path, mode := range map[string]os.FileMode{dir: 0o755, socket: 0o666} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command("setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
		"curl", "-sS", "--max-time", "5", "--unix-socket", socket, "http://launcher/v1/clusters/nope/instances").CombinedOutput()
	if err == nil || strings.Contains(string(out), "cluster nope") {
		t.Fatalf("a caller of uid 65534 was answered: %v\n%s", err, out)
	}
	mu.Lock()
	refused := slices.Contains(said, "launcher refused a caller that is not root")
	mu.Unlock()
	if !refused {
		t.Fatalf("the launcher did not say it refused the caller: %q", said)
	}
	// Root still is.
	out, _ = exec.Command("curl", "-sS", "--max-time", "5", "--unix-socket", socket, "http://launcher/v1/clusters/nope/instances").CombinedOutput()
	if !strings.Contains(string(out), `"not_found":true`) {
		t.Fatalf("root's request: %s", out)
	}
}

// An instance crosses the launcher's socket with whether it runs, which
// platform.Instance keeps out of JSON: without it every instance an agent
// in a container lists would look dead, and it would terminate each
// replacement as soon as it started.
func TestLauncherWireKeepsRunning(t *testing.T) {
	for _, running := range []bool{true, false} {
		b, err := json.Marshal(toWire(platform.Instance{ID: "stk-web-6", Pool: "web", Running: running}))
		if err != nil {
			t.Fatal(err)
		}
		var w wireInstance
		if err := json.Unmarshal(b, &w); err != nil {
			t.Fatal(err)
		}
		if got := w.instance(); got.ID != "stk-web-6" || got.Pool != "web" || got.Running != running {
			t.Fatalf("sent running=%t as %s, got %+v", running, b, got)
		}
	}
}
