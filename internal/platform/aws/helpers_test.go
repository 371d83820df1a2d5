package aws

import (
	"bytes"
	"context"
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

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

const testRegion = "us-east-1"

// fastRetry keeps the real backoff logic but with short waits.
var fastRetry = RetryConfig{MaxAttempts: 6, BaseDelay: 5 * time.Millisecond, MaxDelay: 40 * time.Millisecond}

// testConfig is the SDK configuration of the tests: static test
// credentials (moto checks no signature) and one endpoint for every service.
func testConfig(endpoint string) awsv2.Config {
	return awsv2.Config{
		Region:       testRegion,
		Credentials:  credentials.NewStaticCredentialsProvider("testing", "testing", ""),
		BaseEndpoint: awsv2.String(endpoint),
	}
}

// testClients starts moto behind a proxy the test controls and returns
// clients that reach moto through the proxy.
func testClients(t *testing.T, m *Metrics) (*Clients, *awsProxy) {
	t.Helper()
	p := newProxy(t, testenv.StartMoto(t))
	return NewClients(testConfig(p.URL), Config{Retry: fastRetry}, m), p
}

// fault is a canned answer the proxy gives instead of forwarding.
type fault struct {
	status      int
	contentType string
	header      map[string]string
	body        string
}

// awsProxy is a loopback HTTP proxy in front of moto: it counts the calls
// that reach the wire, by API action, and answers with a fault when the
// test's fault function returns one.
type awsProxy struct {
	URL    string
	target string
	mu     sync.Mutex
	calls  map[string]int
	faultf func(call) *fault
}

// call is one request as the proxy sees it.
type call struct {
	Service string // autoscaling, ec2, ssm (from the signature's scope)
	Action  string // DescribeAutoScalingGroups, PutParameter, ...
	Body    []byte
}

func newProxy(t *testing.T, target string) *awsProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &awsProxy{target: target, calls: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		c := call{Service: serviceOf(r), Action: actionOf(r, body), Body: body}
		p.mu.Lock()
		p.calls[c.Action]++
		f := p.faultf
		p.mu.Unlock()
		if f != nil {
			if ft := f(c); ft != nil {
				for k, v := range ft.header {
					w.Header().Set(k, v)
				}
				w.Header().Set("Content-Type", ft.contentType)
				w.WriteHeader(ft.status)
				_, _ = io.WriteString(w, ft.body)
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// Calls is how many requests for action reached the proxy.
func (p *awsProxy) Calls(action string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[action]
}

// Reset forgets the counts.
func (p *awsProxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = map[string]int{}
}

// SetFault installs f (nil: forward everything).
func (p *awsProxy) SetFault(f func(call) *fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faultf = f
}

func serviceOf(r *http.Request) string {
	// Authorization: AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/ssm/aws4_request, ...
	auth := r.Header.Get("Authorization")
	if i := strings.Index(auth, "Credential="); i >= 0 {
		parts := strings.Split(strings.SplitN(auth[i+len("Credential="):], ",", 2)[0], "/")
		if len(parts) >= 4 {
			return parts[3]
		}
	}
	return ""
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

// formValue is a field of a query-protocol request body.
func formValue(body []byte, key string) string {
	v, err := url.ParseQuery(string(body))
	if err != nil {
		return ""
	}
	return v.Get(key)
}

// apiError is the error AWS answers for c's protocol with code and message.
func apiError(c call, code, message string) *fault {
	switch c.Service {
	case "ssm":
		return &fault{
			status:      http.StatusBadRequest,
			contentType: "application/x-amz-json-1.1",
			header:      map[string]string{"X-Amzn-ErrorType": code},
			body:        fmt.Sprintf(`{"__type":%q,"message":%q}`, code, message),
		}
	case "ec2":
		return &fault{
			status:      http.StatusBadRequest,
			contentType: "text/xml",
			body:        fmt.Sprintf(`<Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>req-fault</RequestID></Response>`, code, message),
		}
	default:
		return &fault{
			status:      http.StatusBadRequest,
			contentType: "text/xml",
			body: fmt.Sprintf(`<ErrorResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>req-fault</RequestId></ErrorResponse>`,
				code, message),
		}
	}
}

// firstN answers the first n calls of action with an error code, then
// forwards.
func firstN(action string, n int, code string) func(call) *fault {
	var mu sync.Mutex
	left := n
	return func(c call) *fault {
		if c.Action != action {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		if left == 0 {
			return nil
		}
		left--
		return apiError(c, code, "Rate exceeded")
	}
}

// fixture creates, in moto, a launch template and Auto Scaling Groups
// tagged for a cluster, as the provider will.
type fixture struct {
	t        *testing.T
	c        *Clients
	cluster  string
	template string
}

func newFixture(t *testing.T, c *Clients, cluster string) *fixture {
	t.Helper()
	ctx := context.Background()
	imgs, err := c.EC2.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"amazon"}})
	if err != nil || len(imgs.Images) == 0 {
		t.Fatalf("moto has no images to launch from: %v", err)
	}
	name := cluster + "-workers"
	_, err = c.EC2.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: awsv2.String(name),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{
			ImageId:      imgs.Images[0].ImageId,
			InstanceType: ec2types.InstanceTypeT3Micro,
		},
	})
	if err != nil {
		t.Fatalf("create launch template: %v", err)
	}
	return &fixture{t: t, c: c, cluster: cluster, template: name}
}

// group creates one Auto Scaling Group of the cluster.
func (f *fixture) group(name string, min, desired, max int32) {
	f.t.Helper()
	_, err := f.c.AutoScaling.CreateAutoScalingGroup(context.Background(), &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: awsv2.String(name),
		LaunchTemplate:       &astypes.LaunchTemplateSpecification{LaunchTemplateName: awsv2.String(f.template), Version: awsv2.String("$Latest")},
		MinSize:              awsv2.Int32(min),
		MaxSize:              awsv2.Int32(max),
		DesiredCapacity:      awsv2.Int32(desired),
		AvailabilityZones:    []string{testRegion + "a"},
		Tags: []astypes.Tag{
			{Key: awsv2.String(TagCluster), Value: awsv2.String(f.cluster), PropagateAtLaunch: awsv2.Bool(true)},
			{Key: awsv2.String(TagPool), Value: awsv2.String(name), PropagateAtLaunch: awsv2.Bool(true)},
		},
	})
	if err != nil {
		f.t.Fatalf("create Auto Scaling group %s: %v", name, err)
	}
}

// describe describes one group straight from moto.
func (f *fixture) describe(name string) astypes.AutoScalingGroup {
	f.t.Helper()
	out, err := f.c.AutoScaling.DescribeAutoScalingGroups(context.Background(), &autoscaling.DescribeAutoScalingGroupsInput{
		AutoScalingGroupNames: []string{name},
	})
	if err != nil || len(out.AutoScalingGroups) != 1 {
		f.t.Fatalf("describe %s: %v (%d groups)", name, err, len(out.AutoScalingGroups))
	}
	return out.AutoScalingGroups[0]
}

// ec2State is an instance's EC2 state in moto.
func (f *fixture) ec2State(id string) string {
	f.t.Helper()
	out, err := f.c.EC2.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		f.t.Fatalf("describe instance %s: %v", id, err)
	}
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			return string(in.State.Name)
		}
	}
	return ""
}
