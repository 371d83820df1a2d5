package workload

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The load gauge is exported for Prometheus and set through /load; a body
// that is not a load is refused and changes nothing.
func TestLoadGauge(t *testing.T) {
	srv := httptest.NewServer(Handler("h", 1.5))
	defer srv.Close()
	metrics := func() string {
		resp, err := http.Get(srv.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	set := func(method, body string) int {
		req, _ := http.NewRequest(method, srv.URL+"/load", strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if m := metrics(); !strings.Contains(m, "# TYPE autarky_workload_load gauge\nautarky_workload_load 1.5\n") {
		t.Fatalf("/metrics:\n%s", m)
	}
	if code := set(http.MethodPut, "4\n"); code != http.StatusNoContent {
		t.Fatalf("PUT /load 4: %d", code)
	}
	if code := set(http.MethodPost, "0.25"); code != http.StatusNoContent {
		t.Fatalf("POST /load 0.25: %d", code)
	}
	for _, bad := range []string{"", "high", "-1", "NaN", "+Inf"} {
		if code := set(http.MethodPut, bad); code != http.StatusBadRequest {
			t.Errorf("PUT /load %q: %d, want 400", bad, code)
		}
	}
	if m := metrics(); !strings.Contains(m, "autarky_workload_load 0.25\n") {
		t.Fatalf("/metrics after the loads set:\n%s", m)
	}
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "ok from h\n" {
		t.Fatalf("/: %q", b)
	}
}
