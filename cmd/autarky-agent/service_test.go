package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/autarky/terraform-provider-autarky/internal/packaging"
)

// `autarky-agent unit` prints the shipped unit byte for byte: the boot
// scripts and the guide install what it prints.
func TestUnitCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"autarky-agent", "unit"}, &out, &errb); code != 0 || out.String() != packaging.Unit {
		t.Fatalf("unit: exit %d, stderr %s, printed the shipped unit: %t", code, errb.String(), out.String() == packaging.Unit)
	}
}

// `autarky-agent health` is the image's HEALTHCHECK: 0 when /healthz
// answers 200, 1 with the reason otherwise (an unhealthy answer, nobody
// listening).
func TestHealthCommand(t *testing.T) {
	healthy := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		if !healthy {
			http.Error(w, "journal unreadable", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	}))
	defer srv.Close()
	var out, errb bytes.Buffer
	if code := run([]string{"autarky-agent", "health", "--address", srv.URL}, &out, &errb); code != 0 || out.String() != "ok\n" {
		t.Fatalf("healthy agent: exit %d, %q %q", code, out.String(), errb.String())
	}
	healthy = false
	errb.Reset()
	if code := run([]string{"autarky-agent", "health", "--address", srv.URL}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "503 Service Unavailable: journal unreadable") {
		t.Fatalf("unhealthy agent: exit %d, %q", code, errb.String())
	}
	srv.Close()
	errb.Reset()
	if code := run([]string{"autarky-agent", "health", "--address", srv.URL}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "agent at "+srv.URL) {
		t.Fatalf("no agent: exit %d, %q", code, errb.String())
	}
}
