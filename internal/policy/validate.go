package policy

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// dnsLabel is RFC 1123: lower-case letters, digits and '-', starting and
// ending with an alphanumeric character, at most 63 characters.
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// ValidateName checks that name is a DNS label, the form every platform
// accepts for cluster and pool names (host names, ASG and MIG names).
func ValidateName(name string) error {
	if !dnsLabel.MatchString(name) {
		return fmt.Errorf("%q is not a DNS label: use 1 to 63 lower-case letters, digits and '-', starting and ending with a letter or digit", name)
	}
	return nil
}

// ParseDuration parses a Go duration string ("30s", "5m", "1h30m") that must
// not be negative. "0" is allowed and means zero.
func ParseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration: use a number with a unit, such as \"30s\", \"5m\" or \"1h\"", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative: durations must be zero or more", s)
	}
	return d, nil
}

// ValidManagerCounts are the Swarm manager counts that keep an odd-sized Raft
// group: an even count adds a member without adding fault tolerance.
var ValidManagerCounts = []int64{1, 3, 5, 7}

// ValidateManagerCount refuses even, zero and oversized manager counts.
func ValidateManagerCount(n int64) error {
	for _, v := range ValidManagerCounts {
		if n == v {
			return nil
		}
	}
	return fmt.Errorf("%d managers is not allowed: use 1, 3, 5 or 7 (an odd number keeps Raft quorum; more than 7 slows every write)", n)
}

// ValidateSizes checks a pool's bounds and its desired size.
// desired may be nil when it is not known yet.
func ValidateSizes(min, max int64, desired *int64) error {
	if min < 0 {
		return fmt.Errorf("min_size is %d: it must be 0 or more", min)
	}
	if max < 1 {
		return fmt.Errorf("max_size is %d: it must be 1 or more", max)
	}
	if min > max {
		return fmt.Errorf("min_size (%d) is greater than max_size (%d): min_size must be at most max_size", min, max)
	}
	if desired != nil && (*desired < min || *desired > max) {
		return fmt.Errorf("desired_size (%d) is outside [min_size, max_size] = [%d, %d]", *desired, min, max)
	}
	return nil
}
