package provider

import (
	"context"
	"errors"
	"fmt"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// backend is what the resources need from a platform.
type backend = platform.Backend

// backendFor opens the platform a cluster declares, once per provider
// process, with its progress going to this request's log.
func (d *providerData) backendFor(ctx context.Context, platformName string) (backend, error) {
	if platformName == "" {
		platformName = policy.PlatformLocal
	}
	if err := policy.ValidatePlatform(platformName); err != nil {
		return nil, err
	}
	d.mu.Lock()
	if d.opened == nil {
		d.opened = map[string]*openedBackend{}
	}
	o := d.opened[platformName]
	if o == nil {
		o = &openedBackend{}
		d.opened[platformName] = o
	}
	d.mu.Unlock()
	o.once.Do(func() { o.b, o.err = platform.OpenBackend(ctx, platformName, d.settings) })
	if o.err != nil {
		return nil, o.err
	}
	return o.b.WithProgress(progressTo(ctx)), nil
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
	lp, lerr := d.backendFor(ctx, policy.PlatformLocal)
	if lerr != nil && len(clouds) == 0 {
		return nil, lerr
	}
	if lerr == nil {
		if ok, err := lp.HasCluster(ctx, cluster); (err == nil && ok) || len(clouds) == 0 {
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
	if d.settings.AWS != nil {
		out = append(out, policy.PlatformAWS)
	}
	if d.settings.GCP != nil {
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
