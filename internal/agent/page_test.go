package agent_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/agent"
	"github.com/autarky/terraform-provider-autarky/internal/platform/local"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// requireChromium fails the test unless Debian's chromium is installed.
func requireChromium(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is not installed: run `%s` (it installs Debian's chromium, in which the status page is rendered)", testenv.Setup)
	}
	return bin
}

// chromium runs headless Chromium with args and returns its standard
// output. Root needs --no-sandbox; each run gets its own profile.
func chromium(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	profile := t.TempDir()
	all := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
		"--disable-dev-shm-usage", "--user-data-dir=" + profile}, args...)
	cmd := exec.CommandContext(ctx, bin, all...)
	cmd.Env = append(os.Environ(), "HOME="+profile)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes()
}

// The status page of a real agent, beside the manager of a real local
// swarm, rendered by headless Chromium after the agent scaled a service on
// an alert and healed a killed worker: the DOM names the cluster, every
// pool and every node, the service, carries the newest decision and its
// reason, the replacement and the service's scale-up with theirs, and
// draws one size chart per pool and service; the screenshot is a real
// page.
// AUTARKY_PAGE_SCREENSHOT=<file.png> keeps the screenshot for a person.
func TestStatusPageInChromium(t *testing.T) {
	bin := requireChromium(t)
	h := newHarnessWith(t, "pg", 1, true, "500ms", true)
	h.pool("web", 2, healing("pg/web", "2s"))
	h.waitFor("exactly one leading agent", 30*time.Second, func() (bool, string) {
		n, _ := h.leaders()
		return n == 1, fmt.Sprintf("%d leaders", n)
	})
	_, url := h.leaders()
	h.service("api", 1, "autarky.replicas.min=1", "autarky.replicas.max=4", "autarky.scale.cooldown_up=0s")
	h.waitFor("api running", time.Minute, func() (bool, string) { return h.runningTasks("api") == 1, "" })
	postAlert(t, url, "firing", "alertname", "api_busy", "service", "api", "scale", "up")
	h.waitFor("api scaled up", time.Minute, func() (bool, string) {
		n := h.runningTasks("api")
		return n == 2, fmt.Sprintf("%d running", n)
	})
	victim := h.instances("web")[0].ID
	h.kill(victim)
	h.nodeDown(victim, 30*time.Second)
	h.waitFor("the pool healed", 90*time.Second, func() (bool, string) { return h.settled("web", "worker", 2) })
	var replaced agent.Decision
	h.waitFor("the replacement among the decisions", 30*time.Second, func() (bool, string) {
		for _, d := range h.status(url).Decisions {
			if d.Kind == "replace_node" && d.Code == "act" {
				replaced = d
				return true, ""
			}
		}
		return false, "no replace_node decision yet"
	})

	// The agent evaluates every 500 ms, so status and page are read a
	// moment apart: a check holds when the page agrees with the status
	// read just before it, within a few tries.
	var problems []string
	for try := 0; try < 5; try++ {
		if try > 0 {
			time.Sleep(time.Second)
		}
		st := h.status(url)
		dom := string(chromium(t, bin, "--virtual-time-budget=2000", "--dump-dom", url+"/"))
		if problems = pageProblems(st, dom, replaced); len(problems) == 0 {
			break
		}
		t.Logf("try %d: %s", try+1, strings.Join(problems, "; "))
	}
	if len(problems) > 0 {
		t.Fatalf("the page does not show the status: %s", strings.Join(problems, "; "))
	}

	shot := os.Getenv("AUTARKY_PAGE_SCREENSHOT")
	if shot == "" {
		shot = filepath.Join(t.TempDir(), "page.png")
	}
	chromium(t, bin, "--virtual-time-budget=2000", "--window-size=1280,1400", "--screenshot="+shot, url+"/")
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot %s: %v", shot, err)
	}
	if b := img.Bounds(); b.Dx() != 1280 || b.Dy() != 1400 {
		t.Fatalf("screenshot is %v, want 1280x1400", b)
	}
	if n := colours(img); n < 20 {
		t.Fatalf("screenshot %s has %d colours: not a rendered page", shot, n)
	}
	t.Logf("screenshot of %s/ in %s", url, shot)
}

// pageProblems lists what the page's DOM lacks of the status: the
// cluster, each pool with its nodes, service api with its scale-up, the
// newest decision and the replacement, one chart per pool and service,
// and no script.
func pageProblems(st agent.Status, dom string, replaced agent.Decision) []string {
	var out []string
	bad := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	if !strings.Contains(dom, "Autarky · cluster pg") {
		bad("the page does not name the cluster")
	}
	if len(st.Pools) != 2 {
		bad("status has %d pools, want the managers and web: %+v", len(st.Pools), st.Pools)
	}
	for _, p := range st.Pools {
		if !strings.Contains(dom, `id="pool-`+p.ID+`"`) {
			bad("no section for pool %s", p.ID)
		}
		for _, n := range p.Nodes {
			if !strings.Contains(dom, "<td>"+domText(n.Hostname)+"</td>") {
				bad("node %s (%s) of %s not named", n.Hostname, n.State, p.ID)
			}
		}
	}
	if len(st.Services) != 1 || !strings.Contains(dom, `id="service-api"`) {
		bad("no section for service api (status: %+v)", st.Services)
	}
	if len(st.Decisions) == 0 {
		return append(out, "no decisions in the status")
	}
	ds := append([]agent.Decision(nil), st.Decisions...)
	sort.SliceStable(ds, func(i, j int) bool { return ds[i].Time.After(ds[j].Time) })
	check := []agent.Decision{ds[0], replaced}
	for _, d := range ds {
		if d.Service == "api" && d.Kind == "service_scale_up" {
			check = append(check, d)
			if !strings.Contains(dom, "<td>service api</td>") {
				bad("the service of a decision is not named")
			}
			break
		}
	}
	if len(check) != 3 {
		bad("no service_scale_up decision of service api among %+v", ds)
	}
	for _, d := range check {
		if !strings.Contains(dom, "<td>"+d.Kind) || !strings.Contains(dom, ">"+d.Code+"</span>") || !strings.Contains(dom, domText(d.Message)) {
			bad("decision %s %s missing: %s", d.Kind, d.Code, d.Message)
		}
	}
	if n := strings.Count(dom, `<path class="size"`); n != 3 {
		bad("%d size charts with a line, want one per pool and service (3)", n)
	}
	if strings.Contains(dom, "<script") {
		bad("the page carries a script")
	}
	return out
}

// domText is s as Chromium serialises it in a text node.
func domText(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

func colours(img image.Image) int {
	seen := map[[3]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			r, g, bl, _ := img.At(x, y).RGBA()
			seen[[3]uint32{r >> 8, g >> 8, bl >> 8}] = true
		}
	}
	return len(seen)
}

// The page is guarded as /v1/status: beyond loopback only with the status
// token, as a bearer token or as Basic authentication's password (a
// browser's prompt), and its 401 asks the browser for it; on loopback it
// is open. Only GET and HEAD of "/" serve it, with a policy that forbids
// every script.
func TestStatusPageAccess(t *testing.T) {
	p, err := local.New(testenv.StateDir(t), nil, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const token = "page-test-token-0123456789"
	newAgent := func(listen, statusToken string) *httptest.Server {
		a, err := agent.New(agent.Config{DockerHost: "unix:///nonexistent/docker.sock", Listen: listen, StatusToken: statusToken}, p.Cluster("pa"))
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(a.Handler())
		t.Cleanup(srv.Close)
		return srv
	}
	do := func(srv *httptest.Server, method, path string, header func(http.Header)) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if header != nil {
			header(req.Header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	basic := func(pw string) func(http.Header) {
		return func(h http.Header) {
			h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("anyone:"+pw)))
		}
	}
	bearer := func(tok string) func(http.Header) {
		return func(h http.Header) { h.Set("Authorization", "Bearer "+tok) }
	}

	beyond := newAgent("192.0.2.10:"+fmt.Sprint(policy.AgentPort), token)
	for _, c := range []struct {
		name   string
		header func(http.Header)
		want   int
	}{
		{"no credentials", nil, http.StatusUnauthorized},
		{"wrong password", basic("not-it"), http.StatusUnauthorized},
		{"empty password", basic(""), http.StatusUnauthorized},
		{"wrong bearer token", bearer("not-it"), http.StatusUnauthorized},
		{"token as Basic password", basic(token), http.StatusOK},
		{"token as bearer", bearer(token), http.StatusOK},
	} {
		resp := do(beyond, http.MethodGet, "/", c.header)
		if resp.StatusCode != c.want {
			t.Errorf("%s: %s, want %d", c.name, resp.Status, c.want)
		}
		if c.want == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("%s: 401 without a Basic challenge (%q): a browser would not ask", c.name, resp.Header.Values("WWW-Authenticate"))
		}
		if c.want == http.StatusOK {
			csp := resp.Header.Get("Content-Security-Policy")
			if !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") {
				t.Errorf("%s: Content-Security-Policy %q does not forbid scripts", c.name, csp)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("%s: Cache-Control %q, want no-store", c.name, cc)
			}
		}
	}
	// /v1/status takes the token as a bearer only, as before.
	if resp := do(beyond, http.MethodGet, "/v1/status", basic(token)); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/v1/status with Basic: %s, want 401", resp.Status)
	}
	// Beyond loopback with no token at all: nobody.
	none := newAgent("192.0.2.10:"+fmt.Sprint(policy.AgentPort), "")
	if resp := do(none, http.MethodGet, "/", basic("")); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("beyond loopback without a token: %s, want 401", resp.Status)
	}
	open := newAgent("127.0.0.1:0", "")
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/", http.StatusOK},
		{http.MethodHead, "/", http.StatusOK},
		{http.MethodPost, "/", http.StatusMethodNotAllowed},
		{http.MethodGet, "/index.html", http.StatusNotFound},
	} {
		if resp := do(open, c.method, c.path, nil); resp.StatusCode != c.want {
			t.Errorf("on loopback, %s %s: %s, want %d", c.method, c.path, resp.Status, c.want)
		}
	}
}
