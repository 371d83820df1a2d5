package testenv

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// StartMoto starts a moto server (PyPI moto[server], a real emulator of
// the AWS APIs, not a mock of ours) on a free loopback port and returns its
// endpoint URL, http://127.0.0.1:port. Every AWS service answers on that one
// endpoint, told apart by the signature's credential scope. The server
// starts empty and is stopped when the test ends. The test fails, naming
// the setup command, when moto_server is not installed. EnforceIAM makes
// it check every call's signature and IAM policy.
func StartMoto(t testing.TB, opts ...MotoOption) string {
	t.Helper()
	var o motoOptions
	for _, opt := range opts {
		opt(&o)
	}
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		t.Fatalf("moto_server is not installed: run `%s` (it installs moto[server] from PyPI)", Setup)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	url := "http://127.0.0.1:" + strconv.Itoa(port)

	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	if o.iam != nil {
		cmd.Env = append(os.Environ(), "INITIAL_NO_AUTH_ACTION_COUNT="+strconv.Itoa(o.iam.unauthenticatedCalls()))
	}
	// The moto API answers without a signature once the server serves.
	StartServer(t, "moto_server", cmd, url+"/moto-api/data.json", 60*time.Second)
	if o.iam != nil {
		o.iam.createUsers(t, url)
	}
	return url
}

// StartServer starts cmd, a server, in its own process group (the binary
// may be a launcher, such as a pyenv shim, in front of the real process:
// stopping the group stops both), waits until ready answers 200 within
// wait, and stops it when the test ends (SIGTERM, then SIGKILL after 10s).
// The test fails, with the server's output, when it exits or is not ready
// in time; its output is logged too when the test failed.
func StartServer(t testing.TB, name string, cmd *exec.Cmd, ready string, wait time.Duration) {
	t.Helper()
	var out LockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			t.Logf("%s:\n%s", name, out.String())
		}
	})
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			t.Fatalf("%s exited before it was ready:\n%s", name, out.String())
		default:
		}
		if resp, err := client.Get(ready); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s was not ready at %s within %s:\n%s", name, ready, wait, out.String())
}

// LockedBuffer collects a process's output while it runs, safe for one
// writer and readers at once; it keeps the first MiB.
type LockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 1<<20 { // keep the head; a failure message needs no more
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// MotoNetwork creates, in the moto at endpoint, what a user brings to an
// AWS cluster: a VPC with one subnet and a security group. It returns an
// AMI moto can launch, the subnet and the security group. It signs with
// as (in a moto that enforces IAM, a user allowed to), else with test
// credentials.
func MotoNetwork(t testing.TB, endpoint string, as ...*IAMUser) (ami, subnet, securityGroup string) {
	t.Helper()
	ctx := context.Background()
	creds := awsv2.CredentialsProvider(credentials.NewStaticCredentialsProvider("testing", "testing", ""))
	if len(as) > 0 {
		creds = as[0].Credentials()
	}
	c := ec2.NewFromConfig(awsv2.Config{
		Region:       MotoRegion,
		Credentials:  creds,
		BaseEndpoint: awsv2.String(endpoint),
	})
	imgs, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"amazon"}})
	if err != nil || len(imgs.Images) == 0 {
		t.Fatalf("moto has no images to launch from: %v", err)
	}
	for _, im := range imgs.Images {
		if id := awsv2.ToString(im.ImageId); policy.ValidateAMI(id) == nil {
			ami = id
			break
		}
	}
	if ami == "" {
		t.Fatalf("moto has no image with an ami-<hex> id")
	}
	vpc, err := c.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: awsv2.String("10.0.0.0/16")})
	if err != nil {
		t.Fatalf("create VPC in moto: %v", err)
	}
	sn, err := c.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: vpc.Vpc.VpcId, CidrBlock: awsv2.String("10.0.1.0/24"),
		AvailabilityZone: awsv2.String(MotoRegion + "a")})
	if err != nil {
		t.Fatalf("create subnet in moto: %v", err)
	}
	sg, err := c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{VpcId: vpc.Vpc.VpcId,
		GroupName: awsv2.String("swarm"), Description: awsv2.String("swarm nodes")})
	if err != nil {
		t.Fatalf("create security group in moto: %v", err)
	}
	return ami, awsv2.ToString(sn.Subnet.SubnetId), awsv2.ToString(sg.GroupId)
}

// MotoRegion is the region tests use with moto.
const MotoRegion = "us-east-1"
