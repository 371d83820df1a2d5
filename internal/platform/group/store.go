package group

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/swarm"
)

// The store's keys, relative to the cluster's root in the KV:
//
//	cluster             the cluster descriptor (JSON)
//	pools/<pool>        node pool descriptors (JSON)
//	healing/<pool>      healing policies (JSON)
//	scaling/<pool>      scaling policies (JSON)
//	services/<service>  service scaling policies (JSON)
//	generation          changes with every write of the above (KeyGeneration)
//	tokens/worker       the Swarm join tokens (secret)
//	tokens/manager
//	tokens/rotation     the join_token_rotation trigger they belong to
//	agent/alert-token   the agents' bearer token (secret)
//	swarm/init-lock     the first manager's lock (boot script)
//
// and the agent's journal where the Journal keeps it.
const (
	KeyDescriptor    = "cluster"
	KeyWorkerToken   = "tokens/" + policy.RoleWorker
	KeyManagerToken  = "tokens/" + policy.RoleManager
	KeyTokenRotation = "tokens/rotation"
	KeyAlertToken    = "agent/alert-token"
	// KeyNotifyWebhook is the URL the agents notify, a secret an operator
	// puts there (the agents read it when they start without one of
	// their own); never written by Terraform, so never in its state.
	KeyNotifyWebhook = "agent/notify-webhook"
	KeyInitLock      = "swarm/init-lock"
	// KeyGeneration holds a fresh random value after every write of the
	// cluster's configuration (descriptor, pools, policies), by the
	// provider and by the agent alike. The agent reads this one key per
	// evaluation and re-reads the configuration only when it changed, so
	// its store reads do not grow with pools and policies (Cluster's
	// cache).
	KeyGeneration = "generation"
)

// Store is one cluster's store with the policy store's semantics, the
// same on every cloud: descriptors are validated before they are
// written, a policy needs its pool, managers are never autoscaled, and a
// scaling policy hands its pool's size to the agent (deleting it gives
// the size back to Terraform).
type Store struct {
	kv      KV
	journal Journal
	cluster string
}

// NewStore is cluster's store in kv, with the agent's journal in journal
// (KVJournal(kv) where the KV has compare-and-swap and large values).
func NewStore(kv KV, journal Journal, cluster string) (*Store, error) {
	if err := policy.ValidateName(cluster); err != nil {
		return nil, fmt.Errorf("cluster name: %w", err)
	}
	return &Store{kv: kv, journal: journal, cluster: cluster}, nil
}

// Name is the cluster's name.
func (s *Store) Name() string { return s.cluster }

// Where names the cluster's root in the store, for messages.
func (s *Store) Where() string { return s.kv.Where() }

// putJSON writes one key of the configuration and then a new generation.
func (s *Store) putJSON(ctx context.Context, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err = s.kv.Put(ctx, key, b, PutOptions{}); err != nil {
		return err
	}
	return s.bumpGeneration(ctx)
}

// deleteConfig removes keys of the configuration and then writes a new
// generation.
func (s *Store) deleteConfig(ctx context.Context, keys ...string) error {
	for _, key := range keys {
		if err := s.kv.Delete(ctx, key); err != nil {
			return err
		}
	}
	return s.bumpGeneration(ctx)
}

// bumpGeneration writes a new random KeyGeneration. It comes after the
// write it announces: a reader that read the generation before reading
// the configuration sees, at its next check, either the same generation
// with what it read still current, or a new one.
func (s *Store) bumpGeneration(ctx context.Context) error {
	raw := make([]byte, 8)
	if _, err := rand.Read(raw); err != nil {
		return err
	}
	if _, err := s.kv.Put(ctx, KeyGeneration, []byte(hex.EncodeToString(raw)), PutOptions{}); err != nil {
		return fmt.Errorf("configuration generation %s in %s: %w", KeyGeneration, s.kv.Where(), err)
	}
	return nil
}

// Generation is the configuration's current generation, "" when the
// store has none (written by a provider from before generations): then
// nothing may be cached.
func (s *Store) Generation(ctx context.Context) (string, error) {
	b, _, err := s.kv.Get(ctx, KeyGeneration)
	if errors.Is(err, platform.ErrNotFound) {
		return "", nil
	}
	return string(b), err
}

// getJSON reads key into v; what names the thing in the ErrNotFound error.
func (s *Store) getJSON(ctx context.Context, key, what string, v any) error {
	b, _, err := s.kv.Get(ctx, key)
	if errors.Is(err, platform.ErrNotFound) {
		return fmt.Errorf("%s: %w", what, platform.ErrNotFound)
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s in %s: %w", key, s.kv.Where(), err)
	}
	return nil
}

func listJSON[T any](ctx context.Context, s *Store, prefix string) ([]T, error) {
	entries, err := s.kv.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(entries))
	for _, e := range entries {
		var v T
		if err := json.Unmarshal(e.Data, &v); err != nil {
			return nil, fmt.Errorf("%s in %s: %w", e.Key, s.kv.Where(), err)
		}
		out = append(out, v)
	}
	return out, nil
}

// PutDescriptor writes the cluster descriptor.
func (s *Store) PutDescriptor(ctx context.Context, c policy.Cluster) error {
	if c.Name != s.cluster {
		return fmt.Errorf("descriptor of cluster %q does not belong in the store of %q", c.Name, s.cluster)
	}
	return s.putJSON(ctx, KeyDescriptor, c)
}

// Descriptor reads the cluster descriptor.
func (s *Store) Descriptor(ctx context.Context) (policy.Cluster, error) {
	var c policy.Cluster
	err := s.getJSON(ctx, KeyDescriptor, "cluster "+s.cluster, &c)
	return c, err
}

// PutPool writes a worker pool's descriptor.
func (s *Store) PutPool(ctx context.Context, p policy.Pool) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if p.Cluster != s.cluster {
		return fmt.Errorf("node pool %s does not belong in the store of %q", p.ID(), s.cluster)
	}
	return s.putJSON(ctx, "pools/"+p.Name, p)
}

// GetPool reads a worker pool's descriptor.
func (s *Store) GetPool(ctx context.Context, name string) (policy.Pool, error) {
	var p policy.Pool
	err := s.getJSON(ctx, "pools/"+name, "node pool "+policy.PoolID(s.cluster, name), &p)
	return p, err
}

// DeletePool removes a pool's descriptor and its policies.
func (s *Store) DeletePool(ctx context.Context, name string) error {
	return s.deleteConfig(ctx, "scaling/"+name, "healing/"+name, "pools/"+name)
}

// Pools reads every worker pool descriptor, by name.
func (s *Store) Pools(ctx context.Context) ([]policy.Pool, error) {
	return listJSON[policy.Pool](ctx, s, "pools")
}

// poolExists reports whether pool (a worker pool or the manager pool) exists.
func (s *Store) poolExists(ctx context.Context, pool string) error {
	if pool == policy.ManagerPoolName {
		_, err := s.Descriptor(ctx)
		return err
	}
	_, err := s.GetPool(ctx, pool)
	return err
}

// policyPool splits a policy's pool id and checks it is this cluster's.
func (s *Store) policyPool(poolID string) (string, error) {
	cluster, pool, err := policy.SplitPoolID(poolID)
	if err != nil {
		return "", err
	}
	if cluster != s.cluster {
		return "", fmt.Errorf("node pool %s does not belong to cluster %q", poolID, s.cluster)
	}
	return pool, nil
}

// PutHealingPolicy writes a pool's healing policy for the agent.
func (s *Store) PutHealingPolicy(ctx context.Context, h policy.Healing) error {
	if err := h.Validate(); err != nil {
		return err
	}
	pool, err := s.policyPool(h.PoolID)
	if err != nil {
		return err
	}
	if err := s.poolExists(ctx, pool); err != nil {
		return err
	}
	return s.putJSON(ctx, "healing/"+pool, h)
}

// GetHealingPolicy reads a pool's healing policy; platform.ErrNotFound
// when there is none.
func (s *Store) GetHealingPolicy(ctx context.Context, poolID string) (policy.Healing, error) {
	var h policy.Healing
	pool, err := s.policyPool(poolID)
	if err != nil {
		return h, err
	}
	err = s.getJSON(ctx, "healing/"+pool, "healing policy for "+poolID, &h)
	return h, err
}

// DeleteHealingPolicy removes a pool's healing policy; one that is gone is
// not an error.
func (s *Store) DeleteHealingPolicy(ctx context.Context, poolID string) error {
	pool, err := s.policyPool(poolID)
	if err != nil {
		return err
	}
	return s.deleteConfig(ctx, "healing/"+pool)
}

// HealingPolicies reads every healing policy of the cluster.
func (s *Store) HealingPolicies(ctx context.Context) ([]policy.Healing, error) {
	return listJSON[policy.Healing](ctx, s, "healing")
}

// PutScalingPolicy writes a worker pool's scaling policy for the agent and
// hands the pool's size to the agent, as on the local platform. Managers
// are never autoscaled (policy.Scaling.Validate says so before any call).
func (s *Store) PutScalingPolicy(ctx context.Context, sp policy.Scaling) error {
	if err := sp.Validate(); err != nil {
		return err
	}
	pool, err := s.policyPool(sp.PoolID)
	if err != nil {
		return err
	}
	p, err := s.GetPool(ctx, pool)
	if err != nil {
		return err
	}
	if err := s.putJSON(ctx, "scaling/"+pool, sp); err != nil {
		return err
	}
	p.SizeOwner = policy.SizeOwnerAgent
	return s.putJSON(ctx, "pools/"+pool, p)
}

// GetScalingPolicy reads a pool's scaling policy; platform.ErrNotFound
// when there is none.
func (s *Store) GetScalingPolicy(ctx context.Context, poolID string) (policy.Scaling, error) {
	var sp policy.Scaling
	pool, err := s.policyPool(poolID)
	if err != nil {
		return sp, err
	}
	err = s.getJSON(ctx, "scaling/"+pool, "scaling policy for "+poolID, &sp)
	return sp, err
}

// DeleteScalingPolicy removes a pool's scaling policy and gives the pool's
// size back to Terraform.
func (s *Store) DeleteScalingPolicy(ctx context.Context, poolID string) error {
	pool, err := s.policyPool(poolID)
	if err != nil {
		return err
	}
	if err := s.deleteConfig(ctx, "scaling/"+pool); err != nil {
		return err
	}
	p, err := s.GetPool(ctx, pool)
	if errors.Is(err, platform.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	p.SizeOwner = policy.SizeOwnerTerraform
	return s.putJSON(ctx, "pools/"+pool, p)
}

// ScalingPolicies reads every scaling policy of the cluster.
func (s *Store) ScalingPolicies(ctx context.Context) ([]policy.Scaling, error) {
	return listJSON[policy.Scaling](ctx, s, "scaling")
}

// PutServiceScalingPolicy writes a service's scaling policy for the agent.
// The cluster must exist; the service need not yet (a stack may come after
// its policy): the agent says so until it does.
func (s *Store) PutServiceScalingPolicy(ctx context.Context, sp policy.ServiceScaling) error {
	if err := sp.Validate(); err != nil {
		return err
	}
	if sp.ClusterID != s.cluster {
		return fmt.Errorf("service scaling policy for %s does not belong to cluster %q", policy.ServiceScalingID(sp.ClusterID, sp.Service), s.cluster)
	}
	if _, err := s.Descriptor(ctx); err != nil {
		return err
	}
	return s.putJSON(ctx, keyService(sp.Service), sp)
}

// GetServiceScalingPolicy reads a service's scaling policy;
// platform.ErrNotFound when there is none.
func (s *Store) GetServiceScalingPolicy(ctx context.Context, service string) (policy.ServiceScaling, error) {
	var sp policy.ServiceScaling
	err := s.getJSON(ctx, keyService(service), "service scaling policy for "+policy.ServiceScalingID(s.cluster, service), &sp)
	return sp, err
}

// DeleteServiceScalingPolicy removes a service's scaling policy; one that
// is gone is not an error. The service keeps its replicas.
func (s *Store) DeleteServiceScalingPolicy(ctx context.Context, service string) error {
	return s.deleteConfig(ctx, keyService(service))
}

// ServiceScalingPolicies reads every service scaling policy of the
// cluster (platform.Cluster's).
func (s *Store) ServiceScalingPolicies(ctx context.Context) ([]policy.ServiceScaling, error) {
	return listJSON[policy.ServiceScaling](ctx, s, "services")
}

func keyService(service string) string { return "services/" + service }

// LoadJournal reads the agent's journal (platform.Cluster's).
func (s *Store) LoadJournal(ctx context.Context, v any) (string, error) {
	return s.journal.LoadJournal(ctx, v)
}

// SaveJournal replaces the agent's journal (platform.Cluster's).
func (s *Store) SaveJournal(ctx context.Context, v any, rev string) (string, error) {
	return s.journal.SaveJournal(ctx, v, rev)
}

// SetAsideJournal keeps an unreadable journal for a person.
func (s *Store) SetAsideJournal(ctx context.Context) (string, error) {
	return s.journal.SetAsideJournal(ctx)
}

// PutTokens writes both join tokens as secrets. Errors never carry a
// token: the KV promises that for secrets.
func (s *Store) PutTokens(ctx context.Context, t swarm.Tokens) error {
	if t.Worker == "" || t.Manager == "" {
		return errors.New("join tokens: both the worker and the manager token are required")
	}
	for _, kv := range []struct{ key, value string }{{KeyWorkerToken, t.Worker}, {KeyManagerToken, t.Manager}} {
		if _, err := s.kv.Put(ctx, kv.key, []byte(kv.value), PutOptions{Secret: true}); err != nil {
			return err
		}
	}
	return nil
}

// GetTokens reads both join tokens; platform.ErrNotFound when either is
// missing (the first manager stores them once it has initialised the
// swarm).
func (s *Store) GetTokens(ctx context.Context) (swarm.Tokens, error) {
	var t swarm.Tokens
	for _, kv := range []struct {
		key string
		to  *string
	}{{KeyWorkerToken, &t.Worker}, {KeyManagerToken, &t.Manager}} {
		b, _, err := s.kv.Get(ctx, kv.key)
		if errors.Is(err, platform.ErrNotFound) {
			return swarm.Tokens{}, fmt.Errorf("join tokens of %s (%s): %w", s.cluster, kv.key, platform.ErrNotFound)
		}
		if err != nil {
			return swarm.Tokens{}, fmt.Errorf("get join tokens of %s: %w", s.cluster, err)
		}
		*kv.to = string(b)
	}
	if t.Worker == "" || t.Manager == "" {
		return swarm.Tokens{}, fmt.Errorf("join tokens of %s: %w", s.cluster, platform.ErrNotFound)
	}
	return t, nil
}

// TokensRotatedFor returns the join_token_rotation trigger the stored
// tokens were rotated for, "" when they never were (platform.TokenStore's).
func (s *Store) TokensRotatedFor(ctx context.Context) (string, error) {
	b, _, err := s.kv.Get(ctx, KeyTokenRotation)
	if errors.Is(err, platform.ErrNotFound) {
		return "", nil
	}
	return string(b), err
}

// PutRotatedTokens stores tokens the swarm gave when it rotated them for
// trigger: the tokens first, the trigger last, so the trigger never names
// a rotation whose tokens are not stored yet (platform.TokenStore's).
func (s *Store) PutRotatedTokens(ctx context.Context, trigger string, t swarm.Tokens) error {
	if err := s.PutTokens(ctx, t); err != nil {
		return err
	}
	return s.MarkTokensRotated(ctx, trigger)
}

// MarkTokensRotated records that the stored tokens (or, on a new cluster,
// those its first manager is about to store) belong to trigger.
func (s *Store) MarkTokensRotated(ctx context.Context, trigger string) error {
	_, err := s.kv.Put(ctx, KeyTokenRotation, []byte(trigger), PutOptions{})
	return err
}

// DeleteTokens removes both join tokens, the rotation record and the init
// lock: what names a swarm that is gone, so that a cluster created anew
// over its store initialises a new one.
func (s *Store) DeleteTokens(ctx context.Context) error {
	for _, key := range []string{KeyWorkerToken, KeyManagerToken, KeyTokenRotation, KeyInitLock} {
		if err := s.kv.Delete(ctx, key); err != nil {
			return err
		}
	}
	return nil
}

// alertTokenBytes is the entropy of a new agent token: 256 bits, written
// as 64 hex digits, one word that goes into an Authorization header and
// a shell variable as is.
const alertTokenBytes = 32

// EnsureAlertToken creates the agents' bearer token (KeyAlertToken), from
// crypto/rand, unless it exists: created only if absent, so a token an
// operator rotated by hand, or the token of a cluster created anew over
// its store, is kept and Alertmanager keeps working. The managers' boot
// script copies it into policy.AgentTokenFile; the operator gives
// Alertmanager the same value. The token is never returned, logged, or
// put in an error.
func (s *Store) EnsureAlertToken(ctx context.Context) (created bool, err error) {
	raw := make([]byte, alertTokenBytes)
	if _, err := rand.Read(raw); err != nil {
		return false, fmt.Errorf("agent token %s: %w", KeyAlertToken, err)
	}
	token := hex.EncodeToString(raw)
	_, err = s.kv.Put(ctx, KeyAlertToken, []byte(token), PutOptions{IfAbsent: true, Secret: true})
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, platform.ErrExists):
		return false, nil
	}
	return false, fmt.Errorf("create the agent token: %w", err)
}

// AlertToken reads the agents' bearer token: for an operator's tooling
// and the tests. platform.ErrNotFound when the cluster has none.
func (s *Store) AlertToken(ctx context.Context) (string, error) {
	b, _, err := s.kv.Get(ctx, KeyAlertToken)
	if err != nil {
		return "", fmt.Errorf("agent token: %w", err)
	}
	return string(b), nil
}

// NotifyWebhook reads the webhook URL the agents notify; "" when the
// cluster has none. The URL is a secret: never returned in an error.
func (s *Store) NotifyWebhook(ctx context.Context) (string, error) {
	b, _, err := s.kv.Get(ctx, KeyNotifyWebhook)
	if errors.Is(err, platform.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("notify webhook %s in %s: %w", KeyNotifyWebhook, s.kv.Where(), err)
	}
	return string(b), nil
}

// AcquireInitLock creates the first manager's lock holding owner (an
// instance id), only if absent: exactly one caller, ever, gets true, the
// one that may `docker swarm init`. The boot script does the same with
// the cloud's CLI or API; this is the same protocol for Go callers and
// tests.
func (s *Store) AcquireInitLock(ctx context.Context, owner string) (bool, error) {
	_, err := s.kv.Put(ctx, KeyInitLock, []byte(owner), PutOptions{IfAbsent: true})
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, platform.ErrExists):
		return false, nil
	}
	return false, fmt.Errorf("create the swarm init lock of %s: %w", s.cluster, err)
}

// Delete removes everything of the cluster in the store, tokens and lock
// included (destroy).
func (s *Store) Delete(ctx context.Context) error { return s.kv.DeleteAll(ctx) }
