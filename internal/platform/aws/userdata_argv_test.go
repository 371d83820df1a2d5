package aws

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// The canary tokens the stubs hand out; they look like Swarm's.
const (
	canaryWorkerToken  = "SWMTKN-1-canaryworker0argv0test0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6-w0rk3rcanary0000000000000"
	canaryManagerToken = "SWMTKN-1-canarymanager0argv0test0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5-m4n4g3rcanary000000000000"
	// The agents' bearer tokens: the one the provider made, and the one
	// an operator rotated it to.
	canaryAgentToken   = "agent0canary0c4f1e2d3b4a5968778695a4b3c2d1e0f0e1d2c3b4a59687786"
	canaryRotatedToken = "agent0rotated0canary0Zm9vYmFy-._~+/="
)

// argvStubs are the executables the boot script's token paths run, put
// alone on PATH: every one appends its argument list, one invocation a
// line, to $STUB_DIR/argv. aws, curl and docker stand in for the real
// ones: they hand out the canary tokens the way the real ones print them
// (on standard output) and keep a copy (and the mode) of every request
// file they are given in $STUB_DIR/got. The others run the real command,
// sleep only briefly. A command the script runs that is not here is not
// found, and the test fails: nothing runs unrecorded.
var argvStubs = map[string]string{
	"aws": `case "$1 $2" in
"ssm get-parameter")
	name=""
	while [ $# -gt 0 ]; do [ "$1" = --name ] && name=$2; shift; done
	case $name in
	*/tokens/worker) exec cat "$STUB_DIR/token.worker" ;;
	*/tokens/manager) exec cat "$STUB_DIR/token.manager" ;;
	*/agent/alert-token) exec cat "$STUB_DIR/${AGENT_TOKEN_SOURCE:-token.agent}" ;;
	esac
	echo "An error occurred (ParameterNotFound)" >&2
	exit 254
	;;
"ssm put-parameter")
	for a in "$@"; do case $a in file://*) f=${a#file://} ;; esac; done
	n=$$
	cp "$f" "$STUB_DIR/got/put-$n"
	stat -c %a "$f" >"$STUB_DIR/got/put-$n.mode"
	echo "$f" >>"$STUB_DIR/paths"
	echo '{"Version": 1, "Tier": "Standard"}'
	;;
"ec2 describe-instances") printf '10.0.0.5\t10.0.0.7\t10.0.0.8\n' ;;
*) echo "stub aws: unexpected $*" >&2; exit 2 ;;
esac
`,
	"curl": `body="" out="" sock="" url=""
while [ $# -gt 0 ]; do
	case $1 in
	--unix-socket) sock=$2; shift ;;
	--data-binary) body=${2#@}; shift ;;
	-o) out=$2; shift ;;
	-w | -H | --max-time) shift ;;
	-*) ;;
	*) url=$1 ;;
	esac
	shift
done
case $url in
https://*:2377/)
	# The probe for a listening manager: the addresses in $STUB_DIR/refuse
	# refuse the connection (curl's exit status 7), every other listens.
	addr=${url#https://}
	grep -qxF "${addr%:2377/}" "$STUB_DIR/refuse" 2>/dev/null && exit 7
	exit 0
	;;
esac
[ "$sock" = /var/run/docker.sock ] && [ "$url" = http://localhost/swarm/join ] || { echo "stub curl: unexpected call" >&2; exit 2; }
n=$(($(cat "$STUB_DIR/curl.calls" 2>/dev/null || echo 0) + 1))
echo "$n" >"$STUB_DIR/curl.calls"
cp "$body" "$STUB_DIR/got/join-$n"
stat -c %a "$body" >"$STUB_DIR/got/join-$n.mode"
echo "$body" >>"$STUB_DIR/paths"
code=$(sed -n "${n}p" "$STUB_DIR/curl.codes")
[ -n "$code" ] || code=$(tail -n 1 "$STUB_DIR/curl.codes")
if [ "$code" = 200 ]; then
	: >"$out"
else
	# The engine's message echoes the token, as some errors might.
	tok=$(sed -n 's/.*"JoinToken": "\([^"]*\)".*/\1/p' "$body")
	printf '{"message":"invalid join token %s"}\n' "$tok" >"$out"
fi
printf '%s' "$code"
`,
	"docker": `case "$1 $2" in
"swarm join-token") [ "$3" = -q ] && exec cat "$STUB_DIR/token.$4" ;;
"swarm init") exit 0 ;;
esac
echo "stub docker: unexpected $*" >&2
exit 2
`,
	"sleep":  "exec sleep 0.1\n",
	"date":   "exec date \"$@\"\n",
	"mktemp": "exec mktemp \"$@\"\n",
	"rm":     "exec rm \"$@\"\n",
	"cat":    "exec cat \"$@\"\n",
	"mkdir":  "exec mkdir \"$@\"\n",
	"mv":     "exec mv \"$@\"\n",
}

type argvRun struct {
	dir, argv, stderr string
	err               error
}

// runTokenPath runs the rendered script's functions, without main, then
// calls, with shell, the stubs alone on PATH, and curl answering the
// join requests with the HTTP statuses codes (the last one repeats).
func runTokenPath(t *testing.T, shell, script, calls string, codes ...string) argvRun {
	t.Helper()
	body, ok := strings.CutSuffix(script, "\nmain \"$@\"\n")
	if !ok {
		t.Fatalf("the script does not end with main \"$@\"")
	}
	dir := t.TempDir()
	for _, d := range []string{"bin", "got", "tmp"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for name, stub := range argvStubs {
		text := "#!/bin/sh\n{ printf '%s' " + name + "; for a in \"$@\"; do printf ' %s' \"$a\"; done; echo; } >>\"$STUB_DIR/argv\"\n" +
			"PATH=/usr/bin:/bin\n" + stub
		if err := os.WriteFile(filepath.Join(dir, "bin", name), []byte(text), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for file, text := range map[string]string{
		"token.worker": canaryWorkerToken + "\n", "token.manager": canaryManagerToken + "\n",
		"token.agent": canaryAgentToken + "\n", "token.rotated": canaryRotatedToken + "\n",
		"token.bad":  "two words " + canaryAgentToken + "\n",
		"curl.codes": strings.Join(codes, "\n") + "\n", "argv": "",
	} {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A script that loops (joining until JOIN_TIMEOUT) fails the test
	// within 20 seconds.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, shell, "-c", body+"\nINSTANCE_ID=i-0abc\nPRIVATE_IP=10.0.0.5\n"+
		// A script without make_secret_dir (the one before it) still runs.
		"! command -v make_secret_dir >/dev/null || make_secret_dir\n"+calls+"\n")
	cmd.Env = []string{"PATH=" + filepath.Join(dir, "bin"), "STUB_DIR=" + dir, "TMPDIR=" + filepath.Join(dir, "tmp")}
	cmd.WaitDelay = time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Errorf("the script was still running after 20 seconds")
	}
	argv, rerr := os.ReadFile(filepath.Join(dir, "argv"))
	if rerr != nil {
		t.Fatal(rerr)
	}
	r := argvRun{dir: dir, argv: string(argv), stderr: stderr.String(), err: err}
	t.Logf("%s: exit %v\nstderr:\n%sargv:\n%s", shell, err, r.stderr, r.argv)

	for _, tok := range []string{canaryWorkerToken, canaryManagerToken, canaryAgentToken, canaryRotatedToken} {
		if strings.Contains(r.argv, tok) {
			t.Errorf("a command had the token on its argument list")
		}
		if strings.Contains(r.stderr, tok) {
			t.Errorf("the script printed the token")
		}
	}
	// The private directory and every request file in it are gone.
	if left, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(left) != 0 {
		t.Errorf("%d files left in TMPDIR after the script exited: %v", len(left), left)
	}
	paths, _ := os.ReadFile(filepath.Join(dir, "paths"))
	for _, p := range strings.Fields(string(paths)) {
		if !strings.HasPrefix(p, filepath.Join(dir, "tmp")+"/") {
			t.Errorf("request file %s is outside the private directory", p)
		}
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("request file %s outlived the script", p)
		}
	}
	return r
}

// got reads the request file a stub kept, checks it had mode 0600, and
// decodes it, refusing fields v does not have.
func (r argvRun) got(t *testing.T, name string, v any) {
	t.Helper()
	mode, err := os.ReadFile(filepath.Join(r.dir, "got", name+".mode"))
	if err != nil {
		t.Fatalf("no request file %s: %v", name, err)
	}
	if m := strings.TrimSpace(string(mode)); m != "600" {
		t.Errorf("request file %s had mode %s, want 600", name, m)
	}
	b, err := os.ReadFile(filepath.Join(r.dir, "got", name))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("request file %s is not JSON: %v\n%s", name, err, b)
	}
}

// TestUserDataJoinTokenNotInArgv runs a worker's join for real, with sh
// and bash, against stub aws, curl and docker that record every argument
// list: the worker token goes from the AWS CLI's output to the engine's
// join request, a 0600 file curl posts to the engine's socket, and no
// process ever has it among its arguments. The first manager's engine
// refuses (its message, which echoes the token, is withheld), the next
// one admits the node. Without the change the script ran `docker swarm
// join --token <token>`, which the docker stub refuses and the argv log
// shows.
func TestUserDataJoinTokenNotInArgv(t *testing.T) {
	script, err := RenderUserData(UserData{Cluster: "prod", Pool: "web", Role: policy.RoleWorker, Region: testRegion, ManagerGroup: "prod-managers"})
	if err != nil {
		t.Fatal(err)
	}
	for _, shell := range []string{"sh", "bash"} {
		t.Run(shell, func(t *testing.T) {
			r := runTokenPath(t, shell, script, `join_swarm "$TOKEN_PARAM"`, "500", "200")
			if r.err != nil {
				t.Fatalf("join_swarm failed: %v", r.err)
			}
			for _, want := range []string{"join through 10.0.0.7 failed: (message withheld: it holds the token)", "joined the swarm through 10.0.0.8"} {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("the script did not log %q", want)
				}
			}
			for i, addr := range []string{"10.0.0.7:2377", "10.0.0.8:2377"} {
				// The Engine API's own request type: a misspelt field fails.
				var req swarm.JoinRequest
				r.got(t, "join-"+string(rune('1'+i)), &req)
				want := swarm.JoinRequest{ListenAddr: "0.0.0.0:2377", AdvertiseAddr: "10.0.0.5", JoinToken: canaryWorkerToken,
					Availability: swarm.NodeAvailabilityActive, RemoteAddrs: []string{addr}}
				if !reflect.DeepEqual(req, want) {
					t.Errorf("join request %d: %+v, want %+v", i+1, req, want)
				}
			}
			if strings.Contains(r.argv, "docker swarm join") {
				t.Errorf("the script ran docker swarm join")
			}
		})
	}
}

// TestUserDataJoinSkipsManagerNotListening: managers boot at once, and
// one that refuses connections on 2377 is not a swarm manager yet: the
// join goes on to the next address without asking the engine to join
// through it (which, run for real in TestBootScriptOnTestHosts, cost the
// engine's whole join attempt, about 20 s).
func TestUserDataJoinSkipsManagerNotListening(t *testing.T) {
	script, err := RenderUserData(UserData{Cluster: "prod", Pool: "web", Role: policy.RoleWorker, Region: testRegion, ManagerGroup: "prod-managers"})
	if err != nil {
		t.Fatal(err)
	}
	r := runTokenPath(t, "sh", script, `printf '10.0.0.7\n' >"$STUB_DIR/refuse"; join_swarm "$TOKEN_PARAM"`, "200")
	if r.err != nil {
		t.Fatalf("join_swarm failed: %v", r.err)
	}
	for _, want := range []string{"no swarm manager on 10.0.0.7 yet", "joined the swarm through 10.0.0.8"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the script did not log %q", want)
		}
	}
	var req swarm.JoinRequest
	r.got(t, "join-1", &req)
	if !reflect.DeepEqual(req.RemoteAddrs, []string{"10.0.0.8:2377"}) {
		t.Errorf("the first join request went through %v, want 10.0.0.8:2377", req.RemoteAddrs)
	}
}

// TestUserDataJoinGivesUp: when every engine refuses, the join still
// gives up at JOIN_TIMEOUT with the script's error, exit status 1, and
// the exit trap removes the private directory.
func TestUserDataJoinGivesUp(t *testing.T) {
	script, err := RenderUserData(UserData{Cluster: "prod", Pool: "web", Role: policy.RoleWorker, Region: testRegion,
		ManagerGroup: "prod-managers", JoinTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	r := runTokenPath(t, "sh", script, `join_swarm "$TOKEN_PARAM"; log "not reached"`, "503")
	var exit *exec.ExitError
	if !errors.As(r.err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit %v, want status 1", r.err)
	}
	if !strings.Contains(r.stderr, "did not join the swarm within 1s") || strings.Contains(r.stderr, "not reached") {
		t.Errorf("the script did not give up with its error")
	}
}

// TestUserDataStoreTokensNotInArgv runs the first manager's init for real
// (sh and bash, stubs as above): docker prints both join tokens, and each
// reaches `aws ssm put-parameter` only inside its --cli-input-json file
// (0600, removed after), a SecureString under the cluster's KMS key;
// then the manager joins with the manager token the same way a worker
// does. Without the change the tokens were `--value` arguments.
func TestUserDataStoreTokensNotInArgv(t *testing.T) {
	script, err := RenderUserData(UserData{Cluster: "prod", Pool: policy.ManagerPoolName, Role: policy.RoleManager,
		Region: testRegion, ManagerGroup: "prod-managers", KMSKeyID: "alias/autarky"})
	if err != nil {
		t.Fatal(err)
	}
	for _, shell := range []string{"sh", "bash"} {
		t.Run(shell, func(t *testing.T) {
			r := runTokenPath(t, shell, script, "init_swarm\njoin_swarm \"$TOKEN_PARAM\"", "200")
			if r.err != nil {
				t.Fatalf("init_swarm failed: %v", r.err)
			}
			puts, _ := filepath.Glob(filepath.Join(r.dir, "got", "put-*[0-9]"))
			stored := map[string]string{}
			for _, p := range puts {
				var req struct {
					Name, Type, KeyId, Value string
					Overwrite                bool
				}
				r.got(t, filepath.Base(p), &req)
				if req.Type != "SecureString" || req.KeyId != "alias/autarky" || !req.Overwrite {
					t.Errorf("put-parameter request %+v: want an overwriting SecureString under alias/autarky", req)
				}
				stored[req.Name] = req.Value
			}
			want := map[string]string{TokenParameter("prod", policy.RoleWorker): canaryWorkerToken,
				TokenParameter("prod", policy.RoleManager): canaryManagerToken}
			if !reflect.DeepEqual(stored, want) {
				t.Errorf("stored %v, want %v", stored, want)
			}
			if n := strings.Count(r.argv, "--cli-input-json file://"); n != 2 {
				t.Errorf("%d put-parameter calls with --cli-input-json, want 2", n)
			}
			var req swarm.JoinRequest
			r.got(t, "join-1", &req)
			if req.JoinToken != canaryManagerToken {
				t.Errorf("the manager joined with another token than the manager token")
			}
		})
	}
}

// TestUserDataNoTokenArgument reads the rendered scripts: no command
// takes a token flag (`--token`, `--value`), `docker swarm join` is
// gone, and every logical line that expands $token is an assignment, a
// case pattern, a call of the script's own functions, or printf (a
// builtin) redirected into a file; JoinToken appears only in such a
// printf.
func TestUserDataNoTokenArgument(t *testing.T) {
	for _, u := range []UserData{
		{Cluster: "prod", Pool: policy.ManagerPoolName, Role: policy.RoleManager, Region: testRegion, ManagerGroup: "prod-managers", KMSKeyID: "alias/autarky",
			Agent: &AgentBoot{URL: "https://example.com/autarky-agent", SHA256: strings.Repeat("0f", 32)}},
		{Cluster: "prod", Pool: "web", Role: policy.RoleWorker, Region: testRegion, ManagerGroup: "prod-managers"},
	} {
		script, err := RenderUserData(u)
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{"--token", `--value "$token`, "--value \"${token", "swarm join ", "set -x"} {
			if strings.Contains(script, bad) {
				t.Errorf("%s user data holds %q", u.Role, bad)
			}
		}
		funcs := map[string]bool{}
		var lines []string
		cont := ""
		for _, l := range strings.Split(script, "\n") {
			if name, ok := strings.CutSuffix(l, "() {"); ok && !strings.ContainsAny(name, " \t") {
				funcs[name] = true
			}
			if s, ok := strings.CutSuffix(l, "\\"); ok {
				cont += s
				continue
			}
			lines = append(lines, strings.TrimSpace(cont+l))
			cont = ""
		}
		uses := 0
		for _, l := range lines {
			if strings.HasPrefix(l, "#") || !strings.Contains(l, "$token") && !strings.Contains(l, "${token") && !strings.Contains(l, "JoinToken") {
				continue
			}
			uses++
			first := strings.Fields(strings.TrimPrefix(l, "if "))[0]
			switch {
			case strings.HasPrefix(first, "token="), l == `*"$token"*) out="(message withheld: it holds the token)" ;;`, funcs[first]:
			case first == "printf" && strings.Contains(l, `>"$`) && !strings.Contains(l, "|"):
			default:
				t.Errorf("%s user data: a command may see the token: %s", u.Role, l)
			}
		}
		if uses == 0 {
			t.Fatalf("%s user data never uses $token: the check checks nothing", u.Role)
		}
	}
}

// TestUserDataAgentTokenNotInArgv runs a manager's write_agent_token for
// real (sh and bash, stubs as above): the agents' bearer token goes from
// the AWS CLI's output (its SecureString parameter, decrypted with the
// instance role) into the token file, mode 0600, without ever being an
// argument; a rerun (a reboot) leaves the file as it was, a token rotated
// in SSM replaces it, and a token that is not one word is refused with
// the parameter's name and without being printed. The unit hands the
// file to the agent with --alert-token-file. Without the change there is
// no write_agent_token and the unit passes no token.
func TestUserDataAgentTokenNotInArgv(t *testing.T) {
	script, err := RenderUserData(UserData{Cluster: "prod", Pool: policy.ManagerPoolName, Role: policy.RoleManager,
		Region: testRegion, ManagerGroup: "prod-managers",
		Agent: &AgentBoot{URL: "https://example.com/autarky-agent", SHA256: strings.Repeat("0f", 32)}})
	if err != nil {
		t.Fatal(err)
	}
	param := AlertTokenParameter("prod")
	for _, want := range []string{
		"AGENT_TOKEN_PARAM=" + shellQuote(param) + "\n",
		"AGENT_TOKEN_FILE=" + shellQuote(policy.AgentTokenFile) + "\n",
		" --alert-token-file $AGENT_TOKEN_FILE ",
		"start_agent() {\n\twrite_agent_token\n",
	} {
		if !strings.Contains(script, want) {
			t.Errorf("the manager's user data lacks %q", want)
		}
	}
	for _, line := range strings.Split(script, "\n") {
		if strings.HasPrefix(line, "ExecStart=") && !strings.Contains(line, "--alert-token-file $AGENT_TOKEN_FILE") {
			t.Errorf("the unit runs the agent without its token: %s", line)
		}
	}
	// The file the test's boot writes, in place of /etc/autarky.
	const setFile = `AGENT_TOKEN_FILE=$STUB_DIR/etc/autarky/alert-token` + "\n"
	for _, shell := range []string{"sh", "bash"} {
		t.Run(shell, func(t *testing.T) {
			r := runTokenPath(t, shell, script, setFile+"write_agent_token\nwrite_agent_token", "200")
			if r.err != nil {
				t.Fatalf("write_agent_token failed: %v", r.err)
			}
			file := filepath.Join(r.dir, "etc", "autarky", "alert-token")
			checkTokenFile(t, file, canaryAgentToken)
			if n := strings.Count(r.stderr, "wrote the agent token"); n != 1 {
				t.Errorf("two runs wrote the token file %d times, want once: the rerun at reboot must change nothing", n)
			}
			if got := strings.Count(r.argv, "aws ssm get-parameter --region "+testRegion+" --name "+param+" --with-decryption"); got != 2 {
				t.Errorf("%d decrypted reads of %s, want 2", got, param)
			}
			left, _ := filepath.Glob(file + ".*")
			if len(left) != 0 {
				t.Errorf("files left beside the token file: %v", left)
			}

			r = runTokenPath(t, shell, script, setFile+"write_agent_token\nAGENT_TOKEN_SOURCE=token.rotated; export AGENT_TOKEN_SOURCE\nwrite_agent_token", "200")
			if r.err != nil {
				t.Fatalf("write_agent_token after a rotation failed: %v", r.err)
			}
			checkTokenFile(t, filepath.Join(r.dir, "etc", "autarky", "alert-token"), canaryRotatedToken)

			r = runTokenPath(t, shell, script, setFile+"AGENT_TOKEN_SOURCE=token.bad; export AGENT_TOKEN_SOURCE\nwrite_agent_token; log 'not reached'", "200")
			var exit *exec.ExitError
			if !errors.As(r.err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("a token of two words: exit %v, want status 1", r.err)
			}
			if !strings.Contains(r.stderr, "the agent token in "+param+" is not one word") || strings.Contains(r.stderr, "not reached") {
				t.Errorf("a token of two words was not refused naming %s", param)
			}
			if _, err := os.Stat(filepath.Join(r.dir, "etc", "autarky", "alert-token")); !os.IsNotExist(err) {
				t.Errorf("a refused token was written: %v", err)
			}
		})
	}
}

// checkTokenFile checks that file holds token (and a newline), mode 0600.
func checkTokenFile(t *testing.T, file, token string) {
	t.Helper()
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatalf("no token file: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("the token file has mode %o, want 600", fi.Mode().Perm())
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != token+"\n" {
		t.Errorf("the token file holds another token than the parameter's")
	}
}
