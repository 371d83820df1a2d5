package agent_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/autarky/terraform-provider-autarky/internal/agent"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// alertPost is an Alertmanager webhook body (version 4) with one firing
// alert per name.
func alertPost(names ...string) []byte {
	var b bytes.Buffer
	b.WriteString(`{"version":"4","status":"firing","receiver":"autarky","alerts":[`)
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"status":"firing","labels":{"alertname":%q}}`, n)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

func manyAlertNames(n int, extra ...string) []string {
	names := make([]string, 0, n+len(extra))
	for i := 0; i < n; i++ {
		names = append(names, fmt.Sprintf("Noise%05d", i))
	}
	return append(names, extra...)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// postAlerts posts body to url's /v1/alerts with the Authorization header
// auth (none when empty) and returns the status code.
func postAlerts(t *testing.T, url, auth string, body []byte) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/v1/alerts", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func alertNames(s agent.Status) []string {
	var out []string
	for _, a := range s.Alerts {
		out = append(out, a.Name)
	}
	return out
}

// The agent's HTTP surface, through its real listener (Run) beside a real
// swarm: the Bearer scheme is required (a bare token is refused), a body
// over 1 MiB gets 413, only alerts a scaling policy names are remembered
// (a 15,000-name post leaves one), names no policy used at the last
// reading are held for the next one, at most 100, and clients that send their
// headers or body a byte at a time are cut off by the server's timeouts.
func TestAlertsHTTPSurface(t *testing.T) {
	h := newHarnessWith(t, "ah", 1, false, "1s", false)
	h.pool("web", 0, nil)
	h.scale(scalingPolicy("ah/web", func(s *policy.Scaling) {
		s.Alert = []policy.AlertCheck{{Name: "WebOverloaded"}}
	}))
	addr := freeAddr(t)
	url := "http://" + addr
	// Dry run: the alert is taken and decided on, and no instance is
	// launched for it.
	a, err := agent.New(agent.Config{
		DockerHost: h.records(policy.ManagerPoolName)[0].DockerHost, Listen: addr, AlertToken: "s3cret",
		DryRun: true, EvaluationInterval: time.Second,
		Logger: hclog.New(&hclog.LoggerOptions{Name: "agent", Output: testWriter{t}, Level: hclog.Info}),
	}, h.c)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	h.waitFor("the agent's first evaluation", time.Minute, func() (bool, string) {
		if _, err := get(url + "/v1/status"); err != nil {
			return false, err.Error()
		}
		st := h.status(url)
		return !st.LastEvaluation.IsZero() && st.Error == "", st.Error
	})

	t.Run("bearer scheme", func(t *testing.T) {
		body := alertPost("WebOverloaded")
		for _, auth := range []string{"", "s3cret", "Basic s3cret", "Bearer wrong", "Bearer s3cret2", "Bearers3cret", "Bearer ", "Bearer s3cret extra"} {
			if code := postAlerts(t, url, auth, body); code != http.StatusUnauthorized {
				t.Errorf("Authorization %q: %d, want 401", auth, code)
			}
		}
		if got := alertNames(h.status(url)); len(got) != 0 {
			t.Fatalf("refused posts were remembered: %v", got)
		}
		for _, auth := range []string{"Bearer s3cret", "bearer s3cret", "BEARER  s3cret"} {
			if code := postAlerts(t, url, auth, body); code != http.StatusAccepted {
				t.Errorf("Authorization %q: %d, want 202", auth, code)
			}
		}
		if got := alertNames(h.status(url)); len(got) != 1 || got[0] != "WebOverloaded" {
			t.Fatalf("remembered %v, want [WebOverloaded]", got)
		}
	})

	t.Run("only the policies' alerts", func(t *testing.T) {
		body := alertPost(manyAlertNames(15000, "WebOverloaded")...)
		if len(body) > 1<<20 {
			t.Fatalf("the post is %d bytes: over the limit the test is not about", len(body))
		}
		if code := postAlerts(t, url, "Bearer s3cret", body); code != http.StatusAccepted {
			t.Fatalf("a 15,000-alert post: %d, want 202", code)
		}
		if got := alertNames(h.status(url)); len(got) != 1 || got[0] != "WebOverloaded" {
			t.Fatalf("remembered %d alerts (%.5v...), want only the policy's WebOverloaded", len(got), got)
		}
	})

	t.Run("body over 1 MiB", func(t *testing.T) {
		body := alertPost("WebOverloaded")
		big := append(body[:len(body)-1:len(body)-1], bytes.Repeat([]byte(" "), 1<<20)...)
		big = append(big, '}')
		if code := postAlerts(t, url, "Bearer s3cret", big); code != http.StatusRequestEntityTooLarge {
			t.Fatalf("a %d-byte body: %d, want 413", len(big), code)
		}
		exact := append(body[:len(body)-1:len(body)-1], bytes.Repeat([]byte(" "), 1<<20-len(body))...)
		exact = append(exact, '}')
		if code := postAlerts(t, url, "Bearer s3cret", exact); code != http.StatusAccepted {
			t.Fatalf("a body of exactly 1 MiB (%d bytes): %d, want 202", len(exact), code)
		}
	})

	t.Run("held until the policies are read, bounded", func(t *testing.T) {
		// An agent that has not read its policies cannot tell which
		// alerts matter: it holds the first 100 names posted until its
		// next reading, which keeps those a policy uses.
		h.scale(scalingPolicy("ah/web", func(s *policy.Scaling) {
			s.Alert = []policy.AlertCheck{{Name: "WebOverloaded"}, {Name: "Noise00099"}, {Name: "Noise00100"}}
		}))
		fresh := h.inProcess(true)
		srv := httptest.NewServer(fresh.Handler())
		defer srv.Close()
		if code := postAlerts(t, srv.URL, "", alertPost(manyAlertNames(15000)...)); code != http.StatusAccepted {
			t.Fatalf("a 15,000-alert post: %d, want 202", code)
		}
		if got := alertNames(fresh.Status()); len(got) != 0 {
			t.Fatalf("alerts remembered before any policy was read: %.5v (%d)", got, len(got))
		}
		fresh.Evaluate(context.Background())
		if got := alertNames(fresh.Status()); len(got) != 1 || got[0] != "Noise00099" {
			t.Fatalf("after reading the policies %d alerts are remembered (%.5v), want the 100th name posted, Noise00099, alone: the 101st is past the bound", len(got), got)
		}

		// A post that races the policy naming it: held, then kept.
		if code := postAlerts(t, srv.URL, "", alertPost("Late")); code != http.StatusAccepted {
			t.Fatalf("post: %d, want 202", code)
		}
		if got := alertNames(fresh.Status()); len(got) != 1 {
			t.Fatalf("an alert no policy names is remembered: %v", got)
		}
		h.scale(scalingPolicy("ah/web", func(s *policy.Scaling) {
			s.Alert = []policy.AlertCheck{{Name: "WebOverloaded"}, {Name: "Late"}}
		}))
		fresh.Evaluate(context.Background())
		if got := alertNames(fresh.Status()); len(got) != 1 || got[0] != "Late" {
			t.Fatalf("remembered %v, want [Late]: the alert posted just before its policy", got)
		}
		if st := fresh.Status().Alerts[0]; !st.Firing {
			t.Fatalf("Late is remembered as not firing: %+v", st)
		}
	})

	// Slow clients, one byte every 100 ms: each must be cut off by the
	// server's deadline (plus slack), never held open.
	slow := func(t *testing.T, head string, trickle byte, deadline time.Duration) {
		t.Parallel()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		if _, err := io.WriteString(conn, head); err != nil {
			t.Fatal(err)
		}
		closed := make(chan string, 1)
		go func() {
			b, _ := io.ReadAll(conn)
			closed <- string(b)
		}()
		limit := time.After(deadline + 5*time.Second)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case answer := <-closed:
				took := time.Since(start)
				if took < deadline-time.Second {
					t.Fatalf("cut off after %s, before the %s deadline: %q", took, deadline, answer)
				}
				t.Logf("cut off after %s (deadline %s); answer %q", took.Round(time.Millisecond), deadline, strings.SplitN(answer, "\r\n", 2)[0])
				return
			case <-limit:
				t.Fatalf("a client sending a byte every 100 ms is still connected after %s", time.Since(start).Round(time.Second))
			case <-tick.C:
				_, _ = conn.Write([]byte{trickle})
			}
		}
	}
	t.Run("slow headers", func(t *testing.T) {
		slow(t, "POST /v1/alerts HTTP/1.1\r\nHost: agent\r\nX-Slow: ", 'a', agent.HTTPReadHeaderTimeout)
	})
	t.Run("slow body", func(t *testing.T) {
		slow(t, "POST /v1/alerts HTTP/1.1\r\nHost: agent\r\nAuthorization: Bearer s3cret\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n", ' ', agent.HTTPReadTimeout)
	})
}
