package testenv

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// FakeGCSVersion is the fake-gcs-server `make tools` builds.
const FakeGCSVersion = "1.56.1"

// FakeGCSPath is where `make tools` puts fake-gcs-server
// (github.com/fsouza/fake-gcs-server, built from the Go module proxy).
func FakeGCSPath() string {
	return ToolPath("fake-gcs-server-"+FakeGCSVersion, "fake-gcs-server")
}

// StartGCS starts fake-gcs-server (an emulator of the Cloud Storage JSON
// and XML APIs, not a mock of ours) on a free loopback port, plain HTTP,
// keeping objects in memory, and returns its URL, http://127.0.0.1:port.
// A client reaches it with option.WithEndpoint(url+"/storage/v1/") and
// option.WithoutAuthentication(). The server starts with no bucket and is
// stopped when the test ends. The test fails, naming the setup command,
// when fake-gcs-server is not built.
func StartGCS(t testing.TB) string {
	t.Helper()
	bin := FakeGCSPath()
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("fake-gcs-server is not built: run `%s` (it builds github.com/fsouza/fake-gcs-server v%s into %s)",
			Setup, FakeGCSVersion, filepath.Dir(bin))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	host := "127.0.0.1:" + port
	url := "http://" + host
	cmd := exec.Command(bin, "-scheme", "http", "-host", "127.0.0.1", "-port", port,
		"-backend", "memory",
		// Uploads answer with this URL, and the XML API (object reads
		// by the Go client) is served for this host rather than
		// storage.googleapis.com.
		"-external-url", url, "-public-host", host,
		"-log-level", "warn")
	StartServer(t, "fake-gcs-server", cmd, url+"/_internal/healthcheck", 30*time.Second)
	return url
}
