package testenv

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Gauge is a tiny exporter serving one gauge, app_load, whose value the
// test sets; Freeze makes it stop answering, as a hung exporter would.
type Gauge struct {
	mu     sync.Mutex
	value  float64
	frozen bool
	Addr   string
}

// NewGauge serves /metrics on a free loopback port until the test ends.
func NewGauge(t testing.TB, value float64) *Gauge {
	t.Helper()
	g := &Gauge{value: value}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g.Addr = ln.Addr().String()
	srv := &http.Server{ReadHeaderTimeout: time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		g.mu.Lock()
		v, frozen := g.value, g.frozen
		g.mu.Unlock()
		if frozen {
			time.Sleep(30 * time.Second)
			return
		}
		fmt.Fprintf(w, "# TYPE app_load gauge\napp_load %g\n", v)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return g
}

// Set changes the gauge's value.
func (g *Gauge) Set(v float64) { g.mu.Lock(); g.value = v; g.mu.Unlock() }

// Freeze makes the exporter hang (true) or answer again (false).
func (g *Gauge) Freeze(f bool) { g.mu.Lock(); g.frozen = f; g.mu.Unlock() }

// Prometheus is a real Prometheus server (Debian's) scraping targets every
// second, on a free loopback port.
type Prometheus struct {
	Addr string // http://127.0.0.1:port
	cmd  *exec.Cmd
	dir  string
	args []string
}

// StartPrometheus starts Prometheus scraping targets ("host:port") every
// second. It fails the test, naming the setup command, when it is missing.
func StartPrometheus(t testing.TB, targets ...string) *Prometheus {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("prometheus is not installed: run `%s` (it installs Debian's prometheus)", Setup)
	}
	dir := t.TempDir()
	cfg := "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: app\n    scrape_timeout: 900ms\n    static_configs:\n      - targets: ["
	for i, tg := range targets {
		if i > 0 {
			cfg += ", "
		}
		cfg += strconv.Quote(tg)
	}
	cfg += "]\n"
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	p := &Prometheus{Addr: fmt.Sprintf("http://127.0.0.1:%d", port), dir: dir, args: []string{
		"--config.file=" + filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port),
		"--web.enable-lifecycle",
	}}
	_ = bin
	p.Start(t)
	t.Cleanup(p.Stop)
	return p
}

// Start (re)starts the server and waits until it is ready.
func (p *Prometheus) Start(t testing.TB) {
	t.Helper()
	log, err := os.OpenFile(filepath.Join(p.dir, "prometheus.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command("prometheus", p.args...)
	p.cmd.Stdout, p.cmd.Stderr = log, log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	go func() { _ = p.cmd.Wait(); log.Close() }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(p.Addr + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _ := os.ReadFile(filepath.Join(p.dir, "prometheus.log"))
	t.Fatalf("prometheus did not become ready:\n%s", b)
}

// Stop stops the server.
func (p *Prometheus) Stop() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() {
			for processAlive(p.cmd.Process.Pid) {
				time.Sleep(50 * time.Millisecond)
			}
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
		}
	}
}

func processAlive(pid int) bool {
	return syscall.Kill(pid, 0) == nil && !isZombie(pid)
}

func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == ')' && i+2 < len(s) {
			return s[i+2] == 'Z'
		}
	}
	return false
}
