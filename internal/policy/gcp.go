package policy

import (
	"fmt"
	"net"
	"regexp"
	"strings"
)

// GCP says where a cluster's instances run on the gcp platform. Every pool
// of the cluster starts from these settings; a pool's GCPPool overrides
// some of them.
type GCP struct {
	Project string `json:"project"`
	// Region holds every pool's regional Managed Instance Group; Zones
	// are the zones the groups spread over (empty: Google picks them in
	// the region).
	Region string   `json:"region"`
	Zones  []string `json:"zones,omitempty"`
	// MachineType is every pool's machine type ("e2-standard-2").
	MachineType string `json:"machine_type"`
	// Image is the boot image: projects/<p>/global/images/<name> or
	// .../images/family/<family>, or its full URL.
	Image string `json:"image"`
	// Subnetwork is the subnetwork of Region the instances get their
	// (internal only) address from: regions/<region>/subnetworks/<name>,
	// optionally after projects/<host project>/ for a Shared VPC.
	Subnetwork string `json:"subnetwork"`
	// ServiceAccount is the managers' service account email (and every
	// pool's without its own); empty: the project's default compute
	// service account.
	ServiceAccount string   `json:"service_account,omitempty"`
	NetworkTags    []string `json:"network_tags,omitempty"`
	// Bucket is the Cloud Storage bucket of the cluster's store.
	Bucket string `json:"bucket"`
}

// GCPPool overrides the cluster's GCP settings for one pool.
type GCPPool struct {
	MachineType string `json:"machine_type,omitempty"`
	// ServiceAccount is the pool's own service account, which needs the
	// workers' role only; a worker pool without one boots with the
	// cluster's (the managers') service account and its rights.
	ServiceAccount string `json:"service_account,omitempty"`
}

// ServiceAccountOf is the service account a pool's instances run as: its
// own, else the cluster's (the managers').
func ServiceAccountOf(c GCP, pool *GCPPool) string {
	if pool != nil && pool.ServiceAccount != "" {
		return pool.ServiceAccount
	}
	return c.ServiceAccount
}

// MachineTypeOf is a pool's machine type: its own, else the cluster's.
func MachineTypeOf(c GCP, pool *GCPPool) string {
	if pool != nil && pool.MachineType != "" {
		return pool.MachineType
	}
	return c.MachineType
}

const gceURLPrefix = `(https://(www|compute)\.googleapis\.com/compute/v1/)?`

var (
	gcpProjectRE     = regexp.MustCompile(`^([a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$`)
	gcpRegionRE      = regexp.MustCompile(`^[a-z]+-[a-z]+[0-9]+$`)
	gcpMachineTypeRE = regexp.MustCompile(`^[a-z][a-z0-9]*(-[a-z0-9]+)+$`)
	gcpImageRE       = regexp.MustCompile(`^` + gceURLPrefix + `projects/[a-z0-9.:-]+/global/images/(family/)?[a-z]([-a-z0-9]{0,61}[a-z0-9])?$`)
	gcpSubnetworkRE  = regexp.MustCompile(`^` + gceURLPrefix + `(projects/[a-z0-9.:-]+/)?regions/([a-z]+-[a-z]+[0-9]+)/subnetworks/[a-z]([-a-z0-9]{0,61}[a-z0-9])?$`)
	gcpSAEmailRE     = regexp.MustCompile(`^[a-z0-9][-a-z0-9.]{0,99}@[a-z0-9][-a-z0-9.]*\.gserviceaccount\.com$`)
	gceNameRE        = regexp.MustCompile(`^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$`)
)

// ValidateGCEName checks a Compute Engine resource name (RFC 1035: a
// lower-case letter, then up to 62 lower-case letters, digits or '-', not
// ending with '-').
func ValidateGCEName(s string) error {
	if !gceNameRE.MatchString(s) {
		return fmt.Errorf("%q is not a Compute Engine name: use 1 to 63 lower-case letters, digits and '-', starting with a letter and not ending with '-'", s)
	}
	return nil
}

// ValidateGCPMachineType checks a machine type's shape ("e2-standard-2").
func ValidateGCPMachineType(s string) error {
	if !gcpMachineTypeRE.MatchString(s) {
		return fmt.Errorf("%q is not a machine type: use one such as \"e2-standard-2\" or \"n2-custom-4-8192\"", s)
	}
	return nil
}

// ValidateGCPServiceAccount checks a service account email.
func ValidateGCPServiceAccount(s string) error {
	if !gcpSAEmailRE.MatchString(s) {
		return fmt.Errorf("%q is not a service account email: use <name>@<project>.iam.gserviceaccount.com", s)
	}
	return nil
}

// ValidateGCPProject checks a project id. The provider's gcp block and
// GCP.Validate both call it: one rule.
func ValidateGCPProject(s string) error {
	if !gcpProjectRE.MatchString(s) {
		return fmt.Errorf("%q is not a project id: use 6 to 30 lower-case letters, digits and '-', starting with a letter", s)
	}
	return nil
}

// ValidateGCPRegion checks a region name.
func ValidateGCPRegion(s string) error {
	if !gcpRegionRE.MatchString(s) {
		return fmt.Errorf("%q is not a region: use one such as \"europe-west1\"", s)
	}
	return nil
}

// ValidateGCSBucket checks a bucket name against Cloud Storage's rules
// (https://cloud.google.com/storage/docs/buckets#naming): 3 to 63
// characters (up to 222 with dots, each dot-separated part at most 63),
// only lowercase letters, digits, "-", "_" and ".", beginning and ending
// with a letter or digit, not an IP address, not beginning with "goog"
// and not containing "google" (nor "g00gle" and the like).
func ValidateGCSBucket(name string) error {
	if why := bucketRule(name); why != "" {
		return fmt.Errorf("%q is not a bucket name: %s", name, why)
	}
	return nil
}

// bucketRule is why name breaks Cloud Storage's naming rules, "" when it
// does not.
func bucketRule(name string) string {
	const allowed = "use 3 to 63 lowercase letters, digits, \"-\", \"_\" or \".\" (up to 222 with dots, each dot-separated part at most 63), beginning and ending with a letter or digit"
	if strings.HasPrefix(name, "gs://") {
		return "name the bucket without gs://"
	}
	if name == "" {
		return allowed
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Sprintf("it holds %q: %s", r, allowed)
		}
	}
	alnum := func(b byte) bool { return b >= 'a' && b <= 'z' || b >= '0' && b <= '9' }
	if !alnum(name[0]) || !alnum(name[len(name)-1]) {
		return allowed
	}
	maxLen := 63
	if strings.Contains(name, ".") {
		maxLen = 222
		for _, part := range strings.Split(name, ".") {
			if part == "" || len(part) > 63 {
				return "a dot-separated part is empty or longer than 63 characters: " + allowed
			}
		}
	}
	if len(name) < 3 || len(name) > maxLen {
		return fmt.Sprintf("it is %d characters: %s", len(name), allowed)
	}
	if net.ParseIP(name) != nil {
		return "it is an IP address, which Cloud Storage refuses"
	}
	if strings.HasPrefix(name, "goog") || strings.Contains(strings.ReplaceAll(name, "0", "o"), "google") {
		return "Cloud Storage refuses names that begin with \"goog\" or contain \"google\" or a look-alike"
	}
	return ""
}

// Validate checks the cluster's GCP settings, naming each field.
func (g GCP) Validate() error {
	if err := ValidateGCPProject(g.Project); err != nil {
		return fmt.Errorf("gcp.project: %w", err)
	}
	if err := ValidateGCPRegion(g.Region); err != nil {
		return fmt.Errorf("gcp.region: %w", err)
	}
	for _, z := range g.Zones {
		if !strings.HasPrefix(z, g.Region+"-") || len(z) != len(g.Region)+2 || z[len(z)-1] < 'a' || z[len(z)-1] > 'z' {
			return fmt.Errorf("gcp.zones: %q is not a zone of region %s: use one such as %q", z, g.Region, g.Region+"-b")
		}
	}
	if err := ValidateGCPMachineType(g.MachineType); err != nil {
		return fmt.Errorf("gcp.machine_type: %w", err)
	}
	if !gcpImageRE.MatchString(g.Image) {
		return fmt.Errorf("gcp.image: %q is not an image: use projects/<project>/global/images/<name> or projects/<project>/global/images/family/<family>", g.Image)
	}
	m := gcpSubnetworkRE.FindStringSubmatch(g.Subnetwork)
	if m == nil {
		return fmt.Errorf("gcp.subnetwork: %q is not a subnetwork: use regions/<region>/subnetworks/<name>, optionally after projects/<host project>/", g.Subnetwork)
	}
	if r := m[len(m)-2]; r != g.Region {
		return fmt.Errorf("gcp.subnetwork: %q is in region %s, not in gcp.region %s", g.Subnetwork, r, g.Region)
	}
	if g.ServiceAccount != "" {
		if err := ValidateGCPServiceAccount(g.ServiceAccount); err != nil {
			return fmt.Errorf("gcp.service_account: %w", err)
		}
	}
	if len(g.NetworkTags) > 64 {
		return fmt.Errorf("gcp.network_tags: %d tags: an instance takes at most 64", len(g.NetworkTags))
	}
	for _, t := range g.NetworkTags {
		if err := ValidateGCEName(t); err != nil {
			return fmt.Errorf("gcp.network_tags: %w", err)
		}
	}
	if err := ValidateGCSBucket(g.Bucket); err != nil {
		return fmt.Errorf("gcp.bucket: %w", err)
	}
	return nil
}

// Validate checks a pool's GCP overrides.
func (g GCPPool) Validate() error {
	if g.MachineType != "" {
		if err := ValidateGCPMachineType(g.MachineType); err != nil {
			return fmt.Errorf("gcp.machine_type: %w", err)
		}
	}
	if g.ServiceAccount != "" {
		if err := ValidateGCPServiceAccount(g.ServiceAccount); err != nil {
			return fmt.Errorf("gcp.service_account: %w", err)
		}
	}
	return nil
}
