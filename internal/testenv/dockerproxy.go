// DockerProxy (this file) is a fault-injecting proxy in front of a real
// dockerd's Engine API, for tests of code that talks to Swarm managers.
// What it injects, and nothing more: on the calls a test's fault function
// chooses, a canned answer instead of the engine's (typically a 500 with the
// Engine API's JSON error shape {"message":"..."}), or a hang (the request is
// held until the client gives up, the test calls Release, or the test ends).
// Every other request — including the API version negotiation (GET and
// HEAD /_ping), streaming responses such as GET /events, and connection
// upgrades — goes to the real engine unchanged, and its answer comes back
// unchanged, flushed as it arrives.
package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// DockerCall is one Engine API request as the proxy sees it.
type DockerCall struct {
	Method string // GET, HEAD, POST, DELETE, ...
	// Path is the request path without the API version prefix:
	// "/v1.41/nodes/abc/update" is "/nodes/abc/update".
	Path  string
	Query string // the raw query, without "?"
}

// DockerFault is what the proxy does instead of forwarding a call.
type DockerFault struct {
	// Status and Body are a canned answer (Content-Type application/json).
	// An empty Body is sent as {"message":"injected fault"}.
	Status int
	Body   string
	// Hang holds the request until the client gives up, Release is called
	// or the test ends. A released call then gets the canned answer when
	// Status is set, and otherwise goes on to the engine (a slow call).
	Hang bool
}

// DockerError is a canned answer in the Engine API's error shape; the Docker
// client reports it as "Error response from daemon: <message>".
func DockerError(status int, message string) *DockerFault {
	b, _ := json.Marshal(struct {
		Message string `json:"message"`
	}{message})
	return &DockerFault{Status: status, Body: string(b)}
}

// DockerProxy is a unix-socket HTTP proxy in front of a real engine: it
// records every call that reaches it and answers with a fault when the
// test's fault function returns one.
type DockerProxy struct {
	// Host is the proxy's endpoint ("unix:///tmp/.../docker.sock"), for
	// swarm.Dial or DOCKER_HOST.
	Host string

	mu      sync.Mutex
	calls   []DockerCall
	faultf  func(DockerCall) *DockerFault
	release chan struct{} // closed by Release; a new one replaces it
	closed  chan struct{} // closed when the test ends
	running sync.WaitGroup
	bytes   atomic.Int64 // engine response body bytes passed on
}

var apiVersionPrefix = regexp.MustCompile(`^/v[0-9]+(\.[0-9]+)?(/|$)`)

// dockerCallPath strips the API version prefix of an Engine API path.
func dockerCallPath(p string) string {
	if m := apiVersionPrefix.FindString(p); m != "" {
		p = "/" + strings.TrimPrefix(p[len(m):], "/")
	}
	return p
}

// NewDockerProxy starts a proxy in front of target, a real engine's endpoint
// ("unix:///path/docker.sock", or "tcp://host:port"). It stops when the test
// ends, releasing every held call.
func NewDockerProxy(t testing.TB, target string) *DockerProxy {
	t.Helper()
	network, addr, err := dockerEndpoint(target)
	if err != nil {
		t.Fatal(err)
	}
	// Not t.TempDir: its path can exceed the 108 bytes of a unix socket path.
	dir, err := os.MkdirTemp("/tmp", "akdp")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "docker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		_ = os.RemoveAll(dir)
		t.Fatal(err)
	}
	p := &DockerProxy{Host: "unix://" + sock, release: make(chan struct{}), closed: make(chan struct{})}
	transport := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
		MaxIdleConnsPerHost: 8,
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme = "http"
			r.Out.URL.Host = "docker"
			r.Out.Host = r.In.Host
		},
		Transport:     transport,
		FlushInterval: -1, // streams (events, logs) reach the client as they come
		ModifyResponse: func(r *http.Response) error {
			if r.StatusCode != http.StatusSwitchingProtocols { // an upgraded body must stay writable
				r.Body = &countingBody{r.Body, &p.bytes}
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return // the client gave up; nobody reads the answer
			}
			writeDockerFault(w, DockerError(http.StatusBadGateway, "test proxy: engine at "+target+": "+err.Error()))
		},
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.running.Add(1)
		defer p.running.Done()
		c := DockerCall{Method: r.Method, Path: dockerCallPath(r.URL.Path), Query: r.URL.RawQuery}
		p.mu.Lock()
		p.calls = append(p.calls, c)
		f := p.faultf
		release := p.release
		p.mu.Unlock()
		var ft *DockerFault
		if f != nil {
			ft = f(c)
		}
		if ft != nil && ft.Hang {
			select {
			case <-r.Context().Done():
				return
			case <-p.closed:
				panic(http.ErrAbortHandler) // drop the connection, as a dead engine would
			case <-release:
			}
		}
		if ft != nil && ft.Status != 0 {
			writeDockerFault(w, ft)
			return
		}
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		close(p.closed)
		_ = srv.Close()
		transport.CloseIdleConnections()
		done := make(chan struct{})
		go func() { p.running.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Logf("docker proxy %s: calls still running after 5s", p.Host)
		}
		_ = os.RemoveAll(dir)
	})
	return p
}

func dockerEndpoint(target string) (network, addr string, err error) {
	u, err := url.Parse(target)
	if err != nil {
		return "", "", fmt.Errorf("docker proxy target %q: %w", target, err)
	}
	switch u.Scheme {
	case "unix":
		return "unix", u.Path, nil
	case "tcp":
		return "tcp", u.Host, nil
	}
	return "", "", fmt.Errorf("docker proxy target %q: want unix:///path or tcp://host:port", target)
}

func writeDockerFault(w http.ResponseWriter, ft *DockerFault) {
	body := ft.Body
	if body == "" {
		body = `{"message":"injected fault"}`
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(ft.Status)
	_, _ = w.Write([]byte(body))
}

// Fault installs f, asked about every call before it is forwarded; a nil
// answer forwards the call. Fault(nil) forwards everything.
func (p *DockerProxy) Fault(f func(DockerCall) *DockerFault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faultf = f
}

// Release lets every call held by a Hang fault go on (see DockerFault.Hang).
// Calls that arrive later are held again while the fault says Hang.
func (p *DockerProxy) Release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	close(p.release)
	p.release = make(chan struct{})
}

// Calls is how many calls with method ("" = any) and a path starting with
// pathPrefix (version prefix stripped, "" = any) reached the proxy, faulted
// or not, since it started or since Reset.
func (p *DockerProxy) Calls(method, pathPrefix string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.calls {
		if (method == "" || c.Method == method) && strings.HasPrefix(c.Path, pathPrefix) {
			n++
		}
	}
	return n
}

// Bytes is how many bytes of response bodies the engine sent through the
// proxy (canned faults not counted) since it started or since Reset: what
// a client of the Engine API reads off the wire, before any decoding.
func (p *DockerProxy) Bytes() int64 { return p.bytes.Load() }

// Reset forgets the calls and bytes counted so far; the fault function
// stays.
func (p *DockerProxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = nil
	p.bytes.Store(0)
}

// countingBody adds what is read through it to n.
type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c *countingBody) Read(b []byte) (int, error) {
	k, err := c.ReadCloser.Read(b)
	c.n.Add(int64(k))
	return k, err
}
