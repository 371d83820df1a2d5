package provider

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	compute "cloud.google.com/go/compute/apiv1"
	"cloud.google.com/go/compute/apiv1/computepb"
	"cloud.google.com/go/storage"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
	"google.golang.org/api/option"

	"github.com/autarky/terraform-provider-autarky/internal/platform/gcp"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
	"github.com/autarky/terraform-provider-autarky/internal/testenv/gce"
)

const (
	gcpTestProject = "autarky-test"
	gcpTestRegion  = "europe-west1"
	gcpTestBucket  = "autarky-test-store"
)

// gcpEnv is one test's fake Compute Engine (ours: no emulator exists) and
// fake-gcs-server with the bucket a user brings.
type gcpEnv struct {
	srv      *gce.Server
	gcs      string // fake-gcs-server's URL
	stateDir string
}

// newGCPEnv starts the fakes and clears the GOOGLE_* variables the
// provider falls back to; the tests using it are not parallel.
func newGCPEnv(t *testing.T) gcpEnv {
	t.Helper()
	preCheckTerraform(t)
	e := gcpEnv{srv: gce.Start(t, gce.Options{}), gcs: testenv.StartGCS(t), stateDir: testenv.StateDir(t)}
	for _, v := range []string{envGoogleProject, envGoogleRegion, envGoogleCredentials, "GOOGLE_APPLICATION_CREDENTIALS"} {
		t.Setenv(v, "")
	}
	st := e.storage(t)
	if err := st.Bucket(gcpTestBucket).Create(context.Background(), gcpTestProject, nil); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e gcpEnv) storage(t *testing.T) *storage.Client {
	t.Helper()
	st, err := storage.NewClient(context.Background(), option.WithEndpoint(e.gcs+"/storage/v1/"), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func (e gcpEnv) provider() string {
	return fmt.Sprintf(`
provider "autarky" {
  local {
    state_dir = %q
  }
  gcp {
    project   = %q
    region    = %q
    bucket    = %q
    endpoints = { compute = %q, storage = "%s/storage/v1/" }
  }
}
`, e.stateDir, gcpTestProject, gcpTestRegion, gcpTestBucket, e.srv.URL, e.gcs)
}

func (e gcpEnv) cluster(name string, managers int, extra string) string {
	return fmt.Sprintf(`
resource "autarky_cluster" "test" {
  name          = %q
  platform      = "gcp"
  manager_count = %d
  labels        = { env = "test" }
  gcp {
    zones           = ["europe-west1-b", "europe-west1-c"]
    machine_type    = "e2-small"
    image           = "projects/debian-cloud/global/images/family/debian-12"
    subnetwork      = "regions/europe-west1/subnetworks/nodes"
    service_account = "managers@autarky-test.iam.gserviceaccount.com"
    network_tags    = ["swarm"]
  }
  %s
}
`, name, managers, extra)
}

// groups is a Compute Engine client of the fake, as a person with the
// console would use it.
func (e gcpEnv) groups(t *testing.T) (*compute.RegionInstanceGroupManagersClient, *compute.InstanceTemplatesClient) {
	t.Helper()
	opts := []option.ClientOption{option.WithEndpoint(e.srv.URL), option.WithoutAuthentication()}
	g, err := compute.NewRegionInstanceGroupManagersRESTClient(context.Background(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	tm, err := compute.NewInstanceTemplatesRESTClient(context.Background(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close(); tm.Close() })
	return g, tm
}

// checkGroup checks a group's target size, that it never rebalances
// zones, and the instance template its VMs come from: machine type,
// labels, the startup script, the service account.
func (e gcpEnv) checkGroup(t *testing.T, name string, target int, machineType, serviceAccount string) resource.TestCheckFunc {
	return func(*terraform.State) error {
		g := e.srv.GroupResource(gcpTestRegion, name)
		if g == nil {
			return fmt.Errorf("group %s does not exist", name)
		}
		if got := fmt.Sprint(g["targetSize"]); got != fmt.Sprint(target) {
			return fmt.Errorf("group %s: targetSize %s, want %d", name, got, target)
		}
		up, _ := g["updatePolicy"].(map[string]any)
		if up["instanceRedistributionType"] != "NONE" {
			return fmt.Errorf("group %s: updatePolicy %v, want instanceRedistributionType NONE", name, up)
		}
		_, tm := e.groups(t)
		tmpl, err := tm.Get(context.Background(), &computepb.GetInstanceTemplateRequest{Project: gcpTestProject, InstanceTemplate: lastPart(fmt.Sprint(g["instanceTemplate"]))})
		if err != nil {
			return fmt.Errorf("group %s's template: %w", name, err)
		}
		p := tmpl.GetProperties()
		cluster, pool, _ := strings.Cut(name, "-")
		if p.GetMachineType() != machineType {
			return fmt.Errorf("template %s: machine type %q, want %q", tmpl.GetName(), p.GetMachineType(), machineType)
		}
		if p.GetLabels()[gcp.LabelCluster] != cluster || p.GetLabels()[gcp.LabelPool] != pool {
			return fmt.Errorf("template %s: labels %v, want %s=%s and %s=%s", tmpl.GetName(), p.GetLabels(), gcp.LabelCluster, cluster, gcp.LabelPool, pool)
		}
		if sa := p.GetServiceAccounts(); len(sa) != 1 || sa[0].GetEmail() != serviceAccount {
			return fmt.Errorf("template %s: service accounts %v, want %s", tmpl.GetName(), sa, serviceAccount)
		}
		script := ""
		for _, it := range p.GetMetadata().GetItems() {
			if it.GetKey() == "startup-script" {
				script = it.GetValue()
			}
		}
		// The script reads the cluster's store in the provider's bucket.
		if !strings.HasPrefix(script, "#!") || !strings.Contains(script, gcpTestBucket) {
			return fmt.Errorf("template %s: startup-script %.200q: want a script naming bucket %s", tmpl.GetName(), script, gcpTestBucket)
		}
		return nil
	}
}

// checkTemplates checks that group has exactly one instance template
// left: an update makes a new one and deletes the old.
func (e gcpEnv) checkTemplates(t *testing.T, group string) resource.TestCheckFunc {
	return func(*terraform.State) error {
		_, tm := e.groups(t)
		var names []string
		err := gcp.Each(tm.List(context.Background(), &computepb.ListInstanceTemplatesRequest{Project: gcpTestProject}).Next, func(x *computepb.InstanceTemplate) {
			if strings.HasPrefix(x.GetName(), group+"-") {
				names = append(names, x.GetName())
			}
		})
		if err == nil && len(names) != 1 {
			err = fmt.Errorf("group %s has templates %v, want one", group, names)
		}
		return err
	}
}

func lastPart(url string) string { return url[strings.LastIndex(url, "/")+1:] }

// resize sets a group's target size behind Terraform's back and waits
// until the fake has deleted the VMs beyond it.
func (e gcpEnv) resize(t *testing.T, name string, size int) {
	t.Helper()
	g, _ := e.groups(t)
	op, err := g.Resize(context.Background(), &computepb.ResizeRegionInstanceGroupManagerRequest{Project: gcpTestProject, Region: gcpTestRegion,
		InstanceGroupManager: name, Size: int32(size)})
	if err != nil {
		t.Fatal(err)
	}
	if err := op.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(e.srv.Instances(name)) != size {
		if time.Now().After(deadline) {
			t.Fatalf("group %s still has %d VMs, want %d", name, len(e.srv.Instances(name)), size)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkNothingLeftInGCP is a CheckDestroy: no group, template or VM is
// left in the fake, and no object under autarky/<cluster>/ in the bucket.
func (e gcpEnv) checkNothingLeftInGCP(t *testing.T, cluster string) resource.TestCheckFunc {
	return func(*terraform.State) error {
		ctx := context.Background()
		var left []string
		g, tm := e.groups(t)
		err := errors.Join(
			gcp.Each(g.List(ctx, &computepb.ListRegionInstanceGroupManagersRequest{Project: gcpTestProject, Region: gcpTestRegion}).Next,
				func(m *computepb.InstanceGroupManager) { left = append(left, "group "+m.GetName()) }),
			gcp.Each(tm.List(ctx, &computepb.ListInstanceTemplatesRequest{Project: gcpTestProject}).Next,
				func(x *computepb.InstanceTemplate) { left = append(left, "instance template "+x.GetName()) }),
			gcp.Each(e.storage(t).Bucket(gcpTestBucket).Objects(ctx, &storage.Query{Prefix: gcp.ClusterRoot(cluster)}).Next,
				func(o *storage.ObjectAttrs) { left = append(left, "object gs://"+gcpTestBucket+"/"+o.Name) }))
		if err != nil {
			return err
		}
		// A deleted group's VMs are gone once its operation is DONE.
		for _, in := range e.srv.Instances("") {
			left = append(left, fmt.Sprintf("VM %s (%s)", in.Name, in.Status))
		}
		if len(left) > 0 {
			return fmt.Errorf("left in GCP after destroy:\n%s", strings.Join(left, "\n"))
		}
		return nil
	}
}

// A cluster and two pools on GCP (the fakes): created as instance
// templates, regional groups that never rebalance zones, and objects in
// the bucket; changed in place (a new machine type is a new template);
// imported; drift seen; all gone after destroy.
func TestAccGCP_lifecycle(t *testing.T) {
	e := newGCPEnv(t)
	pools := func(desired int, machineType string) string {
		return fmt.Sprintf(`
resource "autarky_node_pool" "web" {
  cluster_id   = autarky_cluster.test.id
  name         = "web"
  min_size     = 1
  max_size     = 5
  desired_size = %d
  labels       = { tier = "web" }
  gcp {
    machine_type    = %q
    service_account = "workers@autarky-test.iam.gserviceaccount.com"
  }
}

resource "autarky_healing_policy" "web" {
  node_pool_id    = autarky_node_pool.web.id
  unhealthy_after = "30s"
}

resource "autarky_node_pool" "jobs" {
  cluster_id   = autarky_cluster.test.id
  name         = "jobs"
  max_size     = 4
  desired_size = 1
  gcp {
    service_account = "workers@autarky-test.iam.gserviceaccount.com"
  }
}

resource "autarky_scaling_policy" "jobs" {
  node_pool_id  = autarky_node_pool.jobs.id
  pending_tasks = { enabled = true }
}
`, desired, machineType)
	}
	const managersSA, workersSA = "managers@autarky-test.iam.gserviceaccount.com", "workers@autarky-test.iam.gserviceaccount.com"
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             e.checkNothingLeftInGCP(t, "sky"),
		Steps: []resource.TestStep{
			{
				Config: e.provider() + e.cluster("sky", 1, "") + pools(2, "e2-medium"),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("autarky_cluster.test", tfjsonpath.New("manager_addresses"), knownvalue.ListSizeExact(1)),
					statecheck.ExpectKnownValue("autarky_node_pool.web", tfjsonpath.New("current_size"), knownvalue.Int64Exact(2)),
					statecheck.ExpectKnownValue("autarky_node_pool.jobs", tfjsonpath.New("current_size"), knownvalue.Int64Exact(1)),
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					e.checkGroup(t, "sky-managers", 1, "e2-small", managersSA),
					e.checkGroup(t, "sky-web", 2, "e2-medium", workersSA),
					e.checkGroup(t, "sky-jobs", 1, "e2-small", workersSA),
				),
			},
			{
				// More managers and web nodes, another machine type: in
				// place, a new template for web.
				Config: e.provider() + e.cluster("sky", 3, "") + pools(3, "e2-standard-2"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("autarky_cluster.test", plancheck.ResourceActionUpdate),
					plancheck.ExpectResourceAction("autarky_node_pool.web", plancheck.ResourceActionUpdate),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("autarky_cluster.test", tfjsonpath.New("manager_addresses"), knownvalue.ListSizeExact(3)),
					statecheck.ExpectKnownValue("autarky_node_pool.web", tfjsonpath.New("current_size"), knownvalue.Int64Exact(3)),
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					e.checkGroup(t, "sky-managers", 3, "e2-small", managersSA),
					e.checkGroup(t, "sky-web", 3, "e2-standard-2", workersSA),
					e.checkTemplates(t, "sky-web"),
				),
			},
			{ResourceName: "autarky_cluster.test", ImportState: true, ImportStateVerify: true, ImportStateVerifyIgnore: []string{"timeouts"}},
			{ResourceName: "autarky_node_pool.web", ImportState: true, ImportStateVerify: true, ImportStateVerifyIgnore: []string{"timeouts"}},
			{ResourceName: "autarky_node_pool.jobs", ImportState: true, ImportStateVerify: true, ImportStateVerifyIgnore: []string{"timeouts"}},
			{ResourceName: "autarky_healing_policy.web", ImportState: true, ImportStateVerify: true},
			{ResourceName: "autarky_scaling_policy.jobs", ImportState: true, ImportStateVerify: true},
			{
				// Someone resizes the web group by hand: the plan shows it.
				PreConfig:          func() { e.resize(t, "sky-web", 1) },
				Config:             e.provider() + e.cluster("sky", 3, "") + pools(3, "e2-standard-2"),
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			{
				Config: e.provider() + e.cluster("sky", 3, "") + pools(3, "e2-standard-2"),
				Check:  e.checkGroup(t, "sky-web", 3, "e2-standard-2", workersSA),
			},
			{
				// A regional group's zones cannot change: refused at plan.
				Config:      e.provider() + strings.Replace(e.cluster("sky", 3, ""), `"europe-west1-c"`, `"europe-west1-d"`, 1) + pools(3, "e2-standard-2"),
				ExpectError: regexp.MustCompile(`gcp.zones:\s+the\s+cluster's\s+regional\s+Managed\s+Instance\s+Groups\s+spread\s+over\s+\[europe-west1-b\s+europe-west1-c\]`),
			},
			{
				// Lowering manager_count is refused on gcp, and nothing changes.
				Config:      e.provider() + e.cluster("sky", 1, "") + pools(3, "e2-standard-2"),
				ExpectError: regexp.MustCompile(`manager_count:\s+lowering\s+it\s+from\s+3\s+to\s+1\s+is\s+not\s+supported\s+on\s+gcp`),
			},
		},
	})
}

// Bad GCP input is refused at plan time naming the field, and leaves
// nothing in GCP.
func TestAccGCP_badInput(t *testing.T) {
	e := newGCPEnv(t)
	local := fmt.Sprintf("provider \"autarky\" {\n  local {\n    state_dir = %q\n  }\n}\n", e.stateDir)
	good := e.cluster("bad", 1, "")
	for _, tc := range []struct{ config, want string }{
		{e.provider() + strings.Replace(good, `"europe-west1-c"`, `"us-east1-b"`, 1), `gcp.zones: "us-east1-b" is not a zone of region europe-west1`},
		{e.provider() + strings.Replace(good, `"e2-small"`, `"E2 small"`, 1), `gcp.machine_type: "E2 small" is not a machine type`},
		{e.provider() + strings.Replace(good, "family/debian-12", "debian 12", 1), `gcp.image: "projects/debian-cloud/global/images/debian 12" is not an image`},
		{e.provider() + strings.Replace(good, "regions/europe-west1/subnetworks", "regions/us-east1/subnetworks", 1), `gcp.subnetwork: "regions/us-east1/subnetworks/nodes" is in region us-east1`},
		{e.provider() + strings.Replace(good, `["swarm"]`, `["Swarm"]`, 1), `gcp.network_tags\[0\]: "Swarm" is not a Compute Engine name`},
		{strings.Replace(e.provider(), gcpTestBucket, "goog-store", 1) + good, `gcp.bucket: "goog-store" is not a bucket name`},
		{strings.Replace(e.provider(), `region    = "europe-west1"`, `region    = "moon"`, 1) + good, `gcp.region: "moon" is not a region`},
		{strings.Replace(e.provider(), gcpTestBucket, "no-such-bucket", 1) + good, `gcp.bucket: list gs://no-such-bucket/autarky/bad/: storage: bucket doesn't exist`},
		{strings.Replace(e.provider(), `region    = "europe-west1"`, ``, 1) + good, `gcp.region: the gcp platform needs the region of its groups`},
		{e.provider() + e.cluster("bad", 1, `join_token_rotation = "2026-11"`), `join_token_rotation: on platform "gcp" the agent on the managers rotates`},
		{e.provider() + e.cluster("bad", 1, `agent = { enabled = true }`), `agent.binary_url: "" is not an http\(s\) URL`},
		{e.provider() + strings.Replace(good, `platform      = "gcp"`, `platform      = "local"`, 1), `the gcp block is for platform "gcp" only`},
		{e.provider() + `
resource "autarky_cluster" "test" {
  name     = "bad"
  platform = "gcp"
}`, `gcp.machine_type: platform "gcp" needs it`},
		{local + good, `platform "gcp" needs the provider's gcp block`},
		{e.provider() + good + `
resource "autarky_node_pool" "web" {
  cluster_id = autarky_cluster.test.id
  name       = "web"
  max_size   = 2
  gcp {
    service_account = "workers"
  }
}`, `gcp.service_account: "workers" is not a service account email`},
	} {
		t.Run(tc.want, func(t *testing.T) {
			// Terraform wraps long messages: any space may be a line break.
			want := regexp.MustCompile(strings.ReplaceAll(tc.want, " ", `\s+`))
			resource.Test(t, resource.TestCase{
				ProtoV6ProviderFactories: protoV6ProviderFactories,
				Steps:                    []resource.TestStep{{Config: tc.config, ExpectError: want}},
			})
		})
	}
	if err := e.checkNothingLeftInGCP(t, "bad")(nil); err != nil {
		t.Fatal(err)
	}
}

// A value known only at apply (a subnetwork made in the same run) does not
// fail the plan, which still refuses what it can decide from the known
// values (join token rotation without an acting agent).
func TestAccGCP_planWithUnknowns(t *testing.T) {
	e := newGCPEnv(t)
	unknown := strings.Replace(e.cluster("later", 1, "%s"), `"regions/europe-west1/subnetworks/nodes"`, `terraform_data.net.output`, 1) + `
resource "terraform_data" "net" {
  input = "regions/europe-west1/subnetworks/nodes"
}
`
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{Config: e.provider() + fmt.Sprintf(unknown, ""), PlanOnly: true, ExpectNonEmptyPlan: true},
			{Config: e.provider() + fmt.Sprintf(unknown, `join_token_rotation = "2026-11"`), PlanOnly: true,
				ExpectError: regexp.MustCompile(`join_token_rotation:\s+on\s+platform\s+"gcp"\s+the\s+agent`)},
		},
	})
}

// A provider with local, aws and gcp blocks finds a gcp cluster's pools
// even when AWS cannot be asked (no AWS credentials here): the aws
// block's error does not hide the cluster the bucket holds.
func TestAccGCP_besideBrokenAWS(t *testing.T) {
	e := newGCPEnv(t)
	for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_PROFILE": "",
		"AWS_SHARED_CREDENTIALS_FILE": t.TempDir() + "/none", "AWS_CONFIG_FILE": t.TempDir() + "/none", "AWS_EC2_METADATA_DISABLED": "true"} {
		t.Setenv(k, v)
	}
	withAWS := strings.Replace(e.provider(), "  gcp {", "  aws {\n    region = \"us-east-1\"\n  }\n  gcp {", 1)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             e.checkNothingLeftInGCP(t, "both"),
		Steps: []resource.TestStep{{
			Config: withAWS + e.cluster("both", 1, "") + `
resource "autarky_node_pool" "web" {
  cluster_id   = autarky_cluster.test.id
  name         = "web"
  max_size     = 2
  desired_size = 1
  gcp {
    service_account = "workers@autarky-test.iam.gserviceaccount.com"
  }
}
`,
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue("autarky_node_pool.web", tfjsonpath.New("current_size"), knownvalue.Int64Exact(1)),
			},
		}},
	})
}

// Without credentials anywhere (no credentials setting, no
// GOOGLE_CREDENTIALS, no Application Default Credentials, no metadata
// server) and with Google's endpoints, the plan fails naming what to set,
// and nothing is created.
func TestAccGCP_noCredentials(t *testing.T) {
	e := newGCPEnv(t)
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", t.TempDir()+"/none.json")
	t.Setenv("CLOUDSDK_CONFIG", t.TempDir())
	t.Setenv("GCE_METADATA_HOST", "127.0.0.1:1")
	noEndpoints := regexp.MustCompile(`(?m)^\s*endpoints = .*$`).ReplaceAllString(e.provider(), "")
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config:      noEndpoints + e.cluster("nocreds", 1, ""),
			ExpectError: regexp.MustCompile(`no\s+Google\s+credentials\s+found:\s+set\s+credentials\s+in\s+the\s+provider's\s+gcp\s+block`),
		}},
	})
	if err := e.checkNothingLeftInGCP(t, "nocreds")(nil); err != nil {
		t.Fatal(err)
	}
}
