package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

func TestVersionAndUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"autarky-agent", "version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "autarky-agent ") {
		t.Fatalf("version: code %d, out %q", code, out.String())
	}
	out.Reset()
	if code := run([]string{"autarky-agent"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "Usage: autarky-agent") {
		t.Fatalf("no command: code %d, stderr %q", code, errb.String())
	}
	errb.Reset()
	if code := run([]string{"autarky-agent", "frobnicate"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: code %d, stderr %q", code, errb.String())
	}
}

// Bad flags to `run` are refused before anything starts, naming the flag.
func TestRunRefusesBadFlags(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{}, "--cluster is required"},
		{[]string{"--cluster", "Bad_Name"}, "--cluster:"},
		{[]string{"--cluster", "c", "--platform", "azure"}, `--platform: platform "azure" is unknown`},
		{[]string{"--cluster", "c", "--platform", "gcp"}, "--bucket is required with --platform gcp"},
		{[]string{"--cluster", "c", "--platform", "gcp", "--bucket", "Bad Bucket"}, "--bucket:"},
		{[]string{"--cluster", "c", "--platform", "gcp", "--bucket", "b-1", "--state-dir", "/tmp"}, "--state-dir is not a setting of platform gcp"},
		{[]string{"--cluster", "c", "--platform", "aws", "--bucket", "b-1"}, "--bucket is not a setting of platform aws"},
		{[]string{"--cluster", "c", "--log-format", "xml"}, `--log-format "xml": use json or text`},
		{[]string{"--cluster", "c", "--evaluation-interval", "1ms"}, "--evaluation-interval:"},
		{[]string{"--cluster", "c", "--docker-host", "tcp://10.0.0.1:2375"}, "tcp:// without TLS is refused"},
		{[]string{"--cluster", "c", "--docker-host", "/var/run/docker.sock"}, "use unix:///path/to/docker.sock"},
		{[]string{"--cluster", "c", "--alert-token-file", "/nonexistent/token"}, "--alert-token-file:"},
		{[]string{"--cluster", "c", "--status-token-file", "/nonexistent/token"}, "--status-token-file:"},
		{[]string{"--cluster", "c", "--region", "eu-west-1"}, "--region is not a setting of platform local"},
		{[]string{"--cluster", "c", "--platform", "aws", "--region", "moon-1"}, `--region: "moon-1" is not an AWS region name`},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		code := run(append([]string{"autarky-agent", "run"}, c.args...), &out, &errb)
		if code == 0 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("run %q: code %d, stderr %q, want it to name %q", c.args, code, errb.String(), c.want)
		}
	}
}

// A bearer token holding a space could never match what Alertmanager
// sends ("Bearer <token>"): refused at start, naming the flag.
func TestRunRefusesTokenWithSpace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte("two words\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := run([]string{"autarky-agent", "run", "--cluster", "c", "--alert-token-file", path}, &out, &errb)
	if code == 0 || !strings.Contains(errb.String(), "--alert-token-file") || !strings.Contains(errb.String(), "space") {
		t.Fatalf("code %d, stderr %q", code, errb.String())
	}
}

// A token file that is empty, or holds two words, is refused naming the
// flag, for the agent's own tokens and for `status --token-file`; the
// token itself is never in the message.
func TestTokenFilesRefused(t *testing.T) {
	dir := t.TempDir()
	empty, spaced := filepath.Join(dir, "empty"), filepath.Join(dir, "spaced")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(spaced, []byte("s3cret0canary two\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--cluster", "c", "--status-token-file", empty}, "--status-token-file: " + empty + " is empty"},
		{[]string{"run", "--cluster", "c", "--alert-token-file", empty}, "--alert-token-file: " + empty + " is empty"},
		{[]string{"run", "--cluster", "c", "--status-token-file", spaced}, "--status-token-file " + spaced + ": the token holds a space"},
		{[]string{"status", "--token-file", "/nonexistent/token"}, "--token-file: open /nonexistent/token"},
		{[]string{"status", "--token-file", spaced}, "--token-file " + spaced + ": the token holds a space"},
	} {
		var out, errb bytes.Buffer
		code := run(append([]string{"autarky-agent"}, c.args...), &out, &errb)
		if code == 0 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%q: code %d, stderr %q, want it to say %q", c.args, code, errb.String(), c.want)
		}
		if strings.Contains(errb.String(), "s3cret0canary") {
			t.Errorf("%q: the error shows the token", c.args)
		}
	}
	t.Setenv("AUTARKY_STATUS_TOKEN", "two words")
	var out, errb bytes.Buffer
	if code := run([]string{"autarky-agent", "run", "--cluster", "c"}, &out, &errb); code == 0 || !strings.Contains(errb.String(), "$AUTARKY_STATUS_TOKEN: the token holds a space") {
		t.Errorf("$AUTARKY_STATUS_TOKEN with a space: code %d, stderr %q", code, errb.String())
	}
}

// `autarky-agent status` on an aws manager finds its agent, which listens
// on the private address, through the file the boot script writes; without
// the file (or with something else in it) it asks loopback.
func TestStatusAddressFromBootFile(t *testing.T) {
	dir := t.TempDir()
	loopback := "http://127.0.0.1:9910"
	for _, c := range []struct{ content, want string }{
		{"http://10.0.1.5:9910\n", "http://10.0.1.5:9910"},
		{"10.0.1.5:9910", loopback},
		{"", loopback},
	} {
		file := dir + "/agent-address"
		if err := os.WriteFile(file, []byte(c.content), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := defaultAgentAddress(file); got != c.want {
			t.Errorf("address file %q: got %s, want %s", c.content, got, c.want)
		}
	}
	if got := defaultAgentAddress(dir + "/missing"); got != loopback {
		t.Errorf("no address file: got %s, want %s", got, loopback)
	}
}

// run -h names the local platform's real state dir defaults (run.go names
// no platform, so it spells them out), and every registered platform.
func TestRunHelpNamesPlatforms(t *testing.T) {
	var out, errb bytes.Buffer
	run([]string{"autarky-agent", "run", "-h"}, &out, &errb)
	for _, want := range []string{"$" + policy.StateDirEnv, policy.DefaultStateDir} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("run -h does not name %q:\n%s", want, errb.String())
		}
	}
	if got := strings.Join(platform.Registered(), ","); got != "aws,gcp,local" {
		t.Errorf("registered platforms %s, want aws,gcp,local", got)
	}
}

// An agent built without a cloud (-tags nogcp) knows the others only and
// refuses the one it lacks by name.
func TestAgentBuiltWithoutGCP(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "autarky-agent")
	build := exec.Command("go", "build", "-tags", "nogcp", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -tags nogcp: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "run", "--cluster", "c", "--platform", "gcp", "--bucket", "b-1").CombinedOutput()
	if err == nil || !strings.Contains(string(out), `platform "gcp" is not one this binary has: aws, local`) {
		t.Errorf("the agent without gcp, asked for gcp: %v, %s", err, out)
	}
}
