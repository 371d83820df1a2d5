package swarm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Deadlines bound every Engine API call a Client makes, each on its own:
// a dockerd that accepts a connection and never answers (a hung engine, a
// wedged Raft store, a stopped VM) ends the call with a *CallDeadlineError
// after its deadline, instead of holding the caller until the caller's own
// context ends (the agent's evaluation: minutes). Zero fields take the
// defaults.
//
// The deadline covers the whole exchange, body included: an engine that
// sends its headers and then stops is cut off too. It applies per HTTP
// request, so a method that makes several (a node update reads the node,
// then writes it, retrying on a version conflict) takes at most a few
// deadlines, never an unbounded time. The caller's context still applies:
// whichever ends first ends the call.
type Deadlines struct {
	// Read bounds GET and HEAD calls: listings and inspections, which a
	// healthy manager answers in milliseconds even for a thousand nodes or
	// ten thousand tasks. Default 10 s.
	Read time.Duration
	// Write bounds every other call: a node update (drain, label, demote),
	// a node removal, a service update, a swarm update. The manager
	// commits them through Raft, which takes a heartbeat or two when the
	// managers are busy. Default 30 s.
	Write time.Duration
	// Long bounds the calls that legitimately take long: an image import
	// or load (a root filesystem streams in, hundreds of megabytes on a
	// busy disk) and swarm init, join and leave, which dockerd holds until
	// Raft has taken the node in or let it go (its own join gives up after
	// 20 s, a manager's leave waits for the others). Only the platform
	// makes these, when it creates or retires a node, never the agent's
	// observing calls. Default 5 min.
	Long time.Duration
}

// Default deadlines; see Deadlines.
const (
	DefaultReadDeadline  = 10 * time.Second
	DefaultWriteDeadline = 30 * time.Second
	DefaultLongDeadline  = 5 * time.Minute
)

// DefaultDeadlines are the production deadlines.
func DefaultDeadlines() Deadlines {
	return Deadlines{Read: DefaultReadDeadline, Write: DefaultWriteDeadline, Long: DefaultLongDeadline}
}

// Validate refuses negative deadlines, naming the field; zero means the
// default.
func (d Deadlines) Validate() error {
	for _, f := range []struct {
		name string
		v    time.Duration
	}{{"read", d.Read}, {"write", d.Write}, {"long", d.Long}} {
		if f.v < 0 {
			return fmt.Errorf("docker call deadline %s is %s: it must be positive (or zero for the default)", f.name, f.v)
		}
	}
	return nil
}

func (d Deadlines) withDefaults() Deadlines {
	def := DefaultDeadlines()
	if d.Read <= 0 {
		d.Read = def.Read
	}
	if d.Write <= 0 {
		d.Write = def.Write
	}
	if d.Long <= 0 {
		d.Long = def.Long
	}
	return d
}

// For is the deadline of one call, by method and path (the API version
// prefix stripped); 0 means none: the event stream, which is meant to stay
// open, and which the reader reconnects when it breaks.
func (d Deadlines) For(method, path string) time.Duration {
	switch {
	case method == http.MethodGet && path == "/events":
		return 0
	case method == http.MethodPost && (path == "/images/create" || path == "/images/load" ||
		path == "/swarm/init" || path == "/swarm/join" || path == "/swarm/leave"):
		return d.Long
	case method == http.MethodGet || method == http.MethodHead:
		return d.Read
	default:
		return d.Write
	}
}

// CallDeadlineError is a call the engine did not answer within its
// deadline. It unwraps to context.DeadlineExceeded.
type CallDeadlineError struct {
	Host   string
	Method string
	Path   string
	After  time.Duration
}

func (e *CallDeadlineError) Error() string {
	return fmt.Sprintf("docker engine at %s did not answer %s %s within its deadline of %s", e.Host, e.Method, e.Path, e.After)
}

func (e *CallDeadlineError) Unwrap() error { return context.DeadlineExceeded }

// Timeout marks it as a timeout for net.Error-minded callers.
func (e *CallDeadlineError) Timeout() bool { return true }

// IsCallDeadline reports whether err is, or wraps, a call that ran out of
// its own deadline (not the caller's context).
func IsCallDeadline(err error) bool {
	var d *CallDeadlineError
	return errors.As(err, &d)
}

// deadlineTransport puts every request under its deadline: the one place
// all Engine API calls pass, version negotiation included, so no method
// can forget it.
type deadlineTransport struct {
	host string
	base http.RoundTripper
	d    Deadlines
}

func (t *deadlineTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	path := dockerPath(req.URL.Path)
	after := t.d.For(req.Method, path)
	if after <= 0 {
		return t.base.RoundTrip(req)
	}
	parent := req.Context()
	ctx, cancel := context.WithTimeout(parent, after)
	late := func(err error) error {
		if err != nil && parent.Err() == nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return &CallDeadlineError{Host: t.host, Method: req.Method, Path: path, After: after}
		}
		return err
	}
	resp, err := t.base.RoundTrip(req.WithContext(ctx))
	if err != nil {
		cancel()
		return nil, late(err)
	}
	resp.Body = &deadlineBody{ReadCloser: resp.Body, cancel: cancel, late: late}
	return resp, nil
}

// deadlineBody keeps the call's deadline running while the caller reads
// the answer, and releases it when the caller closes it.
type deadlineBody struct {
	io.ReadCloser
	cancel context.CancelFunc
	late   func(error) error
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = b.late(err)
	}
	return n, err
}

func (b *deadlineBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// dockerPath strips the API version prefix ("/v1.41/nodes" is "/nodes").
func dockerPath(p string) string {
	if strings.HasPrefix(p, "/v") {
		if i := strings.IndexByte(p[1:], '/'); i >= 0 {
			rest := p[1+i:]
			if _, err := fmt.Sscanf(p[2:1+i], "%f", new(float64)); err == nil {
				return rest
			}
		}
	}
	return p
}

// newTransport is the HTTP transport to one engine endpoint ("unix:///path"
// or "tcp://host:port"), with the Docker client's own idle settings.
func newTransport(proto, addr string) (*http.Transport, error) {
	var network string
	switch proto {
	case "unix":
		network = "unix"
	case "tcp":
		network = "tcp"
	default:
		return nil, fmt.Errorf("docker endpoint scheme %q: use unix:// or tcp://", proto)
	}
	tr := &http.Transport{
		MaxIdleConns:       6,
		IdleConnTimeout:    30 * time.Second,
		DisableCompression: network == "unix",
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	return tr, nil
}
