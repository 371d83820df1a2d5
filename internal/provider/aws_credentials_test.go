package provider

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// stsRecorder sits between the provider and moto: it records whose
// access key signed each call, and which keys moto's STS handed out for
// which assumed role, so a test can tell that the platform's calls were
// made as the role and as nothing else.
type stsRecorder struct {
	*testenv.AWSProxy
	mu     sync.Mutex
	calls  []testenv.AWSCall
	issued map[string]session // by access key id
}

// session is what one STS answer granted.
type session struct {
	action, arn, secret string
}

var (
	xmlAccessKeyRE = regexp.MustCompile(`<AccessKeyId>([^<]+)</AccessKeyId>`)
	xmlSecretRE    = regexp.MustCompile(`<SecretAccessKey>([^<]+)</SecretAccessKey>`)
	xmlAssumedRE   = regexp.MustCompile(`<AssumedRoleUser>\s*<AssumedRoleId>[^<]*</AssumedRoleId>\s*<Arn>([^<]+)</Arn>|<AssumedRoleUser>\s*<Arn>([^<]+)</Arn>`)
)

func newSTSRecorder(t *testing.T, moto string) *stsRecorder {
	r := &stsRecorder{AWSProxy: testenv.NewAWSProxy(t, moto), issued: map[string]session{}}
	r.SetRewrite(func(c testenv.AWSCall, body []byte) []byte {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.calls = append(r.calls, c)
		if c.Action == "AssumeRole" || c.Action == "AssumeRoleWithWebIdentity" {
			key, secret, arn := xmlAccessKeyRE.FindSubmatch(body), xmlSecretRE.FindSubmatch(body), xmlAssumedRE.FindSubmatch(body)
			if key != nil && secret != nil && arn != nil {
				r.issued[string(key[1])] = session{action: c.Action, arn: string(arn[1]) + string(arn[2]), secret: string(secret[1])}
			}
		}
		return body
	})
	return r
}

// provider is the provider block with every endpoint, STS's included,
// at the recorder, no local block, and extra inside the aws block.
func (r *stsRecorder) provider(extra string) string {
	return fmt.Sprintf(`
provider "autarky" {
  aws {
    region    = %q
    endpoints = { ec2 = %[2]q, autoscaling = %[2]q, ssm = %[2]q, sts = %[2]q }
    %s
  }
}
`, testenv.MotoRegion, r.URL, extra)
}

// stsCalls are the STS calls made, in order.
func (r *stsRecorder) stsCalls() []testenv.AWSCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []testenv.AWSCall
	for _, c := range r.calls {
		if c.Action == "AssumeRole" || c.Action == "AssumeRoleWithWebIdentity" {
			out = append(out, c)
		}
	}
	return out
}

// madeAs checks that every EC2, Auto Scaling and SSM call was signed with
// a key STS issued for a session of role (assumed-role/<name>/<session>),
// and that there were such calls.
func (r *stsRecorder) madeAs(role string) resource.TestCheckFunc {
	return func(*terraform.State) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		n := 0
		var wrong []string
		for _, c := range r.calls {
			if c.Service != "ec2" && c.Service != "autoscaling" && c.Service != "ssm" {
				continue
			}
			n++
			if s, ok := r.issued[c.AccessKey]; !ok || !strings.Contains(s.arn, ":assumed-role/"+role+"/") {
				wrong = append(wrong, fmt.Sprintf("%s %s signed by %q (%s)", c.Service, c.Action, c.AccessKey, s.arn))
			}
		}
		if n == 0 {
			return errors.New("no EC2, Auto Scaling or SSM call reached moto")
		}
		if len(wrong) > 0 {
			return fmt.Errorf("%d of %d calls were not made as role %s:\n%s", len(wrong), n, role, strings.Join(wrong, "\n"))
		}
		return nil
	}
}

// secrets are the secret keys STS issued.
func (r *stsRecorder) secrets() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, s := range r.issued {
		out = append(out, s.secret)
	}
	return out
}

// nowhereIn checks that none of the canaries is in the state or in the
// file at logPath (the Terraform CLI's and the provider's trace log).
func nowhereIn(logPath string, canaries func() []string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		state, err := json.Marshal(s)
		if err != nil {
			return err
		}
		log, err := os.ReadFile(logPath)
		if err != nil {
			return err
		}
		if !strings.Contains(string(log), "tf_rpc=ConfigureProvider") {
			return fmt.Errorf("the log %s holds nothing of the provider's (%d bytes): the check would prove nothing", logPath, len(log))
		}
		for _, c := range canaries() {
			if c == "" {
				return errors.New("empty canary")
			}
			if strings.Contains(string(state), c) {
				return fmt.Errorf("a credential (%.6s…) is in the state", c)
			}
			if strings.Contains(string(log), c) {
				return fmt.Errorf("a credential (%.6s…) is in the log %s", c, logPath)
			}
		}
		return nil
	}
}

// readOnlyHome makes HOME an empty read-only file system (a tmpfs mounted
// read-only, so that even root cannot write to it), as a Terraform Cloud
// run's home may be, and points the XDG directories at it too.
func readOnlyHome(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	if err := syscall.Mount("autarky-home", home, "tmpfs", syscall.MS_RDONLY|syscall.MS_NOSUID|syscall.MS_NODEV, "size=1m"); err != nil {
		t.Fatalf("mount a read-only home at %s (the tests run as root): %v", home, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(home, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", home, err)
		}
	})
	if err := os.WriteFile(filepath.Join(home, "probe"), nil, 0o600); err == nil {
		t.Fatalf("home %s is writable", home)
	}
	t.Setenv("HOME", home)
	for _, v := range []string{"XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME"} {
		t.Setenv(v, "")
	}
	return home
}

// onlyWebIdentity leaves AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE as
// the only credentials in the environment: no keys, no profile, no
// shared files, no instance metadata, no SDK-level endpoints.
func onlyWebIdentity(t *testing.T, roleARN, tokenFile string) {
	t.Helper()
	for _, v := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_ROLE_SESSION_NAME", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"} {
		t.Setenv(v, "")
	}
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_ROLE_ARN", roleARN)
	t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", tokenFile)
}

// traceLog sends the Terraform CLI's and the provider's trace log to a
// file and returns its path.
func traceLog(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "terraform.log")
	t.Setenv("TF_LOG", "trace")
	t.Setenv("TF_ACC_LOG_PATH", p)
	return p
}

// A Terraform Cloud run: the only credentials are a web identity token
// file and a role (dynamic provider credentials), named by AWS_ROLE_ARN
// and AWS_WEB_IDENTITY_TOKEN_FILE or by a shared config file given in
// shared_config_files; HOME is read-only and there is no state
// directory. A cluster and a pool are planned, applied and destroyed,
// every AWS call made as the role moto's STS granted for the token, STS
// reached at the provider's sts endpoint; the token and the keys STS
// issued are in neither the state nor the trace log.
func TestAccAWS_webIdentityOnly(t *testing.T) {
	t.Run("environment", func(t *testing.T) { webIdentityRun(t, false) })
	t.Run("shared config file", func(t *testing.T) { webIdentityRun(t, true) })
}

func webIdentityRun(t *testing.T, sharedConfig bool) {
	e := newAWSEnv(t)
	rec := newSTSRecorder(t, e.endpoint)
	logPath := traceLog(t)
	home := readOnlyHome(t)
	stateDir := filepath.Join(home, "autarky") // can never be created
	t.Setenv("AUTARKY_STATE_DIR", stateDir)
	const role = "arn:aws:iam::123456789012:role/tfc-run"
	token := "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJvcmdhbml6YXRpb246YWNtZSJ9.canary-" + strings.ReplaceAll(t.Name(), "_", "-")
	tokenFile := filepath.Join(t.TempDir(), "tfc-aws-token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	providerConfig := rec.provider("")
	if sharedConfig {
		onlyWebIdentity(t, "", "")
		// As HCP Terraform does: a shared config file naming the role and
		// the token file, handed to the configuration in the variable
		// tfc_aws_dynamic_credentials; the provider block is the Terraform
		// Cloud guide's own, pointed at moto.
		file := filepath.Join(t.TempDir(), "tfc-aws-shared-config")
		profile := fmt.Sprintf("[default]\nrole_arn = %s\nweb_identity_token_file = %s\n", role, tokenFile)
		if err := os.WriteFile(file, []byte(profile), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("TF_VAR_tfc_aws_dynamic_credentials", fmt.Sprintf(`{ default = { shared_config_file = %q }, aliases = {} }`, file))
		guide := testenv.DocBlock(t, "templates/guides/terraform-cloud.md.tmpl", "tfc-shared-config")
		const region = `region              = "eu-west-1"`
		if !strings.Contains(guide, region) {
			t.Fatalf("the guide's provider block no longer sets %s: update this test", region)
		}
		providerConfig = strings.Replace(guide, region, fmt.Sprintf("region = %q\n    endpoints = { ec2 = %[2]q, autoscaling = %[2]q, ssm = %[2]q, sts = %[2]q }", testenv.MotoRegion, rec.URL), 1)
	} else {
		onlyWebIdentity(t, role, tokenFile)
	}

	noStateDir := func(*terraform.State) error {
		if _, err := os.Stat(stateDir); !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("state dir %s: %v, want it absent", stateDir, err)
		}
		return nil
	}
	tokenFromFile := func(*terraform.State) error {
		calls := rec.stsCalls()
		if len(calls) == 0 {
			return errors.New("no STS call reached the sts endpoint")
		}
		for _, c := range calls {
			if c.Action != "AssumeRoleWithWebIdentity" || c.AccessKey != "" {
				return fmt.Errorf("STS %s signed by %q, want only unsigned AssumeRoleWithWebIdentity", c.Action, c.AccessKey)
			}
			if got := testenv.AWSFormValue(c.Body, "RoleArn"); got != role {
				return fmt.Errorf("AssumeRoleWithWebIdentity for %q, want %q", got, role)
			}
			if testenv.AWSFormValue(c.Body, "WebIdentityToken") != token {
				return errors.New("AssumeRoleWithWebIdentity did not carry the token of the token file")
			}
		}
		return nil
	}
	canaries := func() []string { return append(rec.secrets(), token) }
	config := providerConfig + e.cluster("tfc", 1, "") + `
resource "autarky_node_pool" "web" {
  cluster_id   = autarky_cluster.test.id
  name         = "web"
  max_size     = 3
  desired_size = 1
}
`
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy: resource.ComposeAggregateTestCheckFunc(
			e.checkNothingLeftInAWS("tfc"), rec.madeAs("tfc-run"), tokenFromFile, noStateDir, nowhereIn(logPath, canaries)),
		Steps: []resource.TestStep{{
			Config: config,
			Check: resource.ComposeAggregateTestCheckFunc(
				e.checkGroup("tfc-managers", 1, 2, 1, nil),
				e.checkGroup("tfc-web", 0, 4, 1, nil),
				rec.madeAs("tfc-run"), tokenFromFile, noStateDir, nowhereIn(logPath, canaries),
			),
		}},
	})
}

// The assume_role block: the provider assumes the role with the
// credentials of the chain (here static keys), passing the session name,
// external ID and duration, and makes every platform call as that role.
func TestAccAWS_assumeRole(t *testing.T) {
	e := newAWSEnv(t)
	rec := newSTSRecorder(t, e.endpoint)
	const role = "arn:aws:iam::123456789012:role/autarky-deploy"
	assumed := func(*terraform.State) error {
		calls := rec.stsCalls()
		if len(calls) == 0 {
			return errors.New("no STS call reached the sts endpoint")
		}
		for _, c := range calls {
			want := map[string]string{"RoleArn": role, "RoleSessionName": "autarky-test", "ExternalId": "ext-1234", "DurationSeconds": "1800"}
			if c.Action != "AssumeRole" || c.AccessKey != "testing" {
				return fmt.Errorf("STS %s signed by %q, want AssumeRole signed by the chain's key", c.Action, c.AccessKey)
			}
			for k, v := range want {
				if got := testenv.AWSFormValue(c.Body, k); got != v {
					return fmt.Errorf("AssumeRole %s=%q, want %q", k, got, v)
				}
			}
		}
		return nil
	}
	e.applyAndDestroy(t, rec.provider(fmt.Sprintf(`
    assume_role {
      role_arn     = %q
      session_name = "autarky-test"
      external_id  = "ext-1234"
      duration     = "30m"
    }`, role)), "ar", rec.madeAs("autarky-deploy"), assumed)
}

// applyAndDestroy applies a one-manager cluster under provider, then
// destroys it; checks hold after each, and nothing is left in AWS.
func (e awsEnv) applyAndDestroy(t *testing.T, provider, cluster string, checks ...resource.TestCheckFunc) {
	t.Helper()
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             resource.ComposeAggregateTestCheckFunc(append(checks, e.checkNothingLeftInAWS(cluster))...),
		Steps: []resource.TestStep{{
			Config: provider + e.cluster(cluster, 1, ""),
			Check:  resource.ComposeAggregateTestCheckFunc(append(checks, e.checkGroup(cluster+"-managers", 1, 2, 1, nil))...),
		}},
	})
}

// The two blocks chained, as in the AWS provider: the token of
// assume_role_with_web_identity buys the first role's credentials, which
// assume the role of assume_role, as which every platform call is made.
func TestAccAWS_webIdentityThenAssumeRole(t *testing.T) {
	e := newAWSEnv(t)
	rec := newSTSRecorder(t, e.endpoint)
	onlyWebIdentity(t, "", "")
	const token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjaSJ9.inline-canary"
	chained := func(*terraform.State) error {
		var actions []string
		for _, c := range rec.stsCalls() {
			actions = append(actions, c.Action)
			switch c.Action {
			case "AssumeRoleWithWebIdentity":
				if testenv.AWSFormValue(c.Body, "WebIdentityToken") != token || testenv.AWSFormValue(c.Body, "RoleArn") != "arn:aws:iam::123456789012:role/ci" ||
					testenv.AWSFormValue(c.Body, "RoleSessionName") != "ci-run" || testenv.AWSFormValue(c.Body, "DurationSeconds") != "3600" {
					return fmt.Errorf("AssumeRoleWithWebIdentity with %s", c.Body)
				}
			case "AssumeRole":
				s, ok := rec.issued[c.AccessKey]
				if !ok || s.action != "AssumeRoleWithWebIdentity" {
					return fmt.Errorf("AssumeRole signed by %q, want a key of the web identity session", c.AccessKey)
				}
			}
		}
		if len(actions) < 2 || actions[0] != "AssumeRoleWithWebIdentity" || actions[1] != "AssumeRole" {
			return fmt.Errorf("STS calls %v, want AssumeRoleWithWebIdentity then AssumeRole", actions)
		}
		return nil
	}
	e.applyAndDestroy(t, rec.provider(fmt.Sprintf(`
    assume_role_with_web_identity {
      role_arn           = "arn:aws:iam::123456789012:role/ci"
      session_name       = "ci-run"
      web_identity_token = %q
      duration           = "1h"
    }
    assume_role {
      role_arn = "arn:aws:iam::123456789012:role/autarky-deploy"
    }`, token)), "chain", rec.madeAs("autarky-deploy"), chained)
}

// Bad role assumption settings are refused naming the field and what is
// allowed, before anything is created.
func TestAccAWS_badCredentialSettings(t *testing.T) {
	e := newAWSEnv(t)
	rec := newSTSRecorder(t, e.endpoint)
	block := func(name, body string) string {
		return rec.provider(name+" {\n"+body+"\n}") + e.cluster("bad", 1, "")
	}
	const ok = `role_arn = "arn:aws:iam::123456789012:role/x"`
	for _, tc := range []struct{ config, want string }{
		{block("assume_role", `role_arn = "arn:aws:iam::123:role/x"`), `aws.assume_role.role_arn: "arn:aws:iam::123:role/x" is not an IAM role ARN`},
		{block("assume_role", `role_arn = "arn:aws:iam::123456789012:user/x"`), `is not an IAM role ARN: use one such as "arn:aws:iam::123456789012:role/terraform"`},
		{block("assume_role", `session_name = "s"`), `aws.assume_role.role_arn: the block needs the ARN of the role to assume`},
		{block("assume_role", ok+"\nduration = \"10m\""), `aws.assume_role.duration: "10m" is out of range: a session lasts from 15m to 12h`},
		{block("assume_role", ok+"\nduration = \"13h\""), `aws.assume_role.duration: "13h" is out of range`},
		{block("assume_role", ok+"\nduration = \"soon\""), `aws.assume_role.duration: "soon" is not a duration`},
		{block("assume_role", ok+"\nsession_name = \"my session\""), `aws.assume_role.session_name: "my session" is not a session name`},
		{block("assume_role", ok+"\nexternal_id = \"x\""), `aws.assume_role.external_id: "x" is not an external ID`},
		{block("assume_role", ok+"\npolicy_arns = [\"ReadOnlyAccess\"]"), `"ReadOnlyAccess" is not an IAM policy ARN`},
		{block("assume_role", ok+"\npolicy = \"allow all\""), `aws.assume_role.policy: is not a JSON policy document`},
		{block("assume_role_with_web_identity", ok+"\nweb_identity_token = \"t\"\nweb_identity_token_file = \"/run/token\""),
			`aws.assume_role_with_web_identity: set web_identity_token or web_identity_token_file, not both`},
		{block("assume_role_with_web_identity", ok+"\nduration = \"24h\""), `aws.assume_role_with_web_identity.duration: "24h" is out of range`},
		{block("assume_role_with_web_identity", `role_arn = "role/x"`), `aws.assume_role_with_web_identity.role_arn: "role/x" is not an IAM role ARN`},
		{strings.Replace(rec.provider(""), `sts = "`, `sts = "ftp:`, 1) + e.cluster("bad", 1, ""), `endpoints.sts: "ftp:http://127.0.0.1:[0-9]+" is not an http\(s\) URL`},
	} {
		t.Run(tc.want, func(t *testing.T) {
			// Terraform wraps long messages: any space may be a line break.
			want := regexp.MustCompile(strings.ReplaceAll(tc.want, " ", `\s+`))
			resource.Test(t, resource.TestCase{
				ProtoV6ProviderFactories: protoV6ProviderFactories,
				Steps:                    []resource.TestStep{{Config: tc.config, ExpectError: want}},
			})
		})
	}
	// Found only when the platform is used: the role comes from the
	// environment when the block leaves it out.
	t.Run("no role anywhere", func(t *testing.T) {
		onlyWebIdentity(t, "", "")
		resource.Test(t, resource.TestCase{
			ProtoV6ProviderFactories: protoV6ProviderFactories,
			Steps: []resource.TestStep{{
				Config:      block("assume_role_with_web_identity", `web_identity_token = "t"`),
				ExpectError: regexp.MustCompile(`assume_role_with_web_identity.role_arn:\s+not\s+set,\s+and\s+AWS_ROLE_ARN\s+is\s+empty`),
			}},
		})
	})
	if calls := rec.stsCalls(); len(calls) > 0 {
		t.Errorf("%d STS calls for refused settings", len(calls))
	}
	if err := e.checkNothingLeftInAWS("bad")(nil); err != nil {
		t.Fatal(err)
	}
}
