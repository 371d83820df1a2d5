package provider

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// The provider's product token as the tests' provider (New("test")) says
// it, after the CLI's, as hashicorp providers put them.
var testUserAgent = regexp.MustCompile(`(^| )Terraform/[0-9]+\.[0-9]+\.[0-9]+\S* terraform-provider-autarky/test( |$)`)

// userAgents records, per call, the User-Agent a cloud saw.
type userAgents struct {
	mu    sync.Mutex
	calls map[string][]string // call -> user agents
}

func (u *userAgents) add(call, ua string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.calls == nil {
		u.calls = map[string][]string{}
	}
	u.calls[call] = append(u.calls[call], ua)
}

// check fails unless every recorded call carried the provider's user
// agent and the calls include want (so a test that made no call fails).
func (u *userAgents) check(want ...string) resource.TestCheckFunc {
	return func(*terraform.State) error {
		u.mu.Lock()
		defer u.mu.Unlock()
		var bad, seen []string
		for call, uas := range u.calls {
			seen = append(seen, call)
			for _, ua := range uas {
				if !testUserAgent.MatchString(ua) {
					bad = append(bad, fmt.Sprintf("%s: User-Agent %q", call, ua))
				}
			}
		}
		sort.Strings(seen)
		for _, w := range want {
			if len(u.calls[w]) == 0 {
				return fmt.Errorf("no %s call seen (calls: %s)", w, strings.Join(seen, ", "))
			}
		}
		if len(bad) > 0 {
			sort.Strings(bad)
			return fmt.Errorf("calls without the provider's user agent (Terraform/<version> terraform-provider-autarky/test):\n%s", strings.Join(bad, "\n"))
		}
		return nil
	}
}

// recordingProxy forwards to target and records each request's
// User-Agent under its method and path (the path's ids cut off).
func (u *userAgents) recordingProxy(t *testing.T, target string) string {
	t.Helper()
	to, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(to)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.add(r.Method+" "+callName(r.URL.Path), r.UserAgent())
		r.Host = to.Host
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// callName is a REST path's collection: /compute/v1/projects/p/regions/r/instanceGroupManagers/x -> instanceGroupManagers.
func callName(path string) string {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	for i := len(parts) - 1; i >= 0; i-- {
		switch parts[i] {
		case "instanceGroupManagers", "instanceTemplates", "operations", "instances", "o", "b":
			return parts[i]
		}
	}
	return path
}

// Every AWS call the provider makes says which provider release and which
// CLI made it: SDK calls reach moto through a proxy that records their
// User-Agent.
func TestAccAWS_userAgent(t *testing.T) {
	e := newAWSEnv(t)
	proxy := testenv.NewAWSProxy(t, e.endpoint)
	var seen userAgents
	proxy.SetFault(func(c testenv.AWSCall) *testenv.AWSFault {
		seen.add(c.Action, c.UserAgent)
		return nil
	})
	direct := e
	e.endpoint = proxy.URL
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             direct.checkNothingLeftInAWS("ua"),
		Steps: []resource.TestStep{{
			Config: e.provider() + e.cluster("ua", 1, ""),
			Check:  seen.check("CreateAutoScalingGroup", "CreateLaunchTemplate", "PutParameter"),
		}},
	})
}

// The same of every GCP call: Compute Engine's and Cloud Storage's.
func TestAccGCP_userAgent(t *testing.T) {
	e := newGCPEnv(t)
	var seen userAgents
	compute := seen.recordingProxy(t, e.srv.URL)
	gcs := seen.recordingProxy(t, e.gcs)
	cfg := strings.NewReplacer(e.srv.URL, compute, e.gcs, gcs).Replace(e.provider())
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             e.checkNothingLeftInGCP(t, "ua"),
		Steps: []resource.TestStep{{
			Config: cfg + e.cluster("ua", 1, ""),
			Check:  seen.check("POST instanceGroupManagers", "POST instanceTemplates", "POST o"),
		}},
	})
}
