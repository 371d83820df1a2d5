package provider

import (
	"context"
	"errors"
	"fmt"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/platform/aws"
	"github.com/autarky/terraform-provider-autarky/internal/platform/local"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// backend is what the resources need from a platform.
type backend = platform.Backend

var (
	_ backend = (*local.Platform)(nil)
	_ backend = (*aws.Platform)(nil)
)

// errNoAWS is the error of an aws cluster under a provider without an aws block.
var errNoAWS = errors.New("platform \"aws\" needs the provider's aws block: add `aws { region = \"...\" }` to the autarky provider configuration")

// backendFor opens the platform a cluster declares.
func (d *providerData) backendFor(ctx context.Context, platformName string) (backend, error) {
	switch platformName {
	case policy.PlatformAWS:
		return d.awsPlatform(ctx)
	case policy.PlatformLocal, "":
		return d.localPlatform(ctx)
	default:
		return nil, policy.ValidatePlatform(platformName)
	}
}

// backendOfCluster finds the platform an existing cluster lives on, for
// the resources that name a cluster without a platform (node pools and
// policies): the local state dir when it holds the cluster, else AWS when
// the provider has an aws block and SSM holds it, else the local platform
// (whose answer is "not found"). A state dir the local platform cannot
// open does not stop a provider with an aws block from finding its
// clusters there: the aws platform needs no state dir.
func (d *providerData) backendOfCluster(ctx context.Context, cluster string) (backend, error) {
	lp, lerr := d.localPlatform(ctx)
	if lerr != nil && d.aws == nil {
		return nil, lerr
	}
	if lerr == nil {
		if _, err := lp.Cluster(cluster).Descriptor(ctx); err == nil || d.aws == nil {
			return lp, nil
		}
	}
	ap, err := d.awsPlatform(ctx)
	if err != nil {
		return nil, err
	}
	if ok, err := ap.HasCluster(ctx, cluster); err != nil {
		return nil, fmt.Errorf("looking for cluster %s in %s: %w", cluster, ap.Where(), err)
	} else if ok {
		return ap, nil
	}
	if lerr != nil {
		return nil, lerr
	}
	return lp, nil
}

// backendOfPoolID is backendOfCluster for a "<cluster>/<pool>" id.
func (d *providerData) backendOfPoolID(ctx context.Context, poolID string) (backend, error) {
	cluster, _, err := policy.SplitPoolID(poolID)
	if err != nil {
		return nil, err
	}
	return d.backendOfCluster(ctx, cluster)
}
