package provider

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/types"
)

// The gcp block resolves as the google provider's does: credentials as a
// path or as JSON content, GOOGLE_* variables as defaults; no credentials
// are sent only to fakes on this machine, and a broken credentials value
// is refused without being quoted.
func TestGCPConfigFrom(t *testing.T) {
	for _, v := range []string{envGoogleProject, envGoogleRegion, envGoogleCredentials} {
		t.Setenv(v, "")
	}
	const key = `{"type": "service_account", "project_id": "p"}`
	file := filepath.Join(t.TempDir(), "key.json")
	if err := os.WriteFile(file, []byte(key), 0o600); err != nil {
		t.Fatal(err)
	}
	block := func(creds string, compute, storage string) *gcpProviderModel {
		m := &gcpProviderModel{Project: types.StringNull(), Region: types.StringValue("europe-west1"), Bucket: types.StringValue("b-store"),
			Credentials: types.StringNull(), ImpersonateServiceAccount: types.StringNull()}
		if creds != "" {
			m.Credentials = types.StringValue(creds)
		}
		if compute != "" || storage != "" {
			m.Endpoints = &gcpEndpointsModel{Compute: types.StringValue(compute), Storage: types.StringValue(storage)}
		}
		return m
	}
	for _, tc := range []struct {
		name                string
		m                   *gcpProviderModel
		env                 map[string]string
		noAuth              bool
		creds, endpoint, pj string
	}{
		{name: "Google's endpoints", m: block("", "", "")},
		{name: "fakes on loopback", m: block("", "http://127.0.0.1:8080/compute/v1/", "http://localhost:9000/storage/v1/"), noAuth: true, endpoint: "http://127.0.0.1:8080"},
		{name: "one endpoint elsewhere", m: block("", "http://127.0.0.1:8080", "https://storage.example/storage/v1/"), endpoint: "http://127.0.0.1:8080"},
		{name: "credentials to a fake", m: block(key, "http://127.0.0.1:8080", "http://[::1]:9000/storage/v1/"), creds: key, endpoint: "http://127.0.0.1:8080"},
		{name: "a credentials file", m: block(file, "", ""), creds: key},
		{name: "GOOGLE_CREDENTIALS and GOOGLE_PROJECT", m: block("", "http://127.0.0.1:1", "http://127.0.0.1:2"), env: map[string]string{envGoogleCredentials: key, envGoogleProject: "from-env"},
			creds: key, endpoint: "http://127.0.0.1:1", pj: "from-env"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			s, err := gcpConfigFrom(tc.m)
			if err != nil {
				t.Fatal(err)
			}
			if s.NoAuth != tc.noAuth || string(s.CredentialsJSON) != tc.creds || s.ComputeEndpoint != tc.endpoint || s.Project != tc.pj {
				t.Fatalf("settings %+v, want NoAuth %v, credentials %q, endpoint %q, project %q", s, tc.noAuth, tc.creds, tc.endpoint, tc.pj)
			}
		})
	}
	for _, bad := range []string{`{"type": "service_account", "private_key": "SECRET`, filepath.Join(t.TempDir(), "SECRET.json"), "SECRET-not-json"} {
		_, err := gcpConfigFrom(block(bad, "", ""))
		if err == nil || !strings.HasPrefix(err.Error(), "gcp.credentials: ") || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("credentials %.20q: error %v, want one naming gcp.credentials without quoting them", bad, err)
		}
	}
}
