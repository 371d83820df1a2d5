package gcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"

	"github.com/autarky/terraform-provider-autarky/internal/platform/group"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// The canary tokens the stand-ins hand out; the join tokens look like
// Swarm's, the access tokens like Google's.
const (
	bootWorkerToken  = "SWMTKN-1-gcpcanaryworker0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6q7r8s9t0u-w0rk3rcanary00000000000"
	bootManagerToken = "SWMTKN-1-gcpcanarymanager0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6q7r8s9t0-m4n4g3rcanary0000000000"
	bootAgentToken   = "agent0gcp0canary0c4f1e2d3b4a5968778695a4b3c2d1e0f0e1d2c3b4a59687786"
	bootAccessToken  = "ya29.canary-access-" // + the VM's name
	bootProject      = "autarky-test"
	bootRegion       = "europe-west1"
	bootZone         = "europe-west1-b"
	bootGroup        = "prod-managers"
)

// bootVM is one VM the stand-ins know: its metadata, and, for managers,
// its place in the managers' group.
type bootVM struct {
	name, id, ip string
	manager      bool
}

// bootEnv runs a rendered startup script's functions with real curl
// against real stand-ins for everything a VM talks to:
//
//   - Cloud Storage is fake-gcs-server (an emulator, `make tools`),
//     behind a proxy that refuses any request without the access token
//     the metadata server gave, and records the objects read;
//   - the metadata server and the Compute Engine API (listManagedInstances
//     of the managers' group, a VM's status and address) are a Go server
//     of this test, which refuses a metadata read without
//     Metadata-Flavor: Google and a Compute call without the token;
//   - the engine's API socket is a Go server of this test that takes the
//     join request (strictly decoded into swarm.JoinRequest), admits a
//     join only through an address where a manager listens, and records
//     it.
//
// docker is a stub (swarm init and join-token print the canaries), and
// every other command the script runs is a wrapper on an otherwise empty
// PATH that records its argument list: a command that is not there is not
// found, and the test fails.
type bootEnv struct {
	t       *testing.T
	dir     string
	gcs     string // fake-gcs-server's URL
	proxy   *httptest.Server
	api     *httptest.Server
	bucket  string
	cluster string

	mu        sync.Mutex
	vms       map[string]bootVM
	listening map[string]bool // addresses where a swarm manager listens
	joins     []swarm.JoinRequest
	refuse    int // joins the engine refuses before it admits one
	reads     []string
}

var bootWrapped = []string{"date", "mktemp", "rm", "cat", "mkdir", "mv", "grep", "sed", "sort", "head"}

const bootDockerStub = `case "$1 $2" in
"swarm join-token") [ "$3" = -q ] && exec cat "$STUB_DIR/token.$4" ;;
"swarm init")
	[ "$3" = --advertise-addr ] || exit 2
	printf '%s\n' "$4" >>"$STUB_DIR/inits"
	: >"$STUB_DIR/listen.$4"
	exit 0
	;;
esac
echo "stub docker: unexpected $*" >&2
exit 2
`

// bootCurl probes https://<addr>:2377/ from the listen.<addr> files (a
// manager listens once it initialised or joined); everything else is the
// real curl.
const bootCurl = `for a in "$@"; do
	case $a in
	https://*:2377/)
		addr=${a#https://}
		[ -e "$STUB_DIR/listen.${addr%:2377/}" ] && exit 0
		exit 7
		;;
	esac
done
exec /usr/bin/curl "$@"
`

func newBootEnv(t *testing.T, vms ...bootVM) *bootEnv {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatalf("curl is not installed: run `%s` (it installs Debian's curl)", testenv.Setup)
	}
	e := &bootEnv{t: t, dir: t.TempDir(), gcs: testenv.StartGCS(t), bucket: "autarky-boot-test", cluster: "prod",
		vms: map[string]bootVM{}, listening: map[string]bool{}}
	for _, vm := range vms {
		e.vms[vm.name] = vm
	}
	for _, d := range []string{"bin", "tmp"} {
		if err := os.Mkdir(filepath.Join(e.dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	stubs := map[string]string{"docker": bootDockerStub, "curl": bootCurl, "sleep": "exec /bin/sleep 0.1\n"}
	for _, name := range bootWrapped {
		path, err := exec.LookPath(name)
		if err != nil {
			t.Fatal(err)
		}
		stubs[name] = "exec " + path + " \"$@\"\n"
	}
	for name, stub := range stubs {
		text := "#!/bin/sh\n{ printf '%s' " + name + "; for a in \"$@\"; do printf ' %s' \"$a\"; done; echo; } >>\"$STUB_DIR/argv\"\n" + stub
		if err := os.WriteFile(filepath.Join(e.dir, "bin", name), []byte(text), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for file, text := range map[string]string{"token.worker": bootWorkerToken + "\n", "token.manager": bootManagerToken + "\n", "argv": ""} {
		if err := os.WriteFile(filepath.Join(e.dir, file), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	resp, err := http.Post(e.gcs+"/storage/v1/b", "application/json", strings.NewReader(`{"name": "`+e.bucket+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("creating the bucket: %s", resp.Status)
	}
	target, _ := url.Parse(e.gcs)
	rp := httputil.NewSingleHostReverseProxy(target)
	e.proxy = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !e.authorized(r) {
			http.Error(w, `{"error": {"code": 401, "message": "no access token"}}`, http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodGet {
			e.mu.Lock()
			e.reads = append(e.reads, r.URL.EscapedPath())
			e.mu.Unlock()
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(e.proxy.Close)
	e.api = httptest.NewServer(http.HandlerFunc(e.serveAPI))
	t.Cleanup(e.api.Close)

	sock := filepath.Join(e.dir, "docker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	engine := &http.Server{Handler: http.HandlerFunc(e.serveEngine)}
	go engine.Serve(ln) //nolint:errcheck // ends at Close
	t.Cleanup(func() { engine.Close() })
	return e
}

// authorized tells whether r carries one of the access tokens the
// metadata server handed out.
func (e *bootEnv) authorized(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	name, found := strings.CutPrefix(tok, bootAccessToken)
	e.mu.Lock()
	defer e.mu.Unlock()
	_, known := e.vms[name]
	return ok && found && known
}

func (e *bootEnv) serveAPI(w http.ResponseWriter, r *http.Request) {
	reply := func(v any) {
		b, _ := json.MarshalIndent(v, "", "  ") // Google's APIs answer indented JSON
		w.Header().Set("Content-Type", "application/json")
		w.Write(b) //nolint:errcheck
	}
	// The metadata server: /md/<vm>/computeMetadata/v1/...
	if rest, ok := strings.CutPrefix(r.URL.Path, "/md/"); ok {
		name, key, _ := strings.Cut(rest, "/computeMetadata/v1/")
		e.mu.Lock()
		vm, known := e.vms[name]
		e.mu.Unlock()
		if r.Header.Get("Metadata-Flavor") != "Google" || !known {
			http.Error(w, "Missing Metadata-Flavor:Google header.", http.StatusForbidden)
			return
		}
		switch key {
		case "instance/id":
			io.WriteString(w, vm.id) //nolint:errcheck
		case "instance/name":
			io.WriteString(w, vm.name) //nolint:errcheck
		case "instance/network-interfaces/0/ip":
			io.WriteString(w, vm.ip) //nolint:errcheck
		case "instance/service-accounts/default/token":
			reply(map[string]any{"access_token": bootAccessToken + vm.name, "expires_in": 3599, "token_type": "Bearer"})
		default:
			http.NotFound(w, r)
		}
		return
	}
	if !e.authorized(r) {
		http.Error(w, `{"error": {"code": 401}}`, http.StatusUnauthorized)
		return
	}
	base := "/compute/v1/projects/" + bootProject + "/"
	rest, ok := strings.CutPrefix(r.URL.Path, base)
	switch {
	case ok && rest == "regions/"+bootRegion+"/instanceGroupManagers/"+bootGroup+"/listManagedInstances":
		if r.Method != http.MethodPost || r.ContentLength > 0 {
			http.Error(w, "listManagedInstances is a POST without a body", http.StatusBadRequest)
			return
		}
		var items []map[string]string
		e.mu.Lock()
		for _, vm := range e.vms {
			if vm.manager {
				items = append(items, map[string]string{"instance": "https://www.googleapis.com" + base + "zones/" + bootZone + "/instances/" + vm.name,
					"id": vm.id, "instanceStatus": "RUNNING", "currentAction": "NONE"})
			}
		}
		e.mu.Unlock()
		sort.Slice(items, func(i, j int) bool { return items[i]["instance"] < items[j]["instance"] })
		reply(map[string]any{"managedInstances": items})
	case ok && strings.HasPrefix(rest, "zones/"+bootZone+"/instances/") && r.Method == http.MethodGet:
		e.mu.Lock()
		vm, known := e.vms[strings.TrimPrefix(rest, "zones/"+bootZone+"/instances/")]
		e.mu.Unlock()
		if !known || r.URL.Query().Get("fields") != "status,networkInterfaces(networkIP)" {
			http.NotFound(w, r)
			return
		}
		reply(map[string]any{"status": "RUNNING", "networkInterfaces": []map[string]string{{"networkIP": vm.ip}}})
	default:
		http.Error(w, "unexpected "+r.Method+" "+r.URL.String(), http.StatusNotFound)
	}
}

// serveEngine is the engine's POST /swarm/join.
func (e *bootEnv) serveEngine(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/swarm/join" || r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "unexpected", http.StatusNotFound)
		return
	}
	var req swarm.JoinRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		http.Error(w, `{"message": "bad join request: `+err.Error()+`"}`, http.StatusBadRequest)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.refuse > 0 {
		e.refuse--
		// The engine's message echoes the token, as some errors might.
		http.Error(w, fmt.Sprintf(`{"message": "invalid join token %s"}`, req.JoinToken), http.StatusInternalServerError)
		return
	}
	addr, _, _ := strings.Cut(strings.Join(req.RemoteAddrs, ","), ":")
	if _, err := os.Stat(filepath.Join(e.dir, "listen."+addr)); err != nil || len(req.RemoteAddrs) != 1 {
		http.Error(w, `{"message": "no manager at `+strings.Join(req.RemoteAddrs, ",")+`"}`, http.StatusServiceUnavailable)
		return
	}
	e.joins = append(e.joins, req)
	if req.JoinToken == bootManagerToken {
		os.WriteFile(filepath.Join(e.dir, "listen."+req.AdvertiseAddr), nil, 0o600) //nolint:errcheck
	}
}

// script renders s with the stand-ins' endpoints.
func (e *bootEnv) script(s StartupScript) string {
	e.t.Helper()
	s.Cluster, s.Project, s.Region, s.Bucket, s.ManagerGroup = e.cluster, bootProject, bootRegion, e.bucket, bootGroup
	s.StorageEndpoint, s.ComputeEndpoint, s.MetadataEndpoint = e.proxy.URL, e.api.URL, e.api.URL+"/md/unset"
	out, err := RenderStartupScript(s)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

type bootRun struct {
	vm     string
	stderr string
	err    error
}

// run runs the script's functions, without main, as VM vm: its private
// directory, its instance from the metadata server, then calls.
func (e *bootEnv) run(script, vm, calls string) bootRun {
	e.t.Helper()
	body, ok := strings.CutSuffix(script, "\nmain \"$@\"\n")
	if !ok {
		e.t.Fatalf("the script does not end with main \"$@\"")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", body+"\nMETADATA="+startupQuote(e.api.URL+"/md/"+vm)+
		"\nDOCKER_SOCK="+startupQuote(filepath.Join(e.dir, "docker.sock"))+"\nmake_secret_dir\nread_instance\n"+calls+"\n")
	cmd.Env = []string{"PATH=" + filepath.Join(e.dir, "bin"), "STUB_DIR=" + e.dir, "TMPDIR=" + filepath.Join(e.dir, "tmp")}
	cmd.WaitDelay = time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		e.t.Errorf("%s: the script was still running after 30 seconds", vm)
	}
	r := bootRun{vm: vm, stderr: stderr.String(), err: err}
	e.t.Logf("%s: exit %v\n%s", vm, err, r.stderr)
	for _, tok := range []string{bootWorkerToken, bootManagerToken, bootAgentToken, bootAccessToken} {
		if strings.Contains(r.stderr, tok) {
			e.t.Errorf("%s: the script printed a token", vm)
		}
	}
	return r
}

// check checks what holds after every run: no command had a token among
// its arguments, and the private directories are gone.
func (e *bootEnv) check() {
	e.t.Helper()
	argv, err := os.ReadFile(filepath.Join(e.dir, "argv"))
	if err != nil {
		e.t.Fatal(err)
	}
	for _, tok := range []string{bootWorkerToken, bootManagerToken, bootAgentToken, bootAccessToken} {
		if strings.Contains(string(argv), tok) {
			e.t.Errorf("a command had a token on its argument list")
		}
	}
	if !strings.Contains(string(argv), "curl ") {
		e.t.Errorf("no curl recorded: the argv check checks nothing")
	}
	if left, _ := os.ReadDir(filepath.Join(e.dir, "tmp")); len(left) != 0 {
		e.t.Errorf("%d private directories left after the scripts exited", len(left))
	}
}

// object reads an object of the cluster straight from fake-gcs-server.
func (e *bootEnv) object(key string) (string, bool) {
	e.t.Helper()
	resp, err := http.Get(e.gcs + "/storage/v1/b/" + e.bucket + "/o/" + url.PathEscape(ObjectName(e.cluster, key)) + "?alt=media")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode == http.StatusOK
}

func (e *bootEnv) putObject(key, data string) {
	e.t.Helper()
	resp, err := http.Post(e.gcs+"/upload/storage/v1/b/"+e.bucket+"/o?uploadType=media&name="+url.QueryEscape(ObjectName(e.cluster, key)),
		"application/octet-stream", strings.NewReader(data))
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("putting %s: %s", key, resp.Status)
	}
}

func bootManagers(n int) []bootVM {
	var vms []bootVM
	for i := 1; i <= n; i++ {
		vms = append(vms, bootVM{name: fmt.Sprintf("prod-managers-m%d", i), id: fmt.Sprintf("10000000000000000%02d", i), ip: fmt.Sprintf("10.0.0.%d", 10+i), manager: true})
	}
	return vms
}

// TestStartupInitRaceOneWinner boots three managers at once, with real
// curl against fake-gcs-server: exactly one wins the init lock (an upload
// with ifGenerationMatch=0) and runs `docker swarm init`, the lock holds
// its id, both join tokens land in the bucket, and the other two join
// with the manager token through a manager that listens. Then two
// workers join with the worker token, reading tokens/worker and never
// tokens/manager. No command ever has a token (join or access) among its
// arguments. The winner, rebooted, finds its own id in the lock; a loser
// does not.
func TestStartupInitRaceOneWinner(t *testing.T) {
	managers := bootManagers(3)
	workers := []bootVM{{name: "prod-web-w1", id: "2000000000000000001", ip: "10.0.1.1"}, {name: "prod-web-w2", id: "2000000000000000002", ip: "10.0.1.2"}}
	e := newBootEnv(t, append(append([]bootVM(nil), managers...), workers...)...)
	manager := e.script(StartupScript{Pool: policy.ManagerPoolName, Role: policy.RoleManager, JoinTimeout: 20 * time.Second})
	worker := e.script(StartupScript{Pool: "web", Role: policy.RoleWorker, JoinTimeout: 20 * time.Second})

	var wg sync.WaitGroup
	runs := make([]bootRun, len(managers))
	for i, vm := range managers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runs[i] = e.run(manager, vm.name, "join_as_manager")
		}()
	}
	wg.Wait()
	for _, r := range runs {
		if r.err != nil {
			t.Errorf("%s: join_as_manager failed: %v", r.vm, r.err)
		}
	}
	inits, _ := os.ReadFile(filepath.Join(e.dir, "inits"))
	winners := strings.Fields(string(inits))
	if len(winners) != 1 {
		t.Fatalf("%d managers ran `docker swarm init` (%v), want exactly 1", len(winners), winners)
	}
	var winner bootVM
	for _, vm := range managers {
		if vm.ip == winners[0] {
			winner = vm
		}
	}
	if lock, ok := e.object(group.KeyInitLock); !ok || lock != winner.id {
		t.Errorf("the init lock holds %q, want the winner's id %s", lock, winner.id)
	}
	for key, want := range map[string]string{group.KeyWorkerToken: bootWorkerToken, group.KeyManagerToken: bootManagerToken} {
		if got, ok := e.object(key); !ok || got != want {
			t.Errorf("object %s holds %q, want the engine's token", key, got)
		}
	}
	e.mu.Lock()
	joined := map[string]swarm.JoinRequest{}
	for _, j := range e.joins {
		joined[j.AdvertiseAddr] = j
	}
	e.mu.Unlock()
	for _, vm := range managers {
		j, ok := joined[vm.ip]
		if vm == winner {
			if ok {
				t.Errorf("the winner %s also joined", vm.name)
			}
			continue
		}
		if !ok {
			t.Errorf("manager %s did not join", vm.name)
			continue
		}
		if j.JoinToken != bootManagerToken || j.ListenAddr != "0.0.0.0:2377" || j.Availability != swarm.NodeAvailabilityActive ||
			len(j.RemoteAddrs) != 1 || j.RemoteAddrs[0] == vm.ip+":2377" {
			t.Errorf("manager %s joined with %+v: want the manager token through another manager", vm.name, redactJoin(j))
		}
	}

	e.mu.Lock()
	e.reads = nil
	e.mu.Unlock()
	for _, vm := range workers {
		if r := e.run(worker, vm.name, `join_swarm "$TOKEN_OBJECT"`); r.err != nil {
			t.Errorf("%s: join_swarm failed: %v", vm.name, r.err)
		}
	}
	e.mu.Lock()
	for _, j := range e.joins {
		joined[j.AdvertiseAddr] = j
	}
	for _, vm := range workers {
		j, ok := joined[vm.ip]
		if !ok || j.JoinToken != bootWorkerToken || len(j.RemoteAddrs) != 1 || strings.HasPrefix(j.RemoteAddrs[0], "10.0.1.") {
			t.Errorf("worker %s joined %t with %+v: want the worker token through a manager", vm.name, ok, redactJoin(j))
		}
	}
	reads := append([]string(nil), e.reads...)
	e.mu.Unlock()
	workerObject := "/storage/v1/b/" + e.bucket + "/o/" + url.PathEscape(ObjectName(e.cluster, group.KeyWorkerToken))
	if len(reads) == 0 {
		t.Errorf("the workers read nothing from the bucket")
	}
	for _, p := range reads {
		if p != workerObject {
			t.Errorf("a worker read %s: it may read %s only", p, workerObject)
		}
	}

	// A reboot: the winner takes the lock again (its id is in it), a
	// loser does not.
	for _, vm := range managers {
		r := e.run(manager, vm.name, `if take_init_lock; then log "lock: mine"; else log "lock: another's"; fi`)
		want := map[bool]string{true: "lock: mine", false: "lock: another's"}[vm == winner]
		if r.err != nil || !strings.Contains(r.stderr, want) {
			t.Errorf("%s rebooted: take_init_lock said %q (exit %v), want %q", vm.name, r.stderr, r.err, want)
		}
	}
	e.check()
}

// redactJoin is a join request fit for a test's message.
func redactJoin(j swarm.JoinRequest) swarm.JoinRequest {
	switch j.JoinToken {
	case bootWorkerToken:
		j.JoinToken = "<worker token>"
	case bootManagerToken:
		j.JoinToken = "<manager token>"
	}
	return j
}

// TestStartupJoinWithholdsRefusal: a worker whose first join the engine
// refuses, with a message echoing the token, logs the refusal without it
// and joins at the next try; a manager that does not listen yet is
// skipped without a join through it.
func TestStartupJoinWithholdsRefusal(t *testing.T) {
	managers := bootManagers(2)
	w := bootVM{name: "prod-web-w1", id: "2000000000000000001", ip: "10.0.1.1"}
	e := newBootEnv(t, append(managers, w)...)
	e.putObject(group.KeyWorkerToken, bootWorkerToken)
	os.WriteFile(filepath.Join(e.dir, "listen."+managers[1].ip), nil, 0o600) //nolint:errcheck
	e.refuse = 1
	r := e.run(e.script(StartupScript{Pool: "web", Role: policy.RoleWorker, JoinTimeout: 20 * time.Second}), w.name, `join_swarm "$TOKEN_OBJECT"`)
	if r.err != nil {
		t.Fatalf("join_swarm failed: %v", r.err)
	}
	for _, want := range []string{"no swarm manager on " + managers[0].ip + " yet", "failed: (message withheld: it holds the token)", "joined the swarm through " + managers[1].ip} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the script did not log %q", want)
		}
	}
	e.check()
}

// TestStartupJoinGivesUp: with no token in the bucket, a worker gives up
// at JOIN_TIMEOUT with the script's error and status 1, naming the object
// it waited for.
func TestStartupJoinGivesUp(t *testing.T) {
	w := bootVM{name: "prod-web-w1", id: "2000000000000000001", ip: "10.0.1.1"}
	e := newBootEnv(t, w)
	r := e.run(e.script(StartupScript{Pool: "web", Role: policy.RoleWorker, JoinTimeout: time.Second}), w.name, `join_swarm "$TOKEN_OBJECT"; log "not reached"`)
	var exit *exec.ExitError
	if !errors.As(r.err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit %v, want status 1", r.err)
	}
	for _, want := range []string{"waiting for gs://" + e.bucket + "/autarky%2Fprod%2Ftokens%2Fworker", "did not join the swarm within 1s"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the script did not log %q", want)
		}
	}
	if strings.Contains(r.stderr, "not reached") {
		t.Errorf("the script went on after giving up")
	}
	e.check()
}

// TestStartupAgentToken runs a manager's write_agent_token against the
// bucket: the agents' bearer token goes from its object into the token
// file, mode 0600, never an argument; a rerun (every boot reruns the
// script) leaves the file as it was, a rotated token replaces it, and a
// token of two words is refused naming the object.
func TestStartupAgentToken(t *testing.T) {
	m := bootManagers(1)[0]
	e := newBootEnv(t, m)
	script := e.script(StartupScript{Pool: policy.ManagerPoolName, Role: policy.RoleManager, JoinTimeout: 2 * time.Second,
		Agent: &StartupAgent{URL: "https://example.com/autarky-agent", SHA256: strings.Repeat("0f", 32)}})
	file := filepath.Join(e.dir, "etc", "autarky", "alert-token")
	set := "AGENT_TOKEN_FILE=" + startupQuote(file) + "\n"

	e.putObject(group.KeyAlertToken, bootAgentToken)
	r := e.run(script, m.name, set+"write_agent_token\nwrite_agent_token")
	if r.err != nil {
		t.Fatalf("write_agent_token failed: %v", r.err)
	}
	bootTokenFile(t, file, bootAgentToken)
	if n := strings.Count(r.stderr, "wrote the agent token"); n != 1 {
		t.Errorf("two runs wrote the token file %d times, want once", n)
	}

	e.putObject(group.KeyAlertToken, "rotated0"+bootAgentToken)
	if r := e.run(script, m.name, set+"write_agent_token"); r.err != nil {
		t.Fatalf("write_agent_token after a rotation failed: %v", r.err)
	}
	bootTokenFile(t, file, "rotated0"+bootAgentToken)

	e.putObject(group.KeyAlertToken, "two words")
	r = e.run(script, m.name, set+"write_agent_token; log 'not reached'")
	if r.err == nil || strings.Contains(r.stderr, "not reached") ||
		!strings.Contains(r.stderr, "the agent token in gs://"+e.bucket+"/autarky%2Fprod%2Fagent%2Falert-token is not one word") {
		t.Errorf("a token of two words was not refused naming its object (exit %v)", r.err)
	}
	bootTokenFile(t, file, "rotated0"+bootAgentToken)
	e.check()
}

func bootTokenFile(t *testing.T, file, token string) {
	t.Helper()
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatalf("no token file: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("the token file has mode %o, want 600", fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(file); string(b) != token+"\n" {
		t.Errorf("the token file holds another token than the object's")
	}
}
