package gcp

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func TestConnectCredentialErrors(t *testing.T) {
	ctx := context.Background()
	// No Application Default Credentials: a file that is not there, and
	// no gcloud configuration or metadata server to fall back on.
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", filepath.Join(t.TempDir(), "missing.json"))
	t.Setenv("HOME", t.TempDir())
	t.Setenv("CLOUDSDK_CONFIG", t.TempDir())
	t.Setenv("GCE_METADATA_HOST", "127.0.0.1:1")
	for _, c := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no region", Config{Project: "p-123456"}, "gcp.region"},
		{"no credentials", Config{Project: "p-123456", Region: "europe-west1"}, "no Google credentials found"},
		{"not JSON", Config{Project: "p-123456", Region: "europe-west1", CredentialsJSON: []byte("key")}, "gcp.credentials: not a JSON credentials file"},
		{"unknown type", Config{Project: "p-123456", Region: "europe-west1", CredentialsJSON: []byte(`{"type":"external_account_authorized_user_x"}`)}, `gcp.credentials: type "external_account_authorized_user_x" is not accepted`},
		{"no project", Config{Region: "europe-west1", NoAuth: true}, "gcp.project"},
	} {
		_, err := Connect(ctx, c.cfg, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error saying %q", c.name, err, c.want)
		}
	}
	// A service account file without its key passes Connect (the file is
	// parsed when a token is asked for) and fails CheckCredentials, at
	// plan time.
	c, err := Connect(ctx, Config{Project: "p-123456", Region: "europe-west1", CredentialsJSON: []byte(`{"type":"service_account","client_email":"a@p-123456.iam.gserviceaccount.com"}`)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.CheckCredentials(ctx); err == nil || !strings.Contains(err.Error(), "the Google credentials do not give a token") {
		t.Errorf("CheckCredentials with a keyless service account file: %v", err)
	}
}
