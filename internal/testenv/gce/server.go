package gce

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Options tune the fake's timing.
type Options struct {
	// CreateDelay is how long a new VM stays PROVISIONING (currentAction
	// CREATING) before it is RUNNING (NONE). Default 200 ms.
	CreateDelay time.Duration
	// DeleteDelay is how long a VM being deleted stays STOPPING (DELETING)
	// before it is gone. Default 200 ms.
	DeleteDelay time.Duration
	// Tick is how often the groups reconcile. Default 20 ms.
	Tick time.Duration
}

// Server is a running fake Compute Engine service.
type Server struct {
	// URL is the endpoint to give the REST clients
	// (option.WithEndpoint(srv.URL), option.WithoutAuthentication()).
	URL string

	t    testing.TB
	doc  *apiDoc
	opts Options
	rnd  *rand.Rand
	// closed is closed when the test ends: held requests let go.
	closed chan struct{}

	mu         sync.Mutex
	calls      map[string]int
	log        []Call
	faultf     func(Call) *Fault
	quotaf     func(group, zone string) bool
	onInstance func(Event)
	events     []Event // to deliver once the lock is released
	badReply   func(methodID string, body []byte) []byte

	templates map[string]*template  // project/name
	groups    map[string]*group     // project/region/name
	vms       map[string]*vm        // project/zone/name
	ops       map[string]*operation // project/name
	pending   []*operation          // not DONE yet
	requests  map[string]*operation // project/requestId
	nextIP    int
}

// Call is one request as the fake received it.
type Call struct {
	// Method is the discovery method id: "compute.regionInstanceGroupManagers.resize".
	Method string
	// HTTPMethod and Path ("/compute/v1/projects/...") as sent.
	HTTPMethod string
	Path       string
	Query      url.Values
	Body       []byte
}

// Fault is what the test's fault function makes of a call.
type Fault struct {
	// Status is the HTTP status of the error answered instead (0: none);
	// Reason and Message fill Google's error body (RateLimited and
	// BackendError fill them as Google does).
	Status  int
	Reason  string
	Domain  string
	Message string
	// AfterAction answers the error after the call has acted, as when a
	// response is lost on its way back: the client retries, and its
	// requestId decides whether the action happens twice.
	AfterAction bool
	// Delay holds the answer back (with or without an error); a client
	// that gives up, or the test's end, cuts it short.
	Delay time.Duration
	// Hang holds the request unanswered until the client gives up or the
	// test ends (the connection is then dropped): an endpoint that
	// accepted the connection and went silent.
	Hang bool
	// OperationRunning keeps the call's operation RUNNING this long, the
	// action scheduled only at its end: a slow operation.
	OperationRunning time.Duration
}

// RateLimited is Google's 429 rateLimitExceeded.
func RateLimited() *Fault {
	return &Fault{Status: http.StatusTooManyRequests, Reason: "rateLimitExceeded", Domain: "usageLimits",
		Message: "Rate Limit Exceeded"}
}

// BackendError is Google's 503 backendError.
func BackendError() *Fault {
	return &Fault{Status: http.StatusServiceUnavailable, Reason: "backendError",
		Message: "Internal error. Please try again or contact Google Support."}
}

// Start starts a fake Compute Engine service on a free loopback port,
// stopped when the test ends. A response the fake would give that does not
// match the discovery document fails t.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	doc, err := loadDoc()
	if err != nil {
		t.Fatal(err)
	}
	if opts.CreateDelay == 0 {
		opts.CreateDelay = 200 * time.Millisecond
	}
	if opts.DeleteDelay == 0 {
		opts.DeleteDelay = 200 * time.Millisecond
	}
	if opts.Tick == 0 {
		opts.Tick = 20 * time.Millisecond
	}
	s := &Server{
		t: t, doc: doc, opts: opts,
		rnd:       rand.New(rand.NewSource(time.Now().UnixNano())),
		closed:    make(chan struct{}),
		calls:     map[string]int{},
		templates: map[string]*template{},
		groups:    map[string]*group{},
		vms:       map[string]*vm{},
		ops:       map[string]*operation{},
		requests:  map[string]*operation{},
		nextIP:    2,
	}
	srv := httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	s.URL = srv.URL
	stop := make(chan struct{})
	done := make(chan struct{})
	go s.reconcileLoop(stop, done)
	t.Cleanup(func() {
		close(stop)
		<-done
		close(s.closed) // before srv.Close, which waits for handlers
		srv.Close()
	})
	return s
}

// SetFault installs f, asked about every call that passed validation
// (nil: no faults). f is called from the server's request goroutines,
// possibly at the same time.
func (s *Server) SetFault(f func(Call) *Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faultf = f
}

// SetQuotaFault installs f, asked before the fake creates a VM for group in
// zone: while it answers true, the creation fails as on an exhausted
// quota (the managed instance stays CREATING without a VM, its
// lastAttempt.errors holding QUOTA_EXCEEDED) and is retried.
func (s *Server) SetQuotaFault(f func(group, zone string) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.quotaf = f
}

// OnInstance installs f, called (outside the fake's lock, from the
// reconciling goroutine or a request's) for each VM event.
func (s *Server) OnInstance(f func(Event)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onInstance = f
}

// Calls is how many requests of method (a discovery id) the fake received.
func (s *Server) Calls(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method]
}

// CallCounts is a copy of the counts by method id.
func (s *Server) CallCounts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.calls))
	for k, v := range s.calls {
		out[k] = v
	}
	return out
}

// Requests are the calls of method received so far (every call when
// method is "").
func (s *Server) Requests(method string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for _, c := range s.log {
		if method == "" || c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// Reset forgets the counts and the request log.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = map[string]int{}
	s.log = nil
}

const servicePrefix = "/compute/v1/"

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		s.writeError(w, &apiError{Code: http.StatusBadRequest, Reason: "badRequest", Message: err.Error()})
		return
	}
	if !strings.HasPrefix(r.URL.Path, servicePrefix) {
		s.countCall(Call{Method: "unknown", HTTPMethod: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Body: body})
		s.writeError(w, &apiError{Code: http.StatusNotFound, Reason: "notFound",
			Message: fmt.Sprintf("The requested URL %s was not found on this server.", r.URL.Path)})
		return
	}
	m, pathVals, aerr := s.doc.route(r.Method, strings.TrimPrefix(r.URL.EscapedPath(), servicePrefix))
	c := Call{Method: "unknown", HTTPMethod: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Body: body}
	if m != nil {
		c.Method = m.ID
	}
	s.countCall(c)
	if aerr != nil {
		s.writeError(w, aerr)
		return
	}
	if aerr := s.doc.checkParams(m, pathVals, c.Query); aerr != nil {
		s.writeError(w, aerr)
		return
	}
	reqBody, aerr := s.doc.checkRequestBody(m, body)
	if aerr != nil {
		s.writeError(w, aerr)
		return
	}
	h := handlers[m.ID]
	if h == nil {
		s.t.Errorf("gce fake: %s %s: the fake does not model %s", r.Method, r.URL.Path, m.ID)
		s.writeError(w, &apiError{Code: http.StatusNotImplemented, Reason: "notImplemented",
			Message: fmt.Sprintf("the gce fake does not model %s", m.ID)})
		return
	}
	if _, ok := c.Query["fields"]; ok {
		s.writeError(w, s.notModeled("partial responses (the fields parameter)"))
		return
	}
	if rid := c.Query.Get("requestId"); rid != "" && !uuidRE.MatchString(rid) || rid == "00000000-0000-0000-0000-000000000000" {
		s.writeError(w, badRequest("invalid", "Invalid value for field 'requestId': '%s'. The request ID must be a valid UUID other than the zero UUID.", rid))
		return
	}

	s.mu.Lock()
	f := s.faultf
	s.mu.Unlock()
	var ft *Fault
	if f != nil {
		ft = f(c)
	}
	if ft != nil && ft.Hang {
		select {
		case <-r.Context().Done():
			return
		case <-s.closed:
			panic(http.ErrAbortHandler) // drop the connection
		}
	}
	if ft != nil && ft.Delay > 0 {
		select {
		case <-time.After(ft.Delay):
		case <-r.Context().Done():
			return
		case <-s.closed:
			panic(http.ErrAbortHandler)
		}
	}
	if ft != nil && ft.Status != 0 && !ft.AfterAction {
		s.writeError(w, faultError(ft))
		return
	}
	req := &request{Call: c, m: m, path: pathVals, body: reqBody, project: pathVals["project"], ctx: r}
	if ft != nil {
		req.opDelay = ft.OperationRunning
	}
	var resp any
	if waiter, ok := waitHandlers[m.ID]; ok {
		resp, aerr = waiter(s, req)
	} else {
		s.mu.Lock()
		resp, aerr = s.dedup(req, h)
		events := s.takeEvents()
		s.mu.Unlock()
		s.deliver(events)
	}
	if aerr != nil {
		s.writeError(w, aerr)
		return
	}
	if ft != nil && ft.Status != 0 {
		s.writeError(w, faultError(ft))
		return
	}
	out, err := json.Marshal(resp)
	if err != nil {
		s.t.Errorf("gce fake: %s: encoding the response: %v", m.ID, err)
		s.writeError(w, &apiError{Code: 500, Reason: "backendError", Message: "gce fake: " + err.Error()})
		return
	}
	s.mu.Lock()
	bad := s.badReply
	s.mu.Unlock()
	if bad != nil {
		out = bad(m.ID, out)
	}
	if err := s.doc.checkResponse(m, out); err != nil {
		s.t.Errorf("gce fake: a bug of the fake: its answer does not match the discovery document: %v", err)
		s.writeError(w, &apiError{Code: 500, Reason: "backendError",
			Message: "gce fake: its answer does not match the discovery document: " + err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	_, _ = w.Write(out)
}

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// dedup runs h, or answers a mutating call repeated with a requestId
// already seen with that first call's operation, as it is now.
func (s *Server) dedup(req *request, h handler) (any, *apiError) {
	rid := req.Query.Get("requestId")
	if rid != "" {
		if op := s.requests[req.project+"/"+rid]; op != nil {
			return op.json(), nil
		}
	}
	resp, aerr := h(s, req)
	if aerr == nil && rid != "" {
		if op, ok := resp.(*operation); ok {
			s.requests[req.project+"/"+rid] = op
		}
	}
	if op, ok := resp.(*operation); ok {
		return op.json(), aerr
	}
	return resp, aerr
}

func faultError(ft *Fault) *apiError {
	e := &apiError{Code: ft.Status, Reason: ft.Reason, Domain: ft.Domain, Message: ft.Message}
	if e.Reason == "" {
		e.Reason = "backendError"
	}
	if e.Message == "" {
		e.Message = http.StatusText(ft.Status)
	}
	return e
}

func (s *Server) countCall(c Call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[c.Method]++
	s.log = append(s.log, c)
}

func (s *Server) writeError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(e.Code)
	_, _ = w.Write(e.body())
}

// request is a validated call on its way to its handler.
type request struct {
	Call
	m       *method
	path    map[string]string
	body    map[string]any
	project string
	opDelay time.Duration
	ctx     *http.Request
}

// handler acts on a validated request under s.mu; a mutating one returns
// its *operation.
type handler func(s *Server, r *request) (any, *apiError)

func (s *Server) reconcileLoop(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	tk := time.NewTicker(s.opts.Tick)
	defer tk.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tk.C:
			s.mu.Lock()
			s.step(time.Now())
			events := s.takeEvents()
			s.mu.Unlock()
			s.deliver(events)
		}
	}
}

func (s *Server) takeEvents() []Event {
	ev := s.events
	s.events = nil
	if s.onInstance == nil {
		return nil
	}
	return ev
}

func (s *Server) deliver(events []Event) {
	if len(events) == 0 {
		return
	}
	s.mu.Lock()
	f := s.onInstance
	s.mu.Unlock()
	for _, e := range events {
		f(e)
	}
}
