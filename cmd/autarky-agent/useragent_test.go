package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/api/option"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
	"github.com/autarky/terraform-provider-autarky/internal/testenv/gce"
)

// uaVersion is the release the tests' agents say they are.
const uaVersion = "9.8.7-ua"

// agentUA matches the agent's product token among a User-Agent's tokens.
var agentUA = regexp.MustCompile(`(^| )autarky-agent/` + regexp.QuoteMeta(uaVersion) + `( |$)`)

// seenAgents records the User-Agent of each call a cloud saw, by call.
type seenAgents struct {
	mu    sync.Mutex
	calls map[string][]string
}

func (s *seenAgents) add(call, ua string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.calls == nil {
		s.calls = map[string][]string{}
	}
	s.calls[call] = append(s.calls[call], ua)
}

func (s *seenAgents) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = nil
}

// missing says which of want no call was seen of ("" when all were).
func (s *seenAgents) missing(want ...string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, w := range want {
		if len(s.calls[w]) == 0 {
			out = append(out, w)
		}
	}
	return strings.Join(out, ", ")
}

// without lists the calls whose User-Agent lacks the agent's token.
func (s *seenAgents) without() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var bad []string
	for call, uas := range s.calls {
		for _, ua := range uas {
			if !agentUA.MatchString(ua) {
				bad = append(bad, fmt.Sprintf("%s: User-Agent %q", call, ua))
			}
		}
	}
	sort.Strings(bad)
	return bad
}

// check fails t unless calls of every kind in want were seen, each with
// the agent's user agent.
func (s *seenAgents) check(t *testing.T, want ...string) {
	t.Helper()
	if m := s.missing(want...); m != "" {
		t.Errorf("no call seen of %s", m)
	}
	if bad := s.without(); len(bad) > 0 {
		t.Errorf("calls without autarky-agent/%s in their User-Agent:\n%s", uaVersion, strings.Join(bad, "\n"))
	}
}

// awsAgentEnv is moto behind a proxy that records each call's User-Agent,
// with the environment an agent on a manager would have (credentials,
// region), its endpoint the proxy.
func awsAgentEnv(t *testing.T) (*seenAgents, []string) {
	proxy := testenv.NewAWSProxy(t, testenv.StartMoto(t))
	seen := &seenAgents{}
	proxy.SetFault(func(c testenv.AWSCall) *testenv.AWSFault {
		seen.add(c.Action, c.UserAgent)
		return nil
	})
	env := map[string]string{"AWS_ENDPOINT_URL": proxy.URL, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
		"AWS_SESSION_TOKEN": "", "AWS_PROFILE": "", "AWS_REGION": "eu-west-1", "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}
	var list []string
	for k, v := range env {
		t.Setenv(k, v)
		list = append(list, k+"="+v)
	}
	return seen, list
}

// The agent's AWS calls carry autarky-agent/<version> as the provider's
// carry terraform-provider-autarky/<version>: `autarky-agent run`, built
// as a release is (the version set by the linker), says it on the calls
// it makes before it reaches Docker (SSM), and the clients it opens say it
// on every service (Auto Scaling, EC2, SSM).
func TestAgentAWSUserAgent(t *testing.T) {
	seen, env := awsAgentEnv(t)
	bin := agentRelease(t)
	cmd := exec.Command(bin, "run", "--platform", "aws", "--cluster", "ua", "--docker-host", "unix:///nonexistent/docker.sock",
		"--listen", "127.0.0.1:0", "--evaluation-interval", "1s")
	cmd.Env = append(os.Environ(), env...)
	var log testenv.LockedBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}
	defer stop()
	deadline := time.Now().Add(time.Minute)
	for seen.missing("GetParameter") != "" {
		if time.Now().After(deadline) {
			t.Fatalf("autarky-agent run made no SSM call:\n%s", log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	seen.check(t, "GetParameter")

	// The clients the agent opens, on every service.
	seen.reset()
	opened, err := platform.Open(t.Context(), policy.PlatformAWS, platform.AgentSettings{Cluster: "ua", UserAgent: "autarky-agent/" + uaVersion})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := opened.Cluster.Instances(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := opened.Cluster.StartInstance(t.Context(), policy.Pool{Cluster: "ua", Name: "web", Role: policy.RoleWorker}); err == nil {
		t.Fatal("started an instance of a pool that has no group")
	}
	seen.check(t, "GetParameter", "DescribeAutoScalingGroups")
}

// The same of the agent's Google clients, Compute Engine's and Cloud
// Storage's: the agent on a manager has Application Default Credentials
// (here a service account key whose token endpoint is the test's).
func TestAgentGCPUserAgent(t *testing.T) {
	seen := &seenAgents{}
	compute := seen.recorder(t, gce.Start(t, gce.Options{}).URL)
	gcsURL := testenv.StartGCS(t)
	gcs := seen.recorder(t, gcsURL)
	st, err := storage.NewClient(context.Background(), option.WithEndpoint(gcsURL+"/storage/v1/"), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Bucket("ua-store").Create(context.Background(), "ua-project", nil); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", serviceAccountKey(t))
	opened, err := platform.Open(t.Context(), policy.PlatformGCP, platform.AgentSettings{Cluster: "ua", Project: "ua-project",
		Region: "europe-west1", Bucket: "ua-store", ComputeEndpoint: compute, StorageEndpoint: gcs + "/storage/v1/",
		UserAgent: "autarky-agent/" + uaVersion})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := opened.Cluster.NotifyWebhook(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := opened.Cluster.StartInstance(t.Context(), policy.Pool{Cluster: "ua", Name: "web", Role: policy.RoleWorker}); !errors.Is(err, platform.ErrNotFound) {
		t.Fatalf("starting an instance of a pool that has no group: %v", err)
	}
	seen.check(t, "compute", "storage")
}

// recorder is a proxy to target that records each request's User-Agent
// under the API it calls (compute or storage).
func (s *seenAgents) recorder(t *testing.T, target string) string {
	to, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(to)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api := "storage"
		if strings.HasPrefix(r.URL.Path, "/compute/") {
			api = "compute"
		}
		s.add(api, r.UserAgent())
		r.Host = to.Host
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// serviceAccountKey writes a service account key file whose token
// endpoint is a server of the test's, which gives any signed assertion a
// token: what Google's would give the agent's VM.
func serviceAccountKey(t *testing.T) string {
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"ua-token","token_type":"Bearer","expires_in":3600}`)
	}))
	t.Cleanup(tokens.Close)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "ua-project", "private_key_id": "1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": "agent@ua-project.iam.gserviceaccount.com", "client_id": "1", "token_uri": tokens.URL + "/token",
	})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "key.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// agentRelease builds the agent as a release is built: its version set by
// the linker.
func agentRelease(t *testing.T) string {
	return testenv.AgentBinary(t, "-ldflags", "-X main.version="+uaVersion)
}
