package provider

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/autarky/terraform-provider-autarky/internal/platform/gcp"
	"github.com/autarky/terraform-provider-autarky/internal/platform/group"
)

// tokenServer is an OAuth token endpoint on loopback for a service
// account key whose token_uri names it: it answers every JWT bearer grant
// with accessToken, and counts them.
func tokenServer(t *testing.T, accessToken string) (string, *atomic.Int32) {
	t.Helper()
	var grants atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.Form.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" || r.Form.Get("assertion") == "" {
			http.Error(w, "not a JWT bearer grant", http.StatusBadRequest)
			return
		}
		grants.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token": %q, "token_type": "Bearer", "expires_in": 3600}`, accessToken)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/token", &grants
}

// serviceAccountKey is a service account key file (a fresh RSA key) whose
// tokens come from tokenURI; it returns the file's path and a piece of
// the private key to look for.
func serviceAccountKey(t *testing.T, tokenURI string) (string, string) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	b, err := json.Marshal(map[string]string{"type": "service_account", "project_id": gcpTestProject, "private_key_id": "canary-key-id",
		"private_key": keyPEM, "client_email": "terraform@autarky-test.iam.gserviceaccount.com", "client_id": "1", "token_uri": tokenURI})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "key.json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(keyPEM, "\n")
	return file, lines[len(lines)/2]
}

// On gcp the provider authenticates with the credentials it is given (a
// service account key, by path and by content; the fakes ask for no
// token, but the token endpoint sees the grants), and no secret reaches
// the state or Terraform's log at TF_LOG=trace: not the key, not the
// access token, not the agents' bearer token it creates in the bucket,
// and not the join tokens the managers store there (canaries: the bucket
// holds them while the provider refreshes).
func TestAccGCP_credentialsNoSecretsInStateOrLog(t *testing.T) {
	e := newGCPEnv(t)
	const accessToken = "ya29.canary-access-token-0123456789abcdef"
	tokenURI, grants := tokenServer(t, accessToken)
	keyFile, keyPart := serviceAccountKey(t, tokenURI)
	logPath := e.stateDir + "/terraform.log"
	t.Setenv("TF_LOG", "trace")
	t.Setenv("TF_ACC_LOG_PATH", logPath)
	withCredentials := func(creds string) string {
		return strings.Replace(e.provider(), "  gcp {", "  gcp {\n    credentials = "+creds, 1) + e.cluster("vault", 1, `agent = {
    enabled       = true
    binary_url    = "https://releases.example.com/autarky-agent"
    binary_sha256 = "`+strings.Repeat("ab", 32)+`"
  }`)
	}
	bucket := e.storage(t).Bucket(gcpTestBucket)
	read := func(key string) (string, error) {
		r, err := bucket.Object(gcp.ObjectName("vault", key)).NewReader(context.Background())
		if err != nil {
			return "", fmt.Errorf("%s: %w", key, err)
		}
		defer r.Close()
		b, err := io.ReadAll(r)
		return string(b), err
	}
	write := func(key, value string) error {
		w := bucket.Object(gcp.ObjectName("vault", key)).NewWriter(context.Background())
		if _, err := io.WriteString(w, value); err != nil {
			return err
		}
		return w.Close()
	}
	joinWorker, joinManager := "SWMTKN-1-digestdigest-workercanarysecret", "SWMTKN-1-digestdigest-managercanarysecret"
	var agentToken string
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             e.checkNothingLeftInGCP(t, "vault"),
		Steps: []resource.TestStep{
			{
				Config: withCredentials(fmt.Sprintf("%q", keyFile)),
				Check: func(s *terraform.State) (err error) {
					// What the first manager's startup script would store.
					if err := errors.Join(write(group.KeyWorkerToken, joinWorker), write(group.KeyManagerToken, joinManager)); err != nil {
						return err
					}
					if agentToken, err = read(group.KeyAlertToken); err != nil || len(agentToken) < 32 {
						return fmt.Errorf("the agents' bearer token was not created (%d characters): %v", len(agentToken), err)
					}
					if grants.Load() == 0 {
						return fmt.Errorf("the provider never asked the key's token endpoint: it did not use the credentials")
					}
					return noSecretIn(s, keyPart, accessToken, agentToken)
				},
			},
			{
				// The key's content instead of its path; a refresh and
				// plan with the tokens in the bucket.
				Config:   withCredentials(fmt.Sprintf("file(%q)", keyFile)),
				PlanOnly: true,
				Check: func(s *terraform.State) error {
					return noSecretIn(s, keyPart, accessToken, agentToken, secretPart(joinWorker), secretPart(joinManager))
				},
			},
		},
	})
	logText, err := os.ReadFile(logPath)
	if err != nil || len(logText) == 0 {
		t.Fatalf("Terraform's log %s is empty or missing (%v): the test cannot check it", logPath, err)
	}
	if !strings.Contains(string(logText), "vault-managers") {
		t.Fatal("Terraform's log does not mention the cluster's group: it is not the log of this run")
	}
	for name, canary := range map[string]string{"the service account key": keyPart, "the access token": accessToken, "the agents' bearer token": agentToken,
		"the worker join token": secretPart(joinWorker), "the manager join token": secretPart(joinManager)} {
		if canary == "" {
			t.Fatalf("no canary for %s", name)
		}
		if strings.Contains(string(logText), canary) {
			t.Errorf("%s appears in Terraform's log at TF_LOG=trace", name)
		}
	}
}

// autarky_join_token reads a gcp cluster's tokens from the bucket, where
// the first manager stored them, and hands them to where an ephemeral
// value may go (a provisioner here) without their reaching the state.
// Run with OpenTofu: Terraform 1.5 has no ephemeral resources.
func TestAccGCP_joinTokenEphemeral(t *testing.T) {
	e := newGCPEnv(t)
	pinOpenTofu(t)
	dir := t.TempDir()
	bucket := e.storage(t).Bucket(gcpTestBucket)
	tokens := map[string]string{group.KeyWorkerToken: "SWMTKN-1-digestdigest-workerephemeral", group.KeyManagerToken: "SWMTKN-1-digestdigest-managerephemeral"}
	cluster := e.provider() + e.cluster("ephem", 1, "")
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             e.checkNothingLeftInGCP(t, "ephem"),
		Steps: []resource.TestStep{
			{Config: cluster},
			{
				// What the first manager's startup script would store.
				PreConfig: func() {
					for key, v := range tokens {
						w := bucket.Object(gcp.ObjectName("ephem", key)).NewWriter(context.Background())
						if _, err := io.WriteString(w, v); err != nil {
							t.Fatal(err)
						}
						if err := w.Close(); err != nil {
							t.Fatal(err)
						}
					}
				},
				Config: cluster + fmt.Sprintf(`
ephemeral "autarky_join_token" "worker" {
  cluster_id = autarky_cluster.test.id
  role       = "worker"
}

resource "terraform_data" "bootstrap" {
  provisioner "local-exec" {
    command     = "printf %%s \"$WORKER\" > %s/worker"
    environment = { WORKER = ephemeral.autarky_join_token.worker.token }
  }
}
`, dir),
				Check: func(s *terraform.State) error {
					got, err := os.ReadFile(dir + "/worker")
					if err != nil {
						return fmt.Errorf("the provisioner wrote no worker token: %w", err)
					}
					if string(got) != tokens[group.KeyWorkerToken] {
						return fmt.Errorf("the ephemeral worker token is %q, not the one in the bucket", got)
					}
					return noTokenIn(s, tokens[group.KeyWorkerToken], tokens[group.KeyManagerToken])
				},
			},
		},
	})
}
