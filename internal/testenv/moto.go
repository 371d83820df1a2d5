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

	var out LockedBuffer
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = &out, &out
	if o.iam != nil {
		cmd.Env = append(os.Environ(), "INITIAL_NO_AUTH_ACTION_COUNT="+strconv.Itoa(o.iam.unauthenticatedCalls()))
	}
	// Its own process group: moto_server may be a launcher (a pyenv shim)
	// in front of python, and stopping the group stops both.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start moto_server: %v", err)
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
	})

	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			t.Fatalf("moto_server exited before it was ready:\n%s", out.String())
		default:
		}
		// The moto API answers without a signature once the server serves.
		if resp, err := client.Get(url + "/moto-api/data.json"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				if o.iam != nil {
					o.iam.createUsers(t, url)
				}
				return url
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("moto_server did not become ready on %s within 60s:\n%s", url, out.String())
	return ""
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
