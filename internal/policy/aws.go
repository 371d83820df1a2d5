package policy

import (
	"fmt"
	"regexp"
	"strings"
)

// AWS says where a cluster's instances run on the aws platform. Every pool
// of the cluster starts from these settings.
type AWS struct {
	// AMI is the image every instance boots (ami-...). User data installs
	// Docker and the AWS CLI when the image lacks them.
	AMI          string `json:"ami"`
	InstanceType string `json:"instance_type"`
	// Subnets are the VPC subnets the groups launch into (subnet-...).
	Subnets        []string `json:"subnets"`
	SecurityGroups []string `json:"security_groups,omitempty"`
	// InstanceProfile is the name or ARN of the IAM instance profile; its
	// role needs the policy the autarky_aws_agent_policy data source
	// renders.
	InstanceProfile string            `json:"instance_profile,omitempty"`
	KeyName         string            `json:"key_name,omitempty"`
	Tags            map[string]string `json:"tags,omitempty"`
}

// AWSPool overrides the cluster's AWS settings for one pool.
type AWSPool struct {
	InstanceType string `json:"instance_type,omitempty"`
	// InstanceProfile is the name or ARN of the pool's own IAM instance
	// profile, whose role needs the autarky_aws_agent_policy data source's
	// worker_json. The cluster's AWS.InstanceProfile is the managers':
	// its role may resize and terminate instances and read the manager
	// join token, so a worker pool that leaves this empty boots with the
	// managers' rights (kept so that configurations from before per-pool
	// profiles keep working; the provider warns about it).
	InstanceProfile string            `json:"instance_profile,omitempty"`
	Tags            map[string]string `json:"tags,omitempty"`
}

// ValidateInstanceProfile checks an IAM instance profile's name or ARN.
func ValidateInstanceProfile(s string) error {
	if !instanceProfileRE.MatchString(s) {
		return fmt.Errorf("%q is neither an instance profile name (1 to 128 letters, digits and +=,.@_-) nor its ARN (arn:<partition>:iam::<account id>:instance-profile/<name>)", s)
	}
	return nil
}

// InstanceProfileOf is the instance profile a pool's instances boot with:
// its own, else the cluster's (the managers').
func InstanceProfileOf(c AWS, pool *AWSPool) string {
	if pool != nil && pool.InstanceProfile != "" {
		return pool.InstanceProfile
	}
	return c.InstanceProfile
}

var (
	amiRE             = regexp.MustCompile(`^ami-[0-9a-f]{8,17}$`)
	instanceTypeRE    = regexp.MustCompile(`^[a-z][a-z0-9-]*\.[a-z0-9-]+$`)
	subnetRE          = regexp.MustCompile(`^subnet-[0-9a-f]{8,17}$`)
	securityGroupRE   = regexp.MustCompile(`^sg-[0-9a-f]{8,17}$`)
	instanceProfileRE = regexp.MustCompile(`^([\w+=,.@-]{1,128}|arn:aws[a-z-]*:iam::[0-9]{12}:instance-profile/[\w+=,.@/-]{1,128})$`)
	keyNameRE         = regexp.MustCompile(`^[ -~]{1,255}$`)
	sha256HexRE       = regexp.MustCompile(`^[0-9a-f]{64}$`)
	httpURLRE         = regexp.MustCompile(`^https?://[^\s'"\\]+$`)
)

// ValidateAMI checks an AMI id.
func ValidateAMI(s string) error {
	if !amiRE.MatchString(s) {
		return fmt.Errorf("%q is not an AMI id: use ami- followed by 8 or 17 hex digits", s)
	}
	return nil
}

// ValidateInstanceType checks an EC2 instance type's form (family.size).
func ValidateInstanceType(s string) error {
	if !instanceTypeRE.MatchString(s) {
		return fmt.Errorf("%q is not an EC2 instance type: use family.size, such as \"t3.medium\"", s)
	}
	return nil
}

// ValidateSubnet checks a VPC subnet id.
func ValidateSubnet(s string) error {
	if !subnetRE.MatchString(s) {
		return fmt.Errorf("%q is not a subnet id: use subnet- followed by 8 or 17 hex digits", s)
	}
	return nil
}

// ValidateSecurityGroup checks a security group id.
func ValidateSecurityGroup(s string) error {
	if !securityGroupRE.MatchString(s) {
		return fmt.Errorf("%q is not a security group id: use sg- followed by 8 or 17 hex digits", s)
	}
	return nil
}

// ValidateAWSTags checks tags: AWS allows 50 per resource, keys up to 128
// and values up to 256 characters; "aws:" and "autarky:" keys are reserved.
func ValidateAWSTags(tags map[string]string) error {
	if len(tags) > 40 {
		return fmt.Errorf("%d tags: use at most 40 (AWS allows 50 and Autarky sets its own)", len(tags))
	}
	for k, v := range tags {
		switch {
		case k == "" || len(k) > 128:
			return fmt.Errorf("tag key %q: use 1 to 128 characters", k)
		case strings.HasPrefix(strings.ToLower(k), "aws:") || strings.HasPrefix(k, "autarky:"):
			return fmt.Errorf("tag key %q: keys starting with \"aws:\" or \"autarky:\" are reserved", k)
		case len(v) > 256:
			return fmt.Errorf("tag %q: its value is longer than 256 characters", k)
		}
	}
	return nil
}

// Validate checks the cluster's AWS settings.
func (a AWS) Validate() error {
	if err := ValidateAMI(a.AMI); err != nil {
		return fmt.Errorf("aws.ami: %w", err)
	}
	if err := ValidateInstanceType(a.InstanceType); err != nil {
		return fmt.Errorf("aws.instance_type: %w", err)
	}
	if len(a.Subnets) == 0 {
		return fmt.Errorf("aws.subnets: name at least one subnet")
	}
	for _, s := range a.Subnets {
		if err := ValidateSubnet(s); err != nil {
			return fmt.Errorf("aws.subnets: %w", err)
		}
	}
	for _, s := range a.SecurityGroups {
		if err := ValidateSecurityGroup(s); err != nil {
			return fmt.Errorf("aws.security_groups: %w", err)
		}
	}
	if a.InstanceProfile != "" {
		if err := ValidateInstanceProfile(a.InstanceProfile); err != nil {
			return fmt.Errorf("aws.instance_profile: %w", err)
		}
	}
	if a.KeyName != "" && !keyNameRE.MatchString(a.KeyName) {
		return fmt.Errorf("aws.key_name: %q: use 1 to 255 printable ASCII characters", a.KeyName)
	}
	if err := ValidateAWSTags(a.Tags); err != nil {
		return fmt.Errorf("aws.tags: %w", err)
	}
	return nil
}

// Validate checks a pool's AWS overrides.
func (a AWSPool) Validate() error {
	if a.InstanceType != "" {
		if err := ValidateInstanceType(a.InstanceType); err != nil {
			return fmt.Errorf("aws.instance_type: %w", err)
		}
	}
	if a.InstanceProfile != "" {
		if err := ValidateInstanceProfile(a.InstanceProfile); err != nil {
			return fmt.Errorf("aws.instance_profile: %w", err)
		}
	}
	if err := ValidateAWSTags(a.Tags); err != nil {
		return fmt.Errorf("aws.tags: %w", err)
	}
	return nil
}

// ValidateHTTPURL checks an http(s) URL with no spaces or quotes.
func ValidateHTTPURL(url string) error {
	if !httpURLRE.MatchString(url) {
		return fmt.Errorf("%q is not an http(s) URL", url)
	}
	return nil
}

// ValidateAgentDownload checks where managers on a cloud fetch the agent.
func ValidateAgentDownload(url, sha string) error {
	if err := ValidateHTTPURL(url); err != nil {
		return fmt.Errorf("agent.binary_url: %w", err)
	}
	if !sha256HexRE.MatchString(sha) {
		return fmt.Errorf("agent.binary_sha256: %q: use the 64 lower-case hex digits of the binary's SHA-256", sha)
	}
	return nil
}
