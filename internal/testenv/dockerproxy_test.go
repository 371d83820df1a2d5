package testenv_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/platform/local"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/swarm"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// TestDockerProxy runs the proxy in front of the manager of a real
// one-manager local cluster.
func TestDockerProxy(t *testing.T) {
	testenv.RequireLocalPlatform(t)
	dir := testenv.StateDir(t)
	pl, err := local.New(dir, func(msg string, kv ...any) { t.Log(append([]any{msg}, kv...)...) }, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	st, err := pl.CreateCluster(ctx, policy.Cluster{Name: "dproxy", Platform: "local", ManagerCount: 1, HeartbeatPeriod: "1s"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := pl.DeleteCluster(context.Background(), "dproxy"); err != nil {
			t.Errorf("delete cluster: %v", err)
		}
		if left := testenv.Leftovers(dir); len(left) > 0 {
			t.Errorf("left behind: %v", left)
		}
	})
	direct, err := swarm.Dial(st.DockerHost)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()

	p := testenv.NewDockerProxy(t, st.DockerHost)
	if !strings.HasPrefix(p.Host, "unix:///tmp/") {
		t.Fatalf("proxy host %q", p.Host)
	}
	cli, err := swarm.Dial(p.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()

	// Everything passes through unchanged.
	nodes, err := cli.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want, err := direct.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 1 || nodes[0].ID != want[0].ID || nodes[0].Availability != "active" || !nodes[0].Leader {
		t.Fatalf("nodes through the proxy %+v, from the engine %+v", nodes, want)
	}
	id := nodes[0].ID
	if n := p.Calls(http.MethodGet, "/_ping") + p.Calls(http.MethodHead, "/_ping"); n != 1 {
		t.Errorf("version negotiation: %d pings, want 1", n)
	}
	if n := p.Calls(http.MethodGet, "/nodes"); n != 1 {
		t.Errorf("GET /nodes counted %d times, want 1", n)
	}
	if n := p.Calls("", ""); n != 2 {
		t.Errorf("%d calls in all, want 2 (ping and node list)", n)
	}

	t.Run("500 on node update", func(t *testing.T) {
		p.Reset()
		p.Fault(func(c testenv.DockerCall) *testenv.DockerFault {
			if c.Method == http.MethodPost && c.Path == "/nodes/"+id+"/update" {
				if !strings.Contains(c.Query, "version=") {
					t.Errorf("node update query %q has no version", c.Query)
				}
				return testenv.DockerError(http.StatusInternalServerError, "injected: raft is unhappy")
			}
			return nil
		})
		defer p.Fault(nil)
		err := cli.SetAvailability(ctx, id, "drain")
		if err == nil || !strings.Contains(err.Error(), "injected: raft is unhappy") {
			t.Fatalf("SetAvailability through the fault: %v", err)
		}
		n, found, err := direct.Node(ctx, id)
		if err != nil || !found {
			t.Fatalf("node from the engine: %v found=%v", err, found)
		}
		if n.Availability != "active" {
			t.Fatalf("availability after a failed update is %q", n.Availability)
		}
		if got := p.Calls(http.MethodPost, "/nodes/"+id+"/update"); got != 1 {
			t.Errorf("node update reached the proxy %d times, want 1", got)
		}
		if got := p.Calls(http.MethodGet, "/nodes/"+id); got != 1 {
			t.Errorf("node inspect reached the proxy %d times, want 1", got)
		}
	})

	t.Run("hang on node list", func(t *testing.T) {
		p.Reset()
		p.Fault(func(c testenv.DockerCall) *testenv.DockerFault {
			if c.Method == http.MethodGet && c.Path == "/nodes" {
				return &testenv.DockerFault{Hang: true}
			}
			return nil
		})
		defer p.Fault(nil)
		cctx, ccancel := context.WithTimeout(ctx, time.Second)
		defer ccancel()
		start := time.Now()
		_, err := cli.Nodes(cctx)
		took := time.Since(start)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("node list through a hang: %v, want a deadline error", err)
		}
		if took > 2*time.Second {
			t.Fatalf("node list through a hang took %v", took)
		}
		// Other calls still pass.
		if _, found, err := cli.Node(ctx, id); err != nil || !found {
			t.Fatalf("node inspect beside a hang: %v found=%v", err, found)
		}

		// A released call goes on to the engine.
		done := make(chan error, 1)
		go func() { _, err := cli.Nodes(ctx); done <- err }()
		deadline := time.Now().Add(5 * time.Second)
		for p.Calls(http.MethodGet, "/nodes") < 2 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		select {
		case err := <-done:
			t.Fatalf("a hung call ended before its release: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
		p.Release()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("released node list: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a released call is still held")
		}
		if got := p.Calls(http.MethodGet, "/nodes"); got != 3 {
			t.Errorf("GET /nodes... counted %d times, want 3 (hung list, inspect, released list)", got)
		}
	})

	t.Run("events stream", func(t *testing.T) {
		ectx, ecancel := context.WithTimeout(ctx, 30*time.Second)
		defer ecancel()
		events := cli.ClusterEvents(ectx)
		deadline := time.Now().Add(5 * time.Second)
		for p.Calls(http.MethodGet, "/events") == 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond) // the engine has subscribed
		if err := direct.SetLabels(ctx, id, map[string]string{"proxy": "seen"}); err != nil {
			t.Fatal(err)
		}
		select {
		case kind := <-events:
			if kind != swarm.EventNode {
				t.Fatalf("event %q, want %q", kind, swarm.EventNode)
			}
		case <-ectx.Done():
			t.Fatal("no node event came through the proxy's stream")
		}
	})

	t.Run("bytes counted", func(t *testing.T) {
		p.Reset()
		hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", strings.TrimPrefix(p.Host, "unix://"))
		}}}
		resp, err := hc.Get("http://docker/nodes")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || len(body) < 100 {
			t.Fatalf("GET /nodes through the proxy: %v %d %q", err, resp.StatusCode, body)
		}
		if got := p.Bytes(); got != int64(len(body)) {
			t.Fatalf("Bytes() = %d after one node list of %d bytes", got, len(body))
		}
	})

	p.Reset()
	if n, b := p.Calls("", ""), p.Bytes(); n != 0 || b != 0 {
		t.Fatalf("after Reset %d calls, %d bytes", n, b)
	}
}
