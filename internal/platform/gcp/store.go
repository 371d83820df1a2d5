package gcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/platform/group"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// The gcp store is a Cloud Storage bucket the user names, one object per
// key of the shared layer's store (group.Store) under the cluster's root:
//
//	gs://<bucket>/autarky/<cluster>/cluster          the cluster descriptor
//	gs://<bucket>/autarky/<cluster>/pools/<pool>     ...
//	gs://<bucket>/autarky/<cluster>/journal          the agent's journal (group.KVJournal)
//
// A key's revision is its object's generation, which Cloud Storage
// changes on every write, so compare-and-swap is one atomic request: a
// write with ifGenerationMatch=<generation> lands only while the object
// is at that generation, and ifGenerationMatch=0 only while there is no
// object (create-if-absent: the journal's first save, the boot script's
// init lock). Both answer 412 Precondition Failed otherwise.
//
// Not project metadata: every process on every VM of the project can read
// that, and writing it needs rights over the whole project. A bucket is
// readable and writable by exactly whom its IAM says.
//
// Secrets (the join tokens, the agents' bearer token): Cloud Storage
// encrypts every object at rest (Google's keys, or the bucket's default
// Cloud KMS key when the user sets one), so PutOptions.Secret only marks
// the object (metadata autarky-secret: true) so that List leaves its data
// out. Who may read which token is IAM's job, not encryption's nor this
// store's: workers may read autarky/<cluster>/tokens/worker but not
// tokens/manager, which takes IAM bindings on the bucket with a condition
// on the object name (resource.name), as SSM's split takes IAM on
// parameter paths.

// ObjectPrefix is where every cluster's objects live in the bucket.
const ObjectPrefix = policy.GCSObjectPrefix

// ClusterRoot is the object name prefix of cluster: autarky/<cluster>/.
func ClusterRoot(cluster string) string { return ObjectPrefix + "/" + cluster + "/" }

// ObjectName is the object holding key (a group.Key... constant such as
// group.KeyWorkerToken) of cluster: autarky/<cluster>/<key>.
func ObjectName(cluster, key string) string { return ClusterRoot(cluster) + key }

// secretMetadata marks an object put with PutOptions.Secret.
const secretMetadata = "autarky-secret"

// Store is one cluster's root in a Cloud Storage bucket, a group.KV.
type Store struct {
	client  *storage.Client
	bucket  *storage.BucketHandle
	name    string // the bucket's
	cluster string
	root    string // ClusterRoot(cluster)
}

var _ group.KV = (*Store)(nil)

// NewStore is cluster's store in bucket. client comes from
// storage.NewClient (Application Default Credentials, or in tests
// option.WithEndpoint and option.WithoutAuthentication towards
// fake-gcs-server); the bucket must exist (the user names it, Autarky
// never creates or deletes buckets).
func NewStore(client *storage.Client, bucket, cluster string) (*Store, error) {
	if client == nil {
		return nil, errors.New("gcp store: no Cloud Storage client")
	}
	if err := ValidateBucket(bucket); err != nil {
		return nil, fmt.Errorf("bucket: %w", err)
	}
	if err := policy.ValidateName(cluster); err != nil {
		return nil, fmt.Errorf("cluster name: %w", err)
	}
	return &Store{client: client, bucket: client.Bucket(bucket), name: bucket,
		cluster: cluster, root: ClusterRoot(cluster)}, nil
}

// ValidateBucket checks a bucket name: policy.ValidateGCSBucket, the one
// rule the provider's blocks, the agent's flags and the store share.
func ValidateBucket(name string) error { return policy.ValidateGCSBucket(name) }

// Bucket is the bucket's name.
func (s *Store) Bucket() string { return s.name }

// Check tells whether the bucket exists and the client may list the
// cluster's root in it: one list call for at most one object. A read
// answers 404 alike for a missing object and a missing bucket (both are
// platform.ErrNotFound to Get), so a caller checks the bucket once before
// it trusts that a key is absent.
func (s *Store) Check(ctx context.Context) error {
	it := s.bucket.Objects(ctx, &storage.Query{Prefix: s.root})
	it.PageInfo().MaxSize = 1
	if _, err := it.Next(); err != nil && !errors.Is(err, iterator.Done) {
		return fmt.Errorf("list %s: %w", s.Where(), storeErr(err))
	}
	return nil
}

// Where is the cluster's root as a person names it:
// gs://<bucket>/autarky/<cluster>/.
func (s *Store) Where() string { return "gs://" + s.name + "/" + s.root }

// url is the gs:// URL of key, for errors.
func (s *Store) url(key string) string { return s.Where() + key }

// object is key's handle, after checking the key stays inside the root.
func (s *Store) object(key string) (*storage.ObjectHandle, error) {
	if key == "" || strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/") || strings.Contains(key, "//") {
		return nil, fmt.Errorf("store key %q: a key is one or more non-empty parts separated by \"/\"", key)
	}
	for _, part := range strings.Split(key, "/") {
		if part == "." || part == ".." {
			return nil, fmt.Errorf("store key %q: a key has no \".\" or \"..\" parts", key)
		}
	}
	return s.bucket.Object(s.root + key), nil
}

// Get reads key and its generation. One call.
func (s *Store) Get(ctx context.Context, key string) ([]byte, string, error) {
	o, err := s.object(key)
	if err != nil {
		return nil, "", err
	}
	data, gen, err := s.read(ctx, o)
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", s.url(key), err)
	}
	return data, rev(gen), nil
}

// read reads an object's data and the generation that data is.
func (s *Store) read(ctx context.Context, o *storage.ObjectHandle) ([]byte, int64, error) {
	r, err := o.NewReader(ctx)
	if err != nil {
		return nil, 0, storeErr(err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, 0, storeErr(err)
	}
	return data, r.Attrs.Generation, nil
}

// List reads every key directly under prefix+"/" (not deeper: the
// listing uses the "/" delimiter), sorted by key, each with its data and
// generation. That is one list call per 1,000 objects and one read per
// object that is not secret (a secret's data stays out of a listing); an
// object deleted between the listing and its read is left out.
func (s *Store) List(ctx context.Context, prefix string) ([]group.Entry, error) {
	if _, err := s.object(prefix); err != nil {
		return nil, err
	}
	dir := s.root + prefix + "/"
	q := &storage.Query{Prefix: dir, Delimiter: "/"}
	if err := q.SetAttrSelection([]string{"Name", "Generation", "Metadata"}); err != nil {
		return nil, err
	}
	var out []group.Entry
	it := s.bucket.Objects(ctx, q)
	for {
		a, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", s.url(prefix+"/"), storeErr(err))
		}
		if a.Name == "" { // a "directory": keys deeper down
			continue
		}
		e := group.Entry{Key: strings.TrimPrefix(a.Name, s.root), Rev: rev(a.Generation)}
		if a.Metadata[secretMetadata] != "true" {
			data, gen, err := s.read(ctx, s.bucket.Object(a.Name))
			if errors.Is(err, platform.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", s.url(e.Key), err)
			}
			e.Data, e.Rev = data, rev(gen)
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Put writes key in one request and returns its new generation. IfAbsent
// writes with ifGenerationMatch=0 (412: an error wrapping
// platform.ErrExists), IfRev with ifGenerationMatch=IfRev (412: an error
// wrapping platform.ErrConflict).
//
// The client retries a conditional write on 429, 5xx and broken
// connections (it is idempotent); when a first attempt landed but its
// answer was lost, the retry meets its own write and reports the 412.
// That errs on the safe side: the caller re-reads, as after any conflict.
func (s *Store) Put(ctx context.Context, key string, data []byte, o group.PutOptions) (string, error) {
	obj, err := s.object(key)
	if err != nil {
		return "", err
	}
	switch {
	case o.IfAbsent && o.IfRev != "":
		return "", fmt.Errorf("write %s: IfAbsent and IfRev together", s.url(key))
	case o.IfAbsent:
		obj = obj.If(storage.Conditions{DoesNotExist: true})
	case o.IfRev != "":
		gen, err := strconv.ParseInt(o.IfRev, 10, 64)
		if err != nil || gen <= 0 {
			return "", fmt.Errorf("write %s: revision %q is not a Cloud Storage generation", s.url(key), o.IfRev)
		}
		obj = obj.If(storage.Conditions{GenerationMatch: gen})
	default:
		obj = idempotent(obj)
	}
	w := obj.NewWriter(ctx)
	// The store's objects are small: one request (a multipart upload)
	// below this, with a buffer no larger than it.
	w.ChunkSize = 256 << 10
	w.ContentType = "application/octet-stream"
	if o.Secret {
		w.Metadata = map[string]string{secretMetadata: "true"}
	}
	_, werr := w.Write(data)
	if cerr := w.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		if isStatus(werr, http.StatusPreconditionFailed) {
			if o.IfAbsent {
				return "", fmt.Errorf("write %s: %w", s.url(key), platform.ErrExists)
			}
			return "", fmt.Errorf("write %s: %w: it is no longer at generation %s", s.url(key), platform.ErrConflict, o.IfRev)
		}
		if isStatus(werr, http.StatusNotFound) {
			werr = fmt.Errorf("%w: %w", storage.ErrBucketNotExist, werr)
		}
		return "", fmt.Errorf("write %s: %w", s.url(key), storeErr(werr))
	}
	return rev(w.Attrs().Generation), nil
}

// Delete removes key; one already gone is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	o, err := s.object(key)
	if err != nil {
		return err
	}
	return s.remove(ctx, o, key)
}

// idempotent lets the client retry a call on an object it would not
// retry without conditions: an unconditional write of the same bytes, or
// a delete (a retry that finds the object gone is success here).
func idempotent(o *storage.ObjectHandle) *storage.ObjectHandle {
	return o.Retryer(storage.WithPolicy(storage.RetryAlways))
}

// DeleteRev removes key only while it is at generation rev
// (ifGenerationMatch on the delete): an error wrapping
// platform.ErrConflict when it moved; one already gone is not an error.
// group.KVJournal's SetAsideJournal uses it to delete exactly the journal
// it copied.
func (s *Store) DeleteRev(ctx context.Context, key, rev string) error {
	o, err := s.object(key)
	if err != nil {
		return err
	}
	gen, err := strconv.ParseInt(rev, 10, 64)
	if err != nil || gen <= 0 {
		return fmt.Errorf("delete %s: revision %q is not a Cloud Storage generation", s.url(key), rev)
	}
	err = s.remove(ctx, o.If(storage.Conditions{GenerationMatch: gen}), key)
	if isStatus(err, http.StatusPreconditionFailed) {
		return fmt.Errorf("delete %s: %w: it is no longer at generation %s", s.url(key), platform.ErrConflict, rev)
	}
	return err
}

func (s *Store) remove(ctx context.Context, o *storage.ObjectHandle, key string) error {
	err := idempotent(o).Delete(ctx)
	if err == nil || errors.Is(err, storage.ErrObjectNotExist) || isStatus(err, http.StatusNotFound) {
		return nil
	}
	if isStatus(err, http.StatusPreconditionFailed) {
		return err
	}
	return fmt.Errorf("delete %s: %w", s.url(key), storeErr(err))
}

// DeleteAll removes every object under the cluster's root, at any depth:
// one list call per 1,000 objects and one delete per object. Objects of
// other clusters in the bucket stay.
func (s *Store) DeleteAll(ctx context.Context) error {
	q := &storage.Query{Prefix: s.root}
	if err := q.SetAttrSelection([]string{"Name"}); err != nil {
		return err
	}
	it := s.bucket.Objects(ctx, q)
	for {
		a, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("list %s: %w", s.Where(), storeErr(err))
		}
		if err := s.remove(ctx, s.bucket.Object(a.Name), strings.TrimPrefix(a.Name, s.root)); err != nil {
			return err
		}
	}
}

// rev is a generation as a revision.
func rev(gen int64) string { return strconv.FormatInt(gen, 10) }

// isStatus tells whether err is an HTTP answer of Cloud Storage with code.
func isStatus(err error, code int) bool {
	var ge *googleapi.Error
	return errors.As(err, &ge) && ge.Code == code
}

// storeErr maps Cloud Storage's errors to the platform's: a missing
// object is platform.ErrNotFound (a missing bucket stays an error of its
// own, naming the bucket, since the user must create it), and throttling
// or an unavailable service, once the client's own retries are spent, is
// platform.Transient.
func storeErr(err error) error {
	switch {
	case errors.Is(err, storage.ErrObjectNotExist):
		return fmt.Errorf("%w (%v)", platform.ErrNotFound, err)
	case errors.Is(err, storage.ErrBucketNotExist):
		return fmt.Errorf("%w: create the bucket, or name one that exists", err)
	case isStatus(err, http.StatusTooManyRequests), isStatus(err, http.StatusInternalServerError),
		isStatus(err, http.StatusBadGateway), isStatus(err, http.StatusServiceUnavailable),
		isStatus(err, http.StatusGatewayTimeout):
		return transient{err}
	}
	return err
}
