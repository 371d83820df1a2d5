package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// systemd's own checker reads the shipped unit as systemd would: every
// key must be known to systemd 252 (Debian 12's), every value parse, and
// ExecStart name an executable. Any warning fails the test, since systemd
// only warns about a setting it then ignores: a misspelt sandboxing key
// would silently protect nothing. ExecStart's /usr/local/bin/autarky-agent
// is the agent built from this tree, bind-mounted there in a mount
// namespace of the check's own (nothing shows on the machine).
//
// systemd-analyze security then scores the unit's exposure offline (0 is
// a unit that can do nothing, 10 one that can do anything); it must stay
// "OK" (below 2), and the figure is logged.
//
// What this cannot check here: that the agent runs under the sandbox. This
// machine's PID 1 is not systemd, so no unit starts; the boot tests
// (internal/platform/aws TestBootScriptOnTestHosts) run the agent as the
// unit's user with its groups, no capability and no new privileges
// (testenv's systemctl stand-in carries those out), not under the
// namespaces and system call filter.
func TestUnitVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze is not installed: run `make tools` (Debian's systemd)")
	}
	testenv.RequireLocalPlatform(t) // root, for the mount namespace
	bin := filepath.Join(t.TempDir(), "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	agent := testenv.AgentBinary(t)
	if err := os.Rename(agent, filepath.Join(bin, "autarky-agent")); err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(t.TempDir(), UnitName)
	if err := os.WriteFile(unit, []byte(Unit), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `set -e
mount --bind "$1" /usr/local/bin
"$2" verify "$3"
echo '--- security'
"$2" security --offline=true --no-pager "$3"`
	out, err := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", bin, analyze, unit).CombinedOutput()
	verify, security, _ := strings.Cut(string(out), "--- security\n")
	if err != nil || strings.TrimSpace(verify) != "" {
		t.Fatalf("systemd-analyze verify %s: %v\n%s", UnitName, err, out)
	}
	i := strings.Index(security, "Overall exposure level for "+UnitName+": ")
	if i < 0 {
		t.Fatalf("systemd-analyze security printed no exposure level:\n%s", security)
	}
	level := strings.Fields(security[i+len("Overall exposure level for "+UnitName+": "):])
	if len(level) < 2 || level[1] != "OK" {
		t.Fatalf("the unit's exposure is %v, want OK:\n%s", level, security)
	}
	t.Logf("systemd-analyze security: exposure %s %s", level[0], level[1])
}

// Every setting of the unit is explained: in [Service], each run of
// settings has a comment right above it, and under "# Sandboxing." every
// key systemd has for taking rights away that the unit leaves out is
// named with the reason. The agent runs as systemd expects of it.
func TestUnitSettings(t *testing.T) {
	lines := strings.Split(Unit, "\n")
	sandbox := false
	prevComment := false
	inRun := false
	for n, line := range lines {
		switch {
		case strings.HasPrefix(line, "# Sandboxing."):
			sandbox = true
		case strings.HasPrefix(line, "["):
			sandbox = false
		}
		isComment := strings.HasPrefix(line, "#")
		isSetting := line != "" && !isComment && !strings.HasPrefix(line, "[")
		if sandbox && isSetting && !inRun && !prevComment {
			t.Errorf("%s line %d: %s has no comment saying what it is for", UnitName, n+1, line)
		}
		inRun = isSetting
		prevComment = isComment
	}
	for _, want := range []string{
		"Type=notify", "NotifyAccess=main", "Restart=always", "RestartSec=2", "WatchdogSec=60", "StartLimitIntervalSec=0",
		"User=" + User, "SupplementaryGroups=docker", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes",
		"PrivateTmp=yes", "PrivateDevices=yes", "ProtectKernelTunables=yes", "ProtectKernelModules=yes",
		"ProtectKernelLogs=yes", "ProtectControlGroups=yes", "CapabilityBoundingSet=", "SystemCallFilter=@system-service",
		"RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", "EnvironmentFile=" + EnvironmentFile,
		"ExecStart=/usr/local/bin/autarky-agent run $" + FlagsVariable,
	} {
		found := false
		for _, line := range lines {
			found = found || line == want
		}
		if !found {
			t.Errorf("%s lacks the line %s", UnitName, want)
		}
	}
	for _, left := range []string{"PrivateNetwork", "IPAddressDeny", "PrivateUsers", "DynamicUser"} {
		said := false
		for _, line := range lines {
			if strings.HasPrefix(line, left+"=") {
				t.Errorf("%s sets %s, which it says it leaves out", UnitName, left)
			}
			said = said || strings.HasPrefix(line, "#") && strings.Contains(line, left)
		}
		if !said {
			t.Errorf("%s does not say why it leaves %s out", UnitName, left)
		}
	}
}
