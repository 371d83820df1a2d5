package aws

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/platform/group"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/swarm"
)

// The AWS store is SSM Parameter Store, one path per cluster:
//
//	/autarky/<cluster>/cluster            the cluster descriptor (JSON String)
//	/autarky/<cluster>/pools/<pool>       node pool descriptors (JSON String)
//	/autarky/<cluster>/healing/<pool>     healing policies (JSON String)
//	/autarky/<cluster>/scaling/<pool>     scaling policies (JSON String)
//	/autarky/<cluster>/journal            the agent's journal, or its head (String)
//	/autarky/<cluster>/journal-parts/<id> the parts of a large journal (String)
//	/autarky/<cluster>/journal-set-aside-<unix seconds>[-part-<n>]
//	                                      an unreadable journal kept for a person
//	/autarky/<cluster>/tokens/worker      the Swarm join tokens (SecureString)
//	/autarky/<cluster>/tokens/manager
//	/autarky/<cluster>/agent/alert-token the agents' bearer token (SecureString)
//	/autarky/<cluster>/swarm/init-lock    the first manager's lock (user data)
//
// JSON parameters use the Intelligent-Tiering tier: standard (free, up to
// 4 KB) while they fit, advanced (up to 8 KB) when a large policy needs
// it. The journal is kept to standard parameters however large it grows:
// see the journal's layout below.

// PathPrefix is where every cluster's parameters live.
const PathPrefix = policy.AWSPathPrefix

// MaxParameterSize is the largest value SSM holds (an advanced parameter).
const MaxParameterSize = 8192

// ClusterPath is the parameter path of a cluster: /autarky/<cluster>.
func ClusterPath(cluster string) string { return PathPrefix + "/" + cluster }

// TokenParameter is the SecureString parameter holding the join token of
// a role (policy.RoleWorker or policy.RoleManager).
func TokenParameter(cluster, role string) string { return ClusterPath(cluster) + "/tokens/" + role }

// InitLockParameter is the parameter the first manager creates with
// Overwrite=false to win the right to `docker swarm init`.
func InitLockParameter(cluster string) string { return ClusterPath(cluster) + "/" + group.KeyInitLock }

// GenerationParameter is the parameter every configuration write renews
// (group.KeyGeneration): the agent re-reads the configuration only when
// it changed, and writes it too when it records a pool's size.
func GenerationParameter(cluster string) string {
	return ClusterPath(cluster) + "/" + group.KeyGeneration
}

// JournalParameter is the parameter holding the agent's journal.
func JournalParameter(cluster string) string { return ClusterPath(cluster) + "/journal" }

// Store is one cluster's store in SSM Parameter Store: the shared
// layer's store (group.Store: descriptors, policies, tokens, the init
// lock and the agent token, with their semantics) over SSM (ssmKV), and
// the journal in SSM's own layout (below), since one parameter holds
// only 4 KB and SSM has no conditional put.
type Store struct {
	*group.Store
	api     *ssm.Client
	cluster string
	// KMSKeyID encrypts the secrets (tokens); empty means the account's
	// AWS managed key for SSM (alias/aws/ssm).
	KMSKeyID string

	// partSweepAge is how old an orphaned journal part must be for a
	// sweep to delete it (0: defaultPartSweepAge).
	partSweepAge time.Duration
	mu           sync.Mutex
	saves        int  // journal saves, for sweepEvery
	sweepNext    bool // a save failed or left garbage: the next one sweeps
}

// NewStore opens the store of cluster; api comes from NewClients.
func NewStore(api *ssm.Client, cluster string) (*Store, error) {
	s := &Store{api: api, cluster: cluster}
	gs, err := group.NewStore(ssmKV{s}, s, cluster)
	if err != nil {
		return nil, err
	}
	s.Store = gs
	return s, nil
}

// Name is the cluster's name.
func (s *Store) Name() string { return s.cluster }

// Path is the cluster's parameter path.
func (s *Store) Path() string { return ClusterPath(s.cluster) }

// LoadJournal, SaveJournal and SetAsideJournal are the journal's in SSM
// (group.Journal), below; the embedded group.Store's call them.

// ssmKV is the shared layer's KV over SSM Parameter Store: a key is the
// parameter <cluster path>/<key>; a revision is the parameter's Version.
// Values go to the Intelligent-Tiering tier (standard, free, up to 4 KB,
// while they fit; advanced up to 8 KB); secrets are SecureString under
// the store's KMS key, and errors about them are scrubbed of the value.
type ssmKV struct{ s *Store }

func (kv ssmKV) name(key string) string { return kv.s.Path() + "/" + key }

func (kv ssmKV) Where() string { return "SSM path " + kv.s.Path() }

func (kv ssmKV) Get(ctx context.Context, key string) ([]byte, string, error) {
	name := kv.name(key)
	out, err := kv.s.api.GetParameter(ctx, &ssm.GetParameterInput{Name: awsv2.String(name), WithDecryption: awsv2.Bool(true)})
	if err != nil {
		var nf *types.ParameterNotFound
		if errors.As(err, &nf) {
			return nil, "", fmt.Errorf("SSM parameter %s: %w", name, platform.ErrNotFound)
		}
		return nil, "", scrub(fmt.Errorf("get SSM parameter %s: %w", name, err))
	}
	return []byte(awsv2.ToString(out.Parameter.Value)), strconv.FormatInt(out.Parameter.Version, 10), nil
}

func (kv ssmKV) List(ctx context.Context, prefix string) ([]group.Entry, error) {
	params, err := kv.s.list(ctx, kv.name(prefix), false)
	if err != nil {
		return nil, err
	}
	out := make([]group.Entry, 0, len(params))
	for _, p := range params {
		out = append(out, group.Entry{Key: strings.TrimPrefix(awsv2.ToString(p.Name), kv.s.Path()+"/"),
			Data: []byte(awsv2.ToString(p.Value)), Rev: strconv.FormatInt(p.Version, 10)})
	}
	return out, nil
}

// Put writes a parameter. IfRev is as narrow as SSM allows: the version
// is read right before the put, and the put must make exactly the next
// version. An existing secret put with IfAbsent that is not a
// SecureString is refused: its value is readable in clear by anyone who
// may describe parameters.
func (kv ssmKV) Put(ctx context.Context, key string, data []byte, o group.PutOptions) (string, error) {
	name := kv.name(key)
	if len(data) > MaxParameterSize {
		return "", fmt.Errorf("%s is %d bytes: an SSM parameter holds at most %d", name, len(data), MaxParameterSize)
	}
	if o.IfRev != "" {
		_, rev, err := kv.Get(ctx, key)
		if err != nil && !errors.Is(err, platform.ErrNotFound) {
			return "", err
		}
		if rev != o.IfRev {
			return "", fmt.Errorf("SSM parameter %s is at version %q, not %q: %w", name, rev, o.IfRev, platform.ErrConflict)
		}
	}
	in := &ssm.PutParameterInput{Name: awsv2.String(name), Value: awsv2.String(string(data)), Type: types.ParameterTypeString,
		Overwrite: awsv2.Bool(!o.IfAbsent), Tier: types.ParameterTierIntelligentTiering}
	if o.Secret {
		in.Type, in.Tier = types.ParameterTypeSecureString, ""
		if kv.s.KMSKeyID != "" {
			in.KeyId = awsv2.String(kv.s.KMSKeyID)
		}
	}
	out, err := kv.s.api.PutParameter(ctx, in)
	var exists *types.ParameterAlreadyExists
	switch {
	case errors.As(err, &exists):
		if o.Secret {
			if err := kv.checkSecure(ctx, name); err != nil {
				return "", err
			}
		}
		return "", fmt.Errorf("SSM parameter %s: %w", name, platform.ErrExists)
	case err != nil && o.Secret:
		return "", scrub(fmt.Errorf("put SSM parameter %s: %w", name, err), string(data))
	case err != nil:
		return "", fmt.Errorf("put SSM parameter %s: %w", name, err)
	}
	rev := strconv.FormatInt(out.Version, 10)
	if o.IfRev != "" {
		if want, _ := strconv.ParseInt(o.IfRev, 10, 64); out.Version != want+1 {
			return rev, fmt.Errorf("SSM parameter %s: another writer put version %d since version %s was read: %w", name, out.Version-1, o.IfRev, platform.ErrConflict)
		}
	}
	return rev, nil
}

// checkSecure refuses an existing parameter that is not a SecureString.
func (kv ssmKV) checkSecure(ctx context.Context, name string) error {
	out, err := kv.s.api.GetParameter(ctx, &ssm.GetParameterInput{Name: awsv2.String(name), WithDecryption: awsv2.Bool(false)})
	if err != nil {
		return scrub(fmt.Errorf("read SSM parameter %s: %w", name, err))
	}
	if out.Parameter.Type != types.ParameterTypeSecureString {
		return fmt.Errorf("%s is a %s parameter, readable in clear: delete it and apply again (a SecureString is made), or put it back as a SecureString", name, out.Parameter.Type)
	}
	return nil
}

func (kv ssmKV) Delete(ctx context.Context, key string) error { return kv.s.remove(ctx, kv.name(key)) }

// DeleteAll removes every parameter of the cluster, tokens and lock
// included (destroy).
func (kv ssmKV) DeleteAll(ctx context.Context) error {
	s := kv.s
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

// The journal in SSM: a head parameter and, for a large journal, parts.
//
// One SSM parameter holds 4 KB on the standard tier (8 KB on the advanced
// tier, which costs money), about 15 entries of the agent's JSON: a
// cluster with more actions in flight could not journal them, and every
// action was refused. The journal is therefore stored as
//
//	<cluster path>/journal                 the head: the journal's revision
//	<cluster path>/journal-parts/<id>      the parts a large head names
//
// and the head holds, by size of the journal's JSON:
//
//   - up to 4 KB (about 7 entries): the JSON itself, exactly as one
//     parameter always held it (a person reads it in the console; an older
//     agent reads it too);
//   - else, when the gzip of the JSON fits (base64; up to about 30
//     entries): "autarky-journal/2 " and a JSON head holding it inline;
//   - else the same head naming parts: the base64 of the gzip cut into
//     pieces of 4 KB, each a standard-tier parameter named by the SHA-256
//     of its value (content-addressed). 100 entries in flight take 3
//     parts; a head names at most about 110 parts, some 4,000 entries,
//     and a journal larger than that is refused before any call.
//
// The head also carries the JSON's length and SHA-256, checked after the
// gzip, and every part is checked against its name, so a missing or
// altered part is ErrJournalCorrupt, never a wrong journal. The prefix
// makes a new head no JSON at all: an older agent that meets one reads it
// as corrupt and sets it aside rather than taking it for an empty journal.
// Old single-parameter journals, of any size, are plain JSON and read as
// before; the first save over one writes the new layout.
//
// Only the head is ever overwritten, and parts are content-addressed, so
// the revision stays the head's Version and the fencing is the head's:
// SaveJournal writes the parts first and the head last, in one put, and
// only then deletes the parts the replaced head named and the new one does
// not. A reader that read a head whose parts a writer deleted meanwhile
// sees the head's version move and reads again; only parts missing under
// an unchanged head are corruption. A crash between the parts and the
// head, a refused save or a failed delete leaves parts no head names: every
// sweepEvery-th save (the first of each process included) lists the parts
// and deletes those that neither head names and that are older than
// partSweepAge (a writer still putting its parts keeps them).
//
// Calls: a journal of up to about 30 entries costs 1 GetParameter to load
// and 2 calls to save (GetParameter, PutParameter), as one parameter did;
// with p parts a load is 1 + ⌈p/10⌉ (GetParameters takes 10 names) and a
// save 2 + p + ⌈p_old/10⌉ (DeleteParameters takes 10), plus the sweep's
// GetParametersByPath pages every sweepEvery-th save.
//
// Fencing: SSM has no conditional put on a version. SaveJournal reads the
// head's version right before its puts and refuses when it is not the
// writer's revision, and afterwards checks that its head put made exactly
// the next version. That narrows the window in which a stale writer's save
// lands (two saves within the same few milliseconds) and makes both
// writers learn of it after the fact, but it does not close it: on AWS the
// leadership check right before every write is the main fence. In that
// window the loser may also delete parts the winner's head names, which
// ends in ErrJournalCorrupt, a set-aside and a rebuild from Swarm and the
// platform: safe, if loud. The first journal is the exception: with
// revision "" the head put is create-only (Overwrite=false), which SSM
// does enforce. An SDK retry of a put that had landed shows as a conflict
// too (its version is one more): a false alarm that is safe, since the
// writer reloads instead of acting.

// JournalPartsPath is where the parts of a large journal live.
func JournalPartsPath(cluster string) string { return ClusterPath(cluster) + "/journal-parts" }

const (
	// standardParameterSize is the largest value of a standard-tier
	// parameter: every head and part the agent writes fits in it.
	standardParameterSize = 4096
	// journalHeadPrefix starts a head that is not the journal's JSON.
	journalHeadPrefix = "autarky-journal/2 "
	// maxJournalBytes bounds what a head may claim, so that a bad head
	// cannot make a reader allocate without bound.
	maxJournalBytes = 64 << 20
	// sweepEvery is how often (in saves of one Store) orphaned parts are
	// looked for.
	sweepEvery = 100
	// defaultPartSweepAge spares the parts a writer may still be putting.
	defaultPartSweepAge = 10 * time.Minute
	// journalReadAttempts bounds the reads of a journal whose head keeps
	// changing under the reader.
	journalReadAttempts = 3
)

// journalHead is the JSON after journalHeadPrefix.
type journalHead struct {
	// Bytes and SHA256 are the length and hash of the journal's JSON.
	Bytes  int    `json:"bytes"`
	SHA256 string `json:"sha256"`
	// Gzip is the base64 of the gzip of the JSON, when it fits in the
	// head; otherwise Parts names, in order, the parameters under
	// JournalPartsPath whose values, concatenated, are that base64.
	Gzip  string   `json:"gzip,omitempty"`
	Parts []string `json:"parts,omitempty"`
}

// journalPart is one part: its id (the name under JournalPartsPath) and
// value.
type journalPart struct{ id, value string }

// partID is the content address of a part's value.
func partID(value string) string {
	sum := sha256.Sum256([]byte(value))
	return hex.EncodeToString(sum[:16])
}

func (s *Store) partName(id string) string { return JournalPartsPath(s.cluster) + "/" + id }

// encodeJournal makes the head value and the parts of v (see the layout
// above). A journal too large for a head's parts is an error.
func encodeJournal(v any) (string, []journalPart, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return "", nil, err
	}
	if len(raw) <= standardParameterSize {
		return string(raw), nil, nil
	}
	sum := sha256.Sum256(raw)
	var z bytes.Buffer
	w, err := gzip.NewWriterLevel(&z, gzip.BestCompression)
	if err != nil {
		return "", nil, err
	}
	if _, err := w.Write(raw); err != nil {
		return "", nil, err
	}
	if err := w.Close(); err != nil {
		return "", nil, err
	}
	enc := base64.StdEncoding.EncodeToString(z.Bytes())
	h := journalHead{Bytes: len(raw), SHA256: hex.EncodeToString(sum[:]), Gzip: enc}
	if head, err := marshalHead(h); err != nil || len(head) <= standardParameterSize {
		return head, nil, err
	}
	h.Gzip = ""
	var parts []journalPart
	for rest := enc; rest != ""; {
		n := min(standardParameterSize, len(rest))
		p := journalPart{id: partID(rest[:n]), value: rest[:n]}
		parts = append(parts, p)
		h.Parts = append(h.Parts, p.id)
		rest = rest[n:]
	}
	head, err := marshalHead(h)
	if err != nil {
		return "", nil, err
	}
	if len(head) > standardParameterSize {
		return "", nil, fmt.Errorf("the journal is %d bytes, %d gzipped: its %d parts of %d bytes are more than one head of %d bytes can name",
			len(raw), z.Len(), len(parts), standardParameterSize, standardParameterSize)
	}
	return head, parts, nil
}

func marshalHead(h journalHead) (string, error) {
	b, err := json.Marshal(h)
	return journalHeadPrefix + string(b), err
}

// parseHead reads a head value: (nil, nil) for a plain JSON journal, an
// error for a head that cannot be read.
func parseHead(value string) (*journalHead, error) {
	rest, ok := strings.CutPrefix(value, journalHeadPrefix)
	if !ok {
		return nil, nil
	}
	var h journalHead
	if err := json.Unmarshal([]byte(rest), &h); err != nil {
		return nil, fmt.Errorf("its head is not JSON: %v", err)
	}
	if h.Bytes < 0 || h.Bytes > maxJournalBytes {
		return nil, fmt.Errorf("its head claims %d bytes", h.Bytes)
	}
	if (h.Gzip == "") == (len(h.Parts) == 0) {
		return nil, errors.New("its head holds neither inline data nor parts")
	}
	return &h, nil
}

// headParts is the set of part ids a head value names (none for a plain
// journal or a head that cannot be read).
func headParts(value string) map[string]bool {
	h, err := parseHead(value)
	if err != nil || h == nil {
		return nil
	}
	ids := make(map[string]bool, len(h.Parts))
	for _, id := range h.Parts {
		ids[id] = true
	}
	return ids
}

// getParts reads the parts of ids by value, in GetParameters calls of 10
// names; an id that has no parameter is in missing.
func (s *Store) getParts(ctx context.Context, ids []string) (values map[string]string, missing []string, err error) {
	values = map[string]string{}
	var names []string
	seen := map[string]bool{}
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			names = append(names, s.partName(id))
		}
	}
	for start := 0; start < len(names); start += 10 {
		out, err := s.api.GetParameters(ctx, &ssm.GetParametersInput{Names: names[start:min(start+10, len(names))]})
		if err != nil {
			return nil, nil, fmt.Errorf("get the journal parts of cluster %s: %w", s.cluster, err)
		}
		for _, p := range out.Parameters {
			values[path.Base(awsv2.ToString(p.Name))] = awsv2.ToString(p.Value)
		}
	}
	for id := range seen {
		if _, ok := values[id]; !ok {
			missing = append(missing, id)
		}
	}
	sort.Strings(missing)
	return values, missing, nil
}

// deleteNames deletes parameters in DeleteParameters calls of 10.
func (s *Store) deleteNames(ctx context.Context, names []string) error {
	for start := 0; start < len(names); start += 10 {
		if _, err := s.api.DeleteParameters(ctx, &ssm.DeleteParametersInput{Names: names[start:min(start+10, len(names))]}); err != nil {
			return fmt.Errorf("delete SSM parameters %s: %w", strings.Join(names[start:min(start+10, len(names))], ", "), err)
		}
	}
	return nil
}

// decodeHead makes the journal's JSON from a head and its parts' values;
// an error says what is wrong (the caller wraps ErrJournalCorrupt).
func decodeHead(h *journalHead, values map[string]string) ([]byte, error) {
	enc := h.Gzip
	if enc == "" {
		var b strings.Builder
		for i, id := range h.Parts {
			v := values[id]
			if partID(v) != id {
				return nil, fmt.Errorf("part %d of %d (%s) does not match its name", i+1, len(h.Parts), id)
			}
			b.WriteString(v)
		}
		enc = b.String()
	}
	z, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, fmt.Errorf("its data is not base64: %v", err)
	}
	r, err := gzip.NewReader(bytes.NewReader(z))
	if err != nil {
		return nil, fmt.Errorf("its data is not gzip: %v", err)
	}
	raw, err := io.ReadAll(io.LimitReader(r, int64(h.Bytes)+1))
	if err != nil {
		return nil, fmt.Errorf("its data does not gunzip: %v", err)
	}
	if len(raw) != h.Bytes {
		return nil, fmt.Errorf("its data is %d bytes, the head says %d", len(raw), h.Bytes)
	}
	if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != h.SHA256 {
		return nil, errors.New("its data does not match the head's SHA-256")
	}
	return raw, nil
}

// journalVersion reads the head's value and revision; ("", "", nil) when
// there is none.
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

// readJournal reads the journal's JSON and revision, parts and all; ("",
// nil) when there is none. A journal whose head and parts do not make one
// (see decodeHead) is an error wrapping platform.ErrJournalCorrupt.
func (s *Store) readJournal(ctx context.Context) ([]byte, string, error) {
	name := JournalParameter(s.cluster)
	for attempt := 1; ; attempt++ {
		value, rev, err := s.journalVersion(ctx)
		if err != nil || rev == "" {
			return nil, "", err
		}
		h, err := parseHead(value)
		if err != nil {
			return nil, "", fmt.Errorf("%w: SSM parameter %s (version %s): %v", platform.ErrJournalCorrupt, name, rev, err)
		}
		if h == nil {
			return []byte(value), rev, nil // one parameter of plain JSON
		}
		var values map[string]string
		if len(h.Parts) > 0 {
			var missing []string
			values, missing, err = s.getParts(ctx, h.Parts)
			if err != nil {
				return nil, "", err
			}
			if len(missing) > 0 {
				// A writer may have replaced the head and deleted its
				// parts since: only an unchanged head is corrupt.
				_, now, err := s.journalVersion(ctx)
				if err != nil {
					return nil, "", err
				}
				if now != rev {
					if attempt < journalReadAttempts {
						continue
					}
					return nil, "", fmt.Errorf("read the journal of cluster %s: SSM parameter %s changed %d times while its parts were read", s.cluster, name, attempt)
				}
				return nil, "", fmt.Errorf("%w: SSM parameter %s (version %s) names %d parts of %d that are not under %s: %s",
					platform.ErrJournalCorrupt, name, rev, len(missing), len(h.Parts), JournalPartsPath(s.cluster), strings.Join(missing, ", "))
			}
		}
		raw, err := decodeHead(h, values)
		if err != nil {
			return nil, "", fmt.Errorf("%w: SSM parameter %s (version %s): %v", platform.ErrJournalCorrupt, name, rev, err)
		}
		return raw, rev, nil
	}
}

// LoadJournal reads the agent's journal into v and returns its revision
// (the head's Version); ("", nil) with v untouched when there is no
// journal. A journal that is not JSON of v's shape, or whose head and
// parts do not make one, is an error wrapping platform.ErrJournalCorrupt.
func (s *Store) LoadJournal(ctx context.Context, v any) (string, error) {
	raw, rev, err := s.readJournal(ctx)
	if err != nil || rev == "" {
		return "", err
	}
	name := JournalParameter(s.cluster)
	if !json.Valid(raw) {
		// Checked first so that v is untouched by half a document.
		return "", fmt.Errorf("%w: SSM parameter %s (version %s) is not JSON (%d bytes)", platform.ErrJournalCorrupt, name, rev, len(raw))
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return "", fmt.Errorf("%w: SSM parameter %s (version %s): %v", platform.ErrJournalCorrupt, name, rev, err)
	}
	return rev, nil
}

// SaveJournal replaces the agent's journal with v while its version is
// still rev, and returns the new version: its parts first, then its head
// in one PutParameter (a reader sees the old journal or the new one, never
// a mix), then it deletes the parts only the replaced head named. See the
// fencing note above: a version other than rev right before the puts is
// refused with platform.ErrConflict; so is a head put that did not make
// exactly the next version (another writer put in between: this journal
// has landed, but the writer must not act on it as the only writer); and
// with rev "" the head put is create-only.
func (s *Store) SaveJournal(ctx context.Context, v any, rev string) (string, error) {
	name := JournalParameter(s.cluster)
	head, parts, err := encodeJournal(v)
	if err != nil {
		return "", fmt.Errorf("save the journal of cluster %s: %w", s.cluster, err)
	}
	curValue, cur, err := s.journalVersion(ctx)
	if err != nil {
		return "", err
	}
	if cur != rev {
		s.noteSweep()
		return "", fmt.Errorf("save the journal of cluster %s: %w: SSM parameter %s holds %s, this writer read %s",
			s.cluster, platform.ErrConflict, name, describeRevision(cur), describeRevision(rev))
	}
	old := headParts(curValue)
	keep := map[string]bool{}
	for _, p := range parts {
		if keep[p.id] {
			continue
		}
		keep[p.id] = true
		if old[p.id] {
			continue // the same content is there already
		}
		if _, err := s.api.PutParameter(ctx, &ssm.PutParameterInput{
			Name:      awsv2.String(s.partName(p.id)),
			Value:     awsv2.String(p.value),
			Type:      types.ParameterTypeString,
			Overwrite: awsv2.Bool(true), // the same name always holds the same value
			Tier:      types.ParameterTierStandard,
		}); err != nil {
			s.noteSweep()
			return "", fmt.Errorf("save the journal of cluster %s: put SSM parameter %s: %w", s.cluster, s.partName(p.id), err)
		}
	}
	out, err := s.api.PutParameter(ctx, &ssm.PutParameterInput{
		Name:      awsv2.String(name),
		Value:     awsv2.String(head),
		Type:      types.ParameterTypeString,
		Overwrite: awsv2.Bool(rev != ""),
		// Intelligent-Tiering: standard for every head written now; an
		// old journal parameter that was advanced cannot go back.
		Tier: types.ParameterTierIntelligentTiering,
	})
	var exists *types.ParameterAlreadyExists
	if errors.As(err, &exists) {
		s.noteSweep()
		return "", fmt.Errorf("save the journal of cluster %s: %w: SSM parameter %s was created by another writer", s.cluster, platform.ErrConflict, name)
	}
	if err != nil {
		s.noteSweep()
		return "", fmt.Errorf("put SSM parameter %s: %w", name, err)
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
	if out.Version != want {
		s.noteSweep()
		return "", fmt.Errorf("save the journal of cluster %s: %w: another writer put SSM parameter %s between this writer's check and its put (this put made version %d, not %d)",
			s.cluster, platform.ErrConflict, name, out.Version, want)
	}
	// The new head is in place: the parts only the replaced one named
	// are garbage. A failed delete leaves them to the sweep.
	var garbage []string
	for id := range old {
		if !keep[id] {
			garbage = append(garbage, s.partName(id))
		}
	}
	sort.Strings(garbage)
	if err := s.deleteNames(ctx, garbage); err != nil {
		s.noteSweep()
	}
	if s.sweepDue() {
		if err := s.sweepParts(ctx, keep); err != nil {
			s.noteSweep()
		}
	}
	return strconv.FormatInt(out.Version, 10), nil
}

// noteSweep makes the next save look for orphaned parts.
func (s *Store) noteSweep() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepNext = true
}

// sweepDue counts a save and tells whether it sweeps.
func (s *Store) sweepDue() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	due := s.sweepNext || s.saves%sweepEvery == 0
	s.saves++
	s.sweepNext = false
	return due
}

// sweepParts deletes the parts under JournalPartsPath that keep (the parts
// of the head just written) does not name and that were last written
// before partSweepAge ago.
func (s *Store) sweepParts(ctx context.Context, keep map[string]bool) error {
	params, err := s.list(ctx, JournalPartsPath(s.cluster), false)
	if err != nil {
		return err
	}
	age := s.partSweepAge
	if age == 0 {
		age = defaultPartSweepAge
	}
	cutoff := time.Now().Add(-age)
	var orphans []string
	for _, p := range params {
		name := awsv2.ToString(p.Name)
		if keep[path.Base(name)] || (p.LastModifiedDate != nil && p.LastModifiedDate.After(cutoff)) {
			continue
		}
		orphans = append(orphans, name)
	}
	return s.deleteNames(ctx, orphans)
}

// JournalSetAsideParameter is the name SetAsideJournal keeps an
// unreadable journal under at unix time sec.
func JournalSetAsideParameter(cluster string, sec int64) string {
	return ClusterPath(cluster) + "/journal-set-aside-" + strconv.FormatInt(sec, 10)
}

// JournalSetAsidePart is the name SetAsideJournal keeps part n (from 1) of
// a journal it set aside as kept under.
func JournalSetAsidePart(kept string, n int) string { return kept + "-part-" + strconv.Itoa(n) }

// SetAsideJournal copies the journal's head, as it is, into a new String
// parameter, <cluster path>/journal-set-aside-<unix seconds> (with -2, -3,
// ... when that name is taken), and each part it names that exists into
// <that name>-part-<n>, n counting from 1 in the head's order (the
// journal's JSON is the gunzip of the base64 of the parts' values
// concatenated; a head that cannot be read names no parts, so then every
// part under JournalPartsPath is kept, in name order); the head copy's
// description says how many parts are missing. It then deletes the head and the parts and returns the new
// name. No journal is an error wrapping platform.ErrNotFound; a journal
// that another writer replaced meanwhile is not deleted (the error wraps
// platform.ErrConflict, the copies stay).
func (s *Store) SetAsideJournal(ctx context.Context) (string, error) {
	name := JournalParameter(s.cluster)
	raw, rev, err := s.journalVersion(ctx)
	if err != nil {
		return "", err
	}
	if rev == "" {
		return "", fmt.Errorf("set aside the journal of cluster %s: there is no journal: %w", s.cluster, platform.ErrNotFound)
	}
	var ids []string
	var values map[string]string
	var missing []string
	if h, err := parseHead(raw); err == nil && h != nil {
		ids = h.Parts
	} else if err != nil {
		// A head that names nothing readable: keep every part there is,
		// in name order, for the person to sort out.
		params, err := s.list(ctx, JournalPartsPath(s.cluster), false)
		if err != nil {
			return "", fmt.Errorf("set aside the journal of cluster %s: %w", s.cluster, err)
		}
		for _, p := range params {
			ids = append(ids, path.Base(awsv2.ToString(p.Name)))
		}
	}
	if len(ids) > 0 {
		if values, missing, err = s.getParts(ctx, ids); err != nil {
			return "", fmt.Errorf("set aside the journal of cluster %s: %w", s.cluster, err)
		}
	}
	desc := "autarky: the agent journal of " + s.cluster + " at version " + rev + ", set aside because it could not be read"
	if len(ids) > 0 {
		desc += fmt.Sprintf("; its %d parts follow as <this name>-part-1 to -%d", len(ids), len(ids))
		if len(missing) > 0 {
			desc += fmt.Sprintf(" (%d missing)", len(missing))
		}
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
			Description: awsv2.String(desc),
		})
		if errors.As(err, new(*types.ParameterAlreadyExists)) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("set aside the journal of cluster %s: put SSM parameter %s: %w", s.cluster, dst, err)
		}
		break
	}
	for i, id := range ids {
		v, ok := values[id]
		if !ok {
			continue
		}
		part := JournalSetAsidePart(dst, i+1)
		if _, err := s.api.PutParameter(ctx, &ssm.PutParameterInput{
			Name:        awsv2.String(part),
			Value:       awsv2.String(v),
			Type:        types.ParameterTypeString,
			Overwrite:   awsv2.Bool(true), // dst is new: these names are this set-aside's
			Tier:        types.ParameterTierStandard,
			Description: awsv2.String(fmt.Sprintf("autarky: part %d of %d (%s) of the journal set aside as %s", i+1, len(ids), id, dst)),
		}); err != nil {
			return "", fmt.Errorf("set aside the journal of cluster %s (head copied to %s): put SSM parameter %s: %w", s.cluster, dst, part, err)
		}
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
	var parts []string
	for id := range values {
		parts = append(parts, s.partName(id))
	}
	sort.Strings(parts)
	if err := s.deleteNames(ctx, parts); err != nil {
		s.noteSweep() // copied and no head names them: the sweep removes them
	}
	return dst, nil
}

// TokenRotationParameter records the join_token_rotation trigger the
// stored tokens were last rotated for: the agent writes it after the new
// tokens, so it never names a rotation whose tokens are not in SSM yet,
// and Terraform's apply waits for it.
func TokenRotationParameter(cluster string) string {
	return ClusterPath(cluster) + "/" + group.KeyTokenRotation
}

// AlertTokenParameter is the SecureString parameter holding the bearer
// token the cluster's agents require on /v1/alerts and /v1/status beyond
// loopback (group.Store.EnsureAlertToken). The managers' user data copies
// it into policy.AgentTokenFile at boot (the managers' role reads the
// whole cluster path, the workers' role only the worker join token). It
// is under the cluster's path, so destroying the cluster deletes it.
func AlertTokenParameter(cluster string) string {
	return ClusterPath(cluster) + "/" + group.KeyAlertToken
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
			msg = swarm.Redact(msg, sec)
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
