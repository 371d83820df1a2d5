package policy

import (
	"fmt"
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
	gcsBucketRE      = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]$`)
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

// ValidateGCSBucket checks a Cloud Storage bucket name.
func ValidateGCSBucket(s string) error {
	if !gcsBucketRE.MatchString(s) || strings.HasPrefix(s, "goog") {
		return fmt.Errorf("%q is not a bucket name: use 3 to 63 lower-case letters, digits, '-' and '_', starting and ending with a letter or digit, not starting with \"goog\"", s)
	}
	return nil
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
