package policy

import (
	"strings"
	"testing"
)

func validGCP() GCP {
	return GCP{Project: "my-project-1", Region: "europe-west1", Zones: []string{"europe-west1-b", "europe-west1-c"},
		MachineType: "e2-standard-2", Image: "projects/debian-cloud/global/images/family/debian-12",
		Subnetwork: "projects/host-proj/regions/europe-west1/subnetworks/nodes", ServiceAccount: "managers@my-project-1.iam.gserviceaccount.com",
		NetworkTags: []string{"swarm"}, Bucket: "my-autarky-store"}
}

func TestGCPValidate(t *testing.T) {
	if err := validGCP().Validate(); err != nil {
		t.Fatalf("valid settings refused: %v", err)
	}
	full := validGCP()
	full.Image = "https://www.googleapis.com/compute/v1/projects/debian-cloud/global/images/debian-12-bookworm-v20240110"
	full.Subnetwork = "regions/europe-west1/subnetworks/default"
	full.ServiceAccount = ""
	full.Zones = nil
	if err := full.Validate(); err != nil {
		t.Fatalf("valid settings refused: %v", err)
	}
	for _, c := range []struct {
		field string
		mod   func(*GCP)
	}{
		{"gcp.project", func(g *GCP) { g.Project = "My_Project" }},
		{"gcp.project", func(g *GCP) { g.Project = "" }},
		{"gcp.region", func(g *GCP) { g.Region = "europe-west" }},
		{"gcp.zones", func(g *GCP) { g.Zones = []string{"us-central1-a"} }},
		{"gcp.zones", func(g *GCP) { g.Zones = []string{"europe-west1"} }},
		{"gcp.machine_type", func(g *GCP) { g.MachineType = "t3.medium" }},
		{"gcp.image", func(g *GCP) { g.Image = "debian-12" }},
		{"gcp.subnetwork", func(g *GCP) { g.Subnetwork = "nodes" }},
		{"gcp.subnetwork", func(g *GCP) { g.Subnetwork = "regions/us-east1/subnetworks/nodes" }},
		{"gcp.service_account", func(g *GCP) { g.ServiceAccount = "not-an-email" }},
		{"gcp.network_tags", func(g *GCP) { g.NetworkTags = []string{"Swarm"} }},
		{"gcp.bucket", func(g *GCP) { g.Bucket = "" }},
		{"gcp.bucket", func(g *GCP) { g.Bucket = "google-store" }},
		{"gcp.bucket", func(g *GCP) { g.Bucket = "Store" }},
	} {
		g := validGCP()
		c.mod(&g)
		err := g.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), c.field+":") {
			t.Errorf("%+v: got %v, want an error naming %s", g, err, c.field)
		}
	}
	if err := (GCPPool{MachineType: "n2-custom-4-8192", ServiceAccount: "web@p-123456.iam.gserviceaccount.com"}).Validate(); err != nil {
		t.Errorf("valid pool settings refused: %v", err)
	}
	if err := (GCPPool{ServiceAccount: "web"}).Validate(); err == nil || !strings.Contains(err.Error(), "gcp.service_account") {
		t.Errorf("bad pool service account: %v", err)
	}
}

func TestGCPBlockMatchesPlatform(t *testing.T) {
	g := validGCP()
	c := Cluster{Name: "prod", Platform: PlatformAWS, ManagerCount: 1, HeartbeatPeriod: "5s", GCP: &g}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "gcp block is for platform \"gcp\" only") {
		t.Errorf("gcp block on aws: %v", err)
	}
}

func TestGCPServiceAccountOf(t *testing.T) {
	g := validGCP()
	if got := ServiceAccountOf(g, nil); got != g.ServiceAccount {
		t.Errorf("no pool override: %q", got)
	}
	if got := ServiceAccountOf(g, &GCPPool{ServiceAccount: "w@p.iam.gserviceaccount.com"}); got != "w@p.iam.gserviceaccount.com" {
		t.Errorf("pool override: %q", got)
	}
	if got := MachineTypeOf(g, &GCPPool{}); got != g.MachineType {
		t.Errorf("machine type fallback: %q", got)
	}
}
