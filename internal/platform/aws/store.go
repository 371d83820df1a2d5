package aws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// The AWS store is SSM Parameter Store, one path per cluster:
//
//	/autarky/<cluster>/cluster            the cluster descriptor (JSON String)
//	/autarky/<cluster>/pools/<pool>       node pool descriptors (JSON String)
//	/autarky/<cluster>/healing/<pool>     healing policies (JSON String)
//	/autarky/<cluster>/scaling/<pool>     scaling policies (JSON String)
//	/autarky/<cluster>/journal            the agent's journal (JSON String)
//	/autarky/<cluster>/journal-set-aside-<unix seconds>
//	                                      an unreadable journal kept for a person
//	/autarky/<cluster>/tokens/worker      the Swarm join tokens (SecureString)
//	/autarky/<cluster>/tokens/manager
//	/autarky/<cluster>/swarm/init-lock    the first manager's lock (user data)
//
// JSON parameters use the Intelligent-Tiering tier: standard (free, up to
// 4 KB) while they fit, advanced (up to 8 KB) when a large policy or
// journal needs it.

// PathPrefix is where every cluster's parameters live.
const PathPrefix = "/autarky"

// MaxParameterSize is the largest value SSM holds (an advanced parameter).
const MaxParameterSize = 8192

// ClusterPath is the parameter path of a cluster: /autarky/<cluster>.
func ClusterPath(cluster string) string { return PathPrefix + "/" + cluster }

// TokenParameter is the SecureString parameter holding the join token of
// a role (policy.RoleWorker or policy.RoleManager).
func TokenParameter(cluster, role string) string { return ClusterPath(cluster) + "/tokens/" + role }

// InitLockParameter is the parameter the first manager creates with
// Overwrite=false to win the right to `docker swarm init`.
func InitLockParameter(cluster string) string { return ClusterPath(cluster) + "/swarm/init-lock" }

// JournalParameter is the parameter holding the agent's journal.
func JournalParameter(cluster string) string { return ClusterPath(cluster) + "/journal" }

// Store is one cluster's store in SSM Parameter Store.
type Store struct {
	api     *ssm.Client
	cluster string
	// KMSKeyID encrypts the tokens; empty means the account's AWS managed
	// key for SSM (alias/aws/ssm).
	KMSKeyID string
}

// NewStore opens the store of cluster; api comes from NewClients.
func NewStore(api *ssm.Client, cluster string) (*Store, error) {
	if err := policy.ValidateName(cluster); err != nil {
		return nil, fmt.Errorf("cluster name: %w", err)
	}
	return &Store{api: api, cluster: cluster}, nil
}

// Name is the cluster's name.
func (s *Store) Name() string { return s.cluster }

// Path is the cluster's parameter path.
func (s *Store) Path() string { return ClusterPath(s.cluster) }

func (s *Store) param(parts ...string) string {
	return s.Path() + "/" + strings.Join(parts, "/")
}

// putJSON writes v as a JSON String parameter, replacing any value.
func (s *Store) putJSON(ctx context.Context, name string, v any) error {
	_, err := s.putJSONVersion(ctx, name, v, true)
	return err
}

// putJSONVersion writes v as a JSON String parameter and returns the
// version the put made; without overwrite it only creates (an error
// wrapping *types.ParameterAlreadyExists when the parameter exists).
func (s *Store) putJSONVersion(ctx context.Context, name string, v any, overwrite bool) (int64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	if len(b) > MaxParameterSize {
		return 0, fmt.Errorf("%s is %d bytes: an SSM parameter holds at most %d", name, len(b), MaxParameterSize)
	}
	out, err := s.api.PutParameter(ctx, &ssm.PutParameterInput{
		Name:      awsv2.String(name),
		Value:     awsv2.String(string(b)),
		Type:      types.ParameterTypeString,
		Overwrite: awsv2.Bool(overwrite),
		Tier:      types.ParameterTierIntelligentTiering,
	})
	if err != nil {
		return 0, fmt.Errorf("put SSM parameter %s: %w", name, err)
	}
	return out.Version, nil
}

// getJSON reads a JSON String parameter into v; what names the thing for
// the ErrNotFound error.
func (s *Store) getJSON(ctx context.Context, name, what string, v any) error {
	out, err := s.api.GetParameter(ctx, &ssm.GetParameterInput{Name: awsv2.String(name)})
	if err != nil {
		var nf *types.ParameterNotFound
		if errors.As(err, &nf) {
			return fmt.Errorf("%s: %w", what, platform.ErrNotFound)
		}
		return fmt.Errorf("get SSM parameter %s: %w", name, err)
	}
	if err := json.Unmarshal([]byte(awsv2.ToString(out.Parameter.Value)), v); err != nil {
		return fmt.Errorf("SSM parameter %s: %w", name, err)
	}
	return nil
}

// remove deletes a parameter; one that is gone is not an error.
func (s *Store) remove(ctx context.Context, name string) error {
	_, err := s.api.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: awsv2.String(name)})
	var nf *types.ParameterNotFound
	if err != nil && !errors.As(err, &nf) {
		return fmt.Errorf("delete SSM parameter %s: %w", name, err)
	}
	return nil
}

// list reads every parameter under path (directly under it unless
// recursive), sorted by name, following the pages (SSM returns at most 10
// per call). SecureString parameters come without their value.
func (s *Store) list(ctx context.Context, path string, recursive bool) ([]types.Parameter, error) {
	var out []types.Parameter
	pages := ssm.NewGetParametersByPathPaginator(s.api, &ssm.GetParametersByPathInput{
		Path:           awsv2.String(path),
		Recursive:      awsv2.Bool(recursive),
		WithDecryption: awsv2.Bool(false),
		MaxResults:     awsv2.Int32(10),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list SSM parameters under %s: %w", path, err)
		}
		for _, p := range page.Parameters {
			if p.Type == types.ParameterTypeSecureString {
				p.Value = nil // a listing never hands out a secret, not even encrypted
			}
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return awsv2.ToString(out[i].Name) < awsv2.ToString(out[j].Name) })
	return out, nil
}

// listJSON decodes every JSON parameter directly under path, by name.
func listJSON[T any](ctx context.Context, s *Store, path string) ([]T, error) {
	params, err := s.list(ctx, path, false)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(params))
	for _, p := range params {
		var v T
		if err := json.Unmarshal([]byte(awsv2.ToString(p.Value)), &v); err != nil {
			return nil, fmt.Errorf("SSM parameter %s: %w", awsv2.ToString(p.Name), err)
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
	return s.putJSON(ctx, s.param("cluster"), c)
}

// Descriptor reads the cluster descriptor.
func (s *Store) Descriptor(ctx context.Context) (policy.Cluster, error) {
	var c policy.Cluster
	err := s.getJSON(ctx, s.param("cluster"), "cluster "+s.cluster, &c)
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
	return s.putJSON(ctx, s.param("pools", p.Name), p)
}

// GetPool reads a worker pool's descriptor.
func (s *Store) GetPool(ctx context.Context, name string) (policy.Pool, error) {
	var p policy.Pool
	err := s.getJSON(ctx, s.param("pools", name), "node pool "+policy.PoolID(s.cluster, name), &p)
	return p, err
}

// DeletePool removes a pool's descriptor and its policies.
func (s *Store) DeletePool(ctx context.Context, name string) error {
	for _, kind := range []string{"scaling", "healing", "pools"} {
		if err := s.remove(ctx, s.param(kind, name)); err != nil {
			return err
		}
	}
	return nil
}

// Pools reads every worker pool descriptor, by name.
func (s *Store) Pools(ctx context.Context) ([]policy.Pool, error) {
	return listJSON[policy.Pool](ctx, s, s.param("pools"))
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
	return s.putJSON(ctx, s.param("healing", pool), h)
}

// GetHealingPolicy reads a pool's healing policy; platform.ErrNotFound
// when there is none.
func (s *Store) GetHealingPolicy(ctx context.Context, poolID string) (policy.Healing, error) {
	var h policy.Healing
	pool, err := s.policyPool(poolID)
	if err != nil {
		return h, err
	}
	err = s.getJSON(ctx, s.param("healing", pool), "healing policy for "+poolID, &h)
	return h, err
}

// DeleteHealingPolicy removes a pool's healing policy; one that is gone is
// not an error.
func (s *Store) DeleteHealingPolicy(ctx context.Context, poolID string) error {
	pool, err := s.policyPool(poolID)
	if err != nil {
		return err
	}
	return s.remove(ctx, s.param("healing", pool))
}

// HealingPolicies reads every healing policy of the cluster.
func (s *Store) HealingPolicies(ctx context.Context) ([]policy.Healing, error) {
	return listJSON[policy.Healing](ctx, s, s.param("healing"))
}

// PutScalingPolicy writes a worker pool's scaling policy for the agent and
// hands the pool's size to the agent, as on the local platform.
func (s *Store) PutScalingPolicy(ctx context.Context, sp policy.Scaling) error {
	if err := sp.Validate(); err != nil {
		return err
	}
	pool, err := s.policyPool(sp.PoolID)
	if err != nil {
		return err
	}
	if pool == policy.ManagerPoolName {
		return fmt.Errorf("node_pool_id %q is a manager pool: managers are never autoscaled", sp.PoolID)
	}
	p, err := s.GetPool(ctx, pool)
	if err != nil {
		return err
	}
	if err := s.putJSON(ctx, s.param("scaling", pool), sp); err != nil {
		return err
	}
	p.SizeOwner = policy.SizeOwnerAgent
	return s.putJSON(ctx, s.param("pools", pool), p)
}

// GetScalingPolicy reads a pool's scaling policy; platform.ErrNotFound
// when there is none.
func (s *Store) GetScalingPolicy(ctx context.Context, poolID string) (policy.Scaling, error) {
	var sp policy.Scaling
	pool, err := s.policyPool(poolID)
	if err != nil {
		return sp, err
	}
	err = s.getJSON(ctx, s.param("scaling", pool), "scaling policy for "+poolID, &sp)
	return sp, err
}

// DeleteScalingPolicy removes a pool's scaling policy and gives the pool's
// size back to Terraform.
func (s *Store) DeleteScalingPolicy(ctx context.Context, poolID string) error {
	pool, err := s.policyPool(poolID)
	if err != nil {
		return err
	}
	if err := s.remove(ctx, s.param("scaling", pool)); err != nil {
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
	return s.putJSON(ctx, s.param("pools", pool), p)
}

// ScalingPolicies reads every scaling policy of the cluster.
func (s *Store) ScalingPolicies(ctx context.Context) ([]policy.Scaling, error) {
	return listJSON[policy.Scaling](ctx, s, s.param("scaling"))
}

// The journal's revision is the SSM parameter's Version, in decimal; ""
// means there is no journal parameter.
//
// Fencing: SSM has no conditional put on a version. SaveJournal reads the
// journal's version right before PutParameter and refuses when it is not
// the writer's revision, and afterwards checks that its put made exactly
// the next version. That narrows the window in which a stale writer's
// save lands (two puts within the same few milliseconds) and makes both
// writers learn of it after the fact, but it does not close it: on AWS
// the leadership check right before every write is the main fence. The
// first journal is the exception: with revision "" the put is create-only
// (Overwrite=false), which SSM does enforce. An SDK retry of a put that
// had landed shows as a conflict too (its version is one more): a false
// alarm that is safe, since the writer reloads instead of acting.

// journalVersion reads the journal parameter's value and revision; ("",
// "", nil) when there is none.
func (s *Store) journalVersion(ctx context.Context) (value, rev string, err error) {
	name := JournalParameter(s.cluster)
	out, err := s.api.GetParameter(ctx, &ssm.GetParameterInput{Name: awsv2.String(name)})
	if err != nil {
		var nf *types.ParameterNotFound
		if errors.As(err, &nf) {
			return "", "", nil
		}
		return "", "", fmt.Errorf("get SSM parameter %s: %w", name, err)
	}
	return awsv2.ToString(out.Parameter.Value), strconv.FormatInt(out.Parameter.Version, 10), nil
}

// describeRevision names a revision in messages.
func describeRevision(rev string) string {
	if rev == "" {
		return "no journal"
	}
	return "version " + rev
}

// LoadJournal reads the agent's journal into v and returns its revision
// (the parameter's Version); ("", nil) with v untouched when there is no
// journal. A value that is not JSON of v's shape is an error wrapping
// platform.ErrJournalCorrupt.
func (s *Store) LoadJournal(ctx context.Context, v any) (string, error) {
	raw, rev, err := s.journalVersion(ctx)
	if err != nil || rev == "" {
		return "", err
	}
	name := JournalParameter(s.cluster)
	if !json.Valid([]byte(raw)) {
		// Checked first so that v is untouched by half a document.
		return "", fmt.Errorf("%w: SSM parameter %s (version %s) is not JSON (%d bytes)", platform.ErrJournalCorrupt, name, rev, len(raw))
	}
	if err := json.Unmarshal([]byte(raw), v); err != nil {
		return "", fmt.Errorf("%w: SSM parameter %s (version %s): %v", platform.ErrJournalCorrupt, name, rev, err)
	}
	return rev, nil
}

// SaveJournal replaces the agent's journal with v in one PutParameter (a
// reader sees the old journal or the new one, never a mix) while its
// version is still rev, and returns the new version. See the fencing note
// above: a version other than rev right before the put is refused with
// platform.ErrConflict; so is a put that did not make exactly the next
// version (another writer put in between: this journal has landed, but
// the writer must not act on it as the only writer); and with rev "" the
// put is create-only.
func (s *Store) SaveJournal(ctx context.Context, v any, rev string) (string, error) {
	name := JournalParameter(s.cluster)
	_, cur, err := s.journalVersion(ctx)
	if err != nil {
		return "", err
	}
	if cur != rev {
		return "", fmt.Errorf("save the journal of cluster %s: %w: SSM parameter %s holds %s, this writer read %s",
			s.cluster, platform.ErrConflict, name, describeRevision(cur), describeRevision(rev))
	}
	version, err := s.putJSONVersion(ctx, name, v, rev != "")
	var exists *types.ParameterAlreadyExists
	if errors.As(err, &exists) {
		return "", fmt.Errorf("save the journal of cluster %s: %w: SSM parameter %s was created by another writer", s.cluster, platform.ErrConflict, name)
	}
	if err != nil {
		return "", err
	}
	want := int64(1)
	if rev != "" {
		prev, err := strconv.ParseInt(rev, 10, 64)
		if err != nil {
			// Unreachable: cur == rev came from SSM's own version.
			return "", fmt.Errorf("journal revision %q is not an SSM parameter version", rev)
		}
		want = prev + 1
	}
	if version != want {
		return "", fmt.Errorf("save the journal of cluster %s: %w: another writer put SSM parameter %s between this writer's check and its put (this put made version %d, not %d)",
			s.cluster, platform.ErrConflict, name, version, want)
	}
	return strconv.FormatInt(version, 10), nil
}

// JournalSetAsideParameter is the name SetAsideJournal keeps an
// unreadable journal under at unix time sec.
func JournalSetAsideParameter(cluster string, sec int64) string {
	return ClusterPath(cluster) + "/journal-set-aside-" + strconv.FormatInt(sec, 10)
}

// SetAsideJournal copies the journal's raw value into a new String
// parameter, <cluster path>/journal-set-aside-<unix seconds> (with -2, -3,
// ... when that name is taken), deletes the journal parameter and returns
// the new name. No journal is an error wrapping platform.ErrNotFound; a
// journal that another writer replaced meanwhile is not deleted (the
// error wraps platform.ErrConflict, the copy stays).
func (s *Store) SetAsideJournal(ctx context.Context) (string, error) {
	name := JournalParameter(s.cluster)
	raw, rev, err := s.journalVersion(ctx)
	if err != nil {
		return "", err
	}
	if rev == "" {
		return "", fmt.Errorf("set aside the journal of cluster %s: there is no journal: %w", s.cluster, platform.ErrNotFound)
	}
	base := JournalSetAsideParameter(s.cluster, time.Now().Unix())
	var dst string
	for n := 1; ; n++ {
		dst = base
		if n > 1 {
			dst = base + "-" + strconv.Itoa(n)
		}
		_, err := s.api.PutParameter(ctx, &ssm.PutParameterInput{
			Name:        awsv2.String(dst),
			Value:       awsv2.String(raw),
			Type:        types.ParameterTypeString,
			Overwrite:   awsv2.Bool(false),
			Tier:        types.ParameterTierIntelligentTiering,
			Description: awsv2.String("autarky: the agent journal of " + s.cluster + " at version " + rev + ", set aside because it could not be read"),
		})
		var exists *types.ParameterAlreadyExists
		if errors.As(err, &exists) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("set aside the journal of cluster %s: put SSM parameter %s: %w", s.cluster, dst, err)
		}
		break
	}
	if _, now, err := s.journalVersion(ctx); err != nil {
		return "", err
	} else if now != rev {
		return "", fmt.Errorf("set aside the journal of cluster %s: %w: SSM parameter %s went from version %s to %s while it was copied to %s; it was not deleted",
			s.cluster, platform.ErrConflict, name, rev, describeRevision(now), dst)
	}
	if err := s.remove(ctx, name); err != nil {
		return "", fmt.Errorf("set aside the journal of cluster %s (copied to %s): %w", s.cluster, dst, err)
	}
	return dst, nil
}

// Tokens are a swarm's join tokens. They print as "[redacted]" so they
// cannot leak through a log line or an error by accident.
type Tokens struct {
	Worker  string
	Manager string
}

const redacted = "[redacted]"

func (Tokens) String() string     { return "Tokens{Worker:" + redacted + " Manager:" + redacted + "}" }
func (t Tokens) GoString() string { return t.String() }

// PutTokens writes both join tokens as SecureString parameters. Errors
// never carry a token: whatever AWS echoes back is scrubbed.
func (s *Store) PutTokens(ctx context.Context, t Tokens) error {
	if t.Worker == "" || t.Manager == "" {
		return errors.New("join tokens: both the worker and the manager token are required")
	}
	for _, kv := range []struct{ role, value string }{{policy.RoleWorker, t.Worker}, {policy.RoleManager, t.Manager}} {
		name := TokenParameter(s.cluster, kv.role)
		in := &ssm.PutParameterInput{
			Name:      awsv2.String(name),
			Value:     awsv2.String(kv.value),
			Type:      types.ParameterTypeSecureString,
			Overwrite: awsv2.Bool(true),
		}
		if s.KMSKeyID != "" {
			in.KeyId = awsv2.String(s.KMSKeyID)
		}
		if _, err := s.api.PutParameter(ctx, in); err != nil {
			return scrub(fmt.Errorf("put SSM parameter %s: %w", name, err), t.Worker, t.Manager)
		}
	}
	return nil
}

// GetTokens reads both join tokens, decrypted, in one call;
// platform.ErrNotFound when either is missing.
func (s *Store) GetTokens(ctx context.Context) (Tokens, error) {
	worker, manager := TokenParameter(s.cluster, policy.RoleWorker), TokenParameter(s.cluster, policy.RoleManager)
	out, err := s.api.GetParameters(ctx, &ssm.GetParametersInput{
		Names:          []string{worker, manager},
		WithDecryption: awsv2.Bool(true),
	})
	if err != nil {
		return Tokens{}, scrub(fmt.Errorf("get join tokens of %s: %w", s.cluster, err))
	}
	if len(out.InvalidParameters) > 0 {
		return Tokens{}, fmt.Errorf("join tokens of %s (%s): %w", s.cluster, strings.Join(out.InvalidParameters, ", "), platform.ErrNotFound)
	}
	var t Tokens
	for _, p := range out.Parameters {
		switch awsv2.ToString(p.Name) {
		case worker:
			t.Worker = awsv2.ToString(p.Value)
		case manager:
			t.Manager = awsv2.ToString(p.Value)
		}
	}
	if t.Worker == "" || t.Manager == "" {
		return Tokens{}, fmt.Errorf("join tokens of %s: %w", s.cluster, platform.ErrNotFound)
	}
	return t, nil
}

// DeleteTokens removes both join tokens.
func (s *Store) DeleteTokens(ctx context.Context) error {
	for _, role := range []string{policy.RoleWorker, policy.RoleManager} {
		if err := s.remove(ctx, TokenParameter(s.cluster, role)); err != nil {
			return err
		}
	}
	return nil
}

// AcquireInitLock creates the first manager's lock parameter with
// Overwrite=false, holding owner (an instance id): exactly one caller, ever,
// gets true, the one that may `docker swarm init`. User data does the same
// with the AWS CLI; this is the same protocol for Go callers and tests.
func (s *Store) AcquireInitLock(ctx context.Context, owner string) (bool, error) {
	_, err := s.api.PutParameter(ctx, &ssm.PutParameterInput{
		Name:      awsv2.String(InitLockParameter(s.cluster)),
		Value:     awsv2.String(owner),
		Type:      types.ParameterTypeString,
		Overwrite: awsv2.Bool(false),
	})
	var exists *types.ParameterAlreadyExists
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &exists):
		return false, nil
	default:
		return false, fmt.Errorf("create the swarm init lock of %s: %w", s.cluster, err)
	}
}

// Delete removes every parameter of the cluster, tokens and lock included
// (destroy).
func (s *Store) Delete(ctx context.Context) error {
	params, err := s.list(ctx, s.Path(), true)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(params))
	for _, p := range params {
		names = append(names, awsv2.ToString(p.Name))
	}
	for start := 0; start < len(names); start += 10 { // DeleteParameters takes at most 10
		if _, err := s.api.DeleteParameters(ctx, &ssm.DeleteParametersInput{Names: names[start:min(start+10, len(names))]}); err != nil {
			return fmt.Errorf("delete SSM parameters under %s: %w", s.Path(), err)
		}
	}
	return nil
}

// scrub returns err with every secret replaced by "[redacted]". It keeps
// the AWS error code (so IsTransient still works) but not the original
// error, whose text could hold a secret.
func scrub(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	for _, sec := range secrets {
		if sec != "" {
			msg = strings.ReplaceAll(msg, sec, redacted)
		}
	}
	return &scrubbedError{msg: msg, code: errorCode(err)}
}

type scrubbedError struct{ msg, code string }

func (e *scrubbedError) Error() string        { return e.msg }
func (e *scrubbedError) ErrorCode() string    { return e.code }
func (e *scrubbedError) ErrorMessage() string { return e.msg }
func (e *scrubbedError) ErrorFault() smithy.ErrorFault {
	return smithy.FaultUnknown
}
