package provider

import (
	"context"
	"errors"
	"fmt"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/platform/aws"
	"github.com/autarky/terraform-provider-autarky/internal/platform/gcp"
	"github.com/autarky/terraform-provider-autarky/internal/platform/local"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// backend is what the resources need from a platform.
type backend = platform.Backend

var (
	_ backend = (*local.Platform)(nil)
	_ backend = (*aws.Platform)(nil)
	_ backend = (*gcp.Platform)(nil)
)

// errNoAWS is the error of an aws cluster under a provider without an aws block.
var errNoAWS = errors.New("platform \"aws\" needs the provider's aws block: add `aws { region = \"...\" }` to the autarky provider configuration")

// errNoGCP is the error of a gcp cluster under a provider without a gcp block.
var errNoGCP = errors.New("platform \"gcp\" needs the provider's gcp block: add `gcp { region = \"...\", bucket = \"...\" }` to the autarky provider configuration")

// backendFor opens the platform a cluster declares.
func (d *providerData) backendFor(ctx context.Context, platformName string) (backend, error) {
	switch platformName {
	case policy.PlatformAWS:
		return d.awsPlatform(ctx)
	case policy.PlatformGCP:
		return d.gcpPlatform(ctx)
	case policy.PlatformLocal, "":
		return d.localPlatform(ctx)
	default:
		return nil, policy.ValidatePlatform(platformName)
	}
}

// backendOfCluster finds the platform an existing cluster lives on, for
// the resources that name a cluster without a platform (node pools and
// policies): the local state dir when it holds the cluster, else the first
// cloud whose block the provider has and whose store holds it (aws, then
// gcp: a provider may have all three blocks), else the local platform
// (whose answer is "not found"). A state dir the local platform cannot
// open does not stop a provider with a cloud block from finding its
// clusters there: the clouds need no state dir.
func (d *providerData) backendOfCluster(ctx context.Context, cluster string) (backend, error) {
	clouds := d.clouds()
	lp, lerr := d.localPlatform(ctx)
	if lerr != nil && len(clouds) == 0 {
		return nil, lerr
	}
	if lerr == nil {
		if _, err := lp.Cluster(cluster).Descriptor(ctx); err == nil || len(clouds) == 0 {
			return lp, nil
		}
	}
	// A cloud that cannot be asked (its credentials, its endpoint) does
	// not hide a cluster another cloud holds; if none holds it, every
	// cloud's error is the answer.
	var errs []error
	for _, name := range clouds {
		p, err := d.backendFor(ctx, name)
		if err != nil {
			errs = append(errs, fmt.Errorf("looking for cluster %s on %s: %w", cluster, name, err))
			continue
		}
		if ok, err := p.HasCluster(ctx, cluster); err != nil {
			errs = append(errs, fmt.Errorf("looking for cluster %s in %s: %w", cluster, p.Where(), err))
		} else if ok {
			return p, nil
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if lerr != nil {
		return nil, lerr
	}
	return lp, nil
}

// clouds are the cloud platforms the provider has a block for.
func (d *providerData) clouds() []string {
	var out []string
	if d.aws != nil {
		out = append(out, policy.PlatformAWS)
	}
	if d.gcp != nil {
		out = append(out, policy.PlatformGCP)
	}
	return out
}

// backendOfPoolID is backendOfCluster for a "<cluster>/<pool>" id.
func (d *providerData) backendOfPoolID(ctx context.Context, poolID string) (backend, error) {
	cluster, _, err := policy.SplitPoolID(poolID)
	if err != nil {
		return nil, err
	}
	return d.backendOfCluster(ctx, cluster)
}
