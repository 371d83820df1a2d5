package testenv

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// AWSFault is a canned answer the proxy gives instead of forwarding.
type AWSFault struct {
	Status      int
	ContentType string
	Header      map[string]string
	Body        string
	// Delay holds the answer back; with Status 0 the call then goes on to
	// moto (a slow response rather than a fault).
	Delay time.Duration
	// Hang holds the request, unanswered, until the client gives up or the
	// test ends: an endpoint that accepted the connection and went silent.
	Hang bool
}

// AWSProxy is a loopback HTTP proxy in front of moto: it counts the calls
// that reach the wire, by API action, and answers with a fault when the
// test's fault function returns one.
type AWSProxy struct {
	URL    string
	target string
	mu     sync.Mutex
	calls  map[string]int
	faultf func(AWSCall) *AWSFault
	closed chan struct{} // closed when the test ends: hung calls let go

	// rewritef changes moto's answers (SetRewrite).
	rewritef func(AWSCall, []byte) []byte
}

// AWSCall is one request as the proxy sees it.
type AWSCall struct {
	Service string // autoscaling, ec2, ssm (from the signature's scope)
	Action  string // DescribeAutoScalingGroups, PutParameter, ...
	Body    []byte
	// AccessKey is the access key id that signed the request (from the
	// signature's scope), "" for an unsigned one such as STS
	// AssumeRoleWithWebIdentity: whose credentials a call was made with.
	AccessKey string
	// UserAgent is the request's User-Agent header: who says they called.
	UserAgent string
}

// NewAWSProxy starts the proxy in front of target (a moto endpoint).
func NewAWSProxy(t testing.TB, target string) *AWSProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &AWSProxy{target: target, calls: map[string]int{}, closed: make(chan struct{})}
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		c := AWSCall{Service: serviceOf(r), Action: actionOf(r, body), Body: body, AccessKey: scopeOf(r)[0], UserAgent: r.UserAgent()}
		p.mu.Lock()
		p.calls[c.Action]++
		f := p.faultf
		p.mu.Unlock()
		if f != nil {
			if ft := f(c); ft != nil && ft.Hang {
				select {
				case <-r.Context().Done():
				case <-p.closed:
					panic(http.ErrAbortHandler) // drop the connection
				}
				return
			} else if ft != nil && ft.Status == 0 {
				time.Sleep(ft.Delay)
			} else if ft != nil {
				time.Sleep(ft.Delay)
				for k, v := range ft.Header {
					w.Header().Set(k, v)
				}
				w.Header().Set("Content-Type", ft.ContentType)
				w.WriteHeader(ft.Status)
				_, _ = io.WriteString(w, ft.Body)
				return
			}
		}
		if rw := p.rewriter(); rw != nil {
			rewrite(w, r, c, rp, rw)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(p.closed) }) // before srv.Close, which waits for handlers
	p.URL = srv.URL
	return p
}

// Calls is how many requests for action reached the proxy.
func (p *AWSProxy) Calls(action string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[action]
}

// Reset forgets the counts.
func (p *AWSProxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = map[string]int{}
}

// SetFault installs f (nil: forward everything).
func (p *AWSProxy) SetFault(f func(AWSCall) *AWSFault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faultf = f
}

func serviceOf(r *http.Request) string {
	return scopeOf(r)[3]
}

// scopeOf is the signature's credential scope: access key id, date,
// region, service, terminator ("" each when the request is unsigned).
func scopeOf(r *http.Request) [5]string {
	// Authorization: AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/ssm/aws4_request, ...
	var scope [5]string
	auth := r.Header.Get("Authorization")
	if i := strings.Index(auth, "Credential="); i >= 0 {
		parts := strings.Split(strings.SplitN(auth[i+len("Credential="):], ",", 2)[0], "/")
		if len(parts) >= 4 {
			copy(scope[:], parts)
		}
	}
	return scope
}

func actionOf(r *http.Request, body []byte) string {
	if t := r.Header.Get("X-Amz-Target"); t != "" { // JSON protocols (SSM)
		return t[strings.LastIndexByte(t, '.')+1:]
	}
	if v, err := url.ParseQuery(string(body)); err == nil { // query protocols
		return v.Get("Action")
	}
	return ""
}

// AWSFormValue is a field of a query-protocol request body.
func AWSFormValue(body []byte, key string) string {
	v, err := url.ParseQuery(string(body))
	if err != nil {
		return ""
	}
	return v.Get(key)
}

// AWSAPIError is the error AWS answers for c's protocol with code and message.
func AWSAPIError(c AWSCall, code, message string) *AWSFault {
	switch c.Service {
	case "ssm":
		return &AWSFault{
			Status:      http.StatusBadRequest,
			ContentType: "application/x-amz-json-1.1",
			Header:      map[string]string{"X-Amzn-ErrorType": code},
			Body:        fmt.Sprintf(`{"__type":%q,"message":%q}`, code, message),
		}
	case "ec2":
		return &AWSFault{
			Status:      http.StatusBadRequest,
			ContentType: "text/xml",
			Body:        fmt.Sprintf(`<Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>req-fault</RequestID></Response>`, code, message),
		}
	default:
		return &AWSFault{
			Status:      http.StatusBadRequest,
			ContentType: "text/xml",
			Body: fmt.Sprintf(`<ErrorResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>req-fault</RequestId></ErrorResponse>`,
				code, message),
		}
	}
}

// CallCounts is a copy of the counts by action.
func (p *AWSProxy) CallCounts() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.calls))
	for k, v := range p.calls {
		out[k] = v
	}
	return out
}

// NoRefreshes answers DescribeInstanceRefreshes, which moto does not
// implement, with AWS's answer for a group without any refresh; every
// other call goes on to moto (or to next, when it answers).
func NoRefreshes(next func(AWSCall) *AWSFault) func(AWSCall) *AWSFault {
	return func(c AWSCall) *AWSFault {
		if c.Action == "DescribeInstanceRefreshes" {
			return &AWSFault{Status: http.StatusOK, ContentType: "text/xml",
				Body: `<DescribeInstanceRefreshesResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><DescribeInstanceRefreshesResult><InstanceRefreshes></InstanceRefreshes></DescribeInstanceRefreshesResult><ResponseMetadata><RequestId>req-refreshes</RequestId></ResponseMetadata></DescribeInstanceRefreshesResponse>`}
		}
		if next != nil {
			return next(c)
		}
		return nil
	}
}

// SetRewrite installs f, which may change the body of moto's answer to
// every call that reaches it (nil: answers go back as moto gave them). A
// test uses it for answers that are moto's with a difference: a describe
// that shows an old desired capacity (an eventually consistent read), or
// an instance that never leaves Pending.
func (p *AWSProxy) SetRewrite(f func(c AWSCall, body []byte) []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rewritef = f
}

func (p *AWSProxy) rewriter() func(AWSCall, []byte) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rewritef
}

// rewrite forwards r to moto, then answers with f applied to moto's body.
func rewrite(w http.ResponseWriter, r *http.Request, c AWSCall, rp http.Handler, f func(AWSCall, []byte) []byte) {
	rec := httptest.NewRecorder()
	rp.ServeHTTP(rec, r)
	body := f(c, rec.Body.Bytes())
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.Header().Del("Content-Length")
	w.WriteHeader(rec.Code)
	_, _ = w.Write(body)
}
