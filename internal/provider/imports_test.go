package provider

import (
	"os/exec"
	"strings"
	"testing"
)

// The provider names no platform: it opens them through package
// platform's registry (backends, and rights for the IAM data sources),
// and the binary links the ones it serves (main.go). A new platform is
// then an adapter and its registration, with nothing to change here.
func TestProviderImportsNoPlatform(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, concrete := range []string{"/internal/platform/aws", "/internal/platform/gcp", "/internal/platform/local"} {
			if strings.HasSuffix(dep, concrete) {
				t.Errorf("the provider depends on %s: open platforms through platform.OpenBackend", dep)
			}
		}
	}
}
