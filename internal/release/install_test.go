package release

import (
	"archive/zip"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// The guide whose commands this test runs.
const guide = "templates/guides/installing.md.tmpl"

// The guide's placeholders this test substitutes, and nothing else: where
// a release is published (the test's release directory instead), the
// platform (this machine's), and the mirror's absolute path in the CLI
// configuration.
const (
	docBase       = "https://github.com/autarky/terraform-provider-autarky/releases/download/v$VERSION"
	docOSArch     = "OS_ARCH=linux_amd64"
	docArch       = "ARCH=amd64"
	docMirrorPath = "/home/you/.terraform.d/autarky-mirror"
	docVersion    = "0.1.0"
)

// A release, built with `make release` as the guide says, installs the
// way a user installs it: downloaded, its signature and sums checked, laid
// out as a filesystem mirror that a plain `terraform init` reads (no
// dev_overrides, no provider factories), and applies examples/local.
func TestReleaseInstallFromMirror(t *testing.T) {
	testenv.RequireLocalPlatform(t)
	tf := terraformCLI(t)
	for _, tool := range []string{"gpg", "curl", "sha256sum", "make"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: run `%s`", tool, testenv.Setup)
		}
	}
	repo := testenv.RepoRoot(t)
	work := t.TempDir()
	home := filepath.Join(work, "home")
	dist := filepath.Join(work, "dist")
	mustMkdir(t, home)
	host := Platform{runtime.GOOS, runtime.GOARCH}

	// The maintainer: a key made with gpg, a release for this machine.
	maintainer := append(cleanEnv(), "HOME="+home, "PLATFORMS=host", "RELEASE_DIR="+dist)
	t.Cleanup(func() { gpgKill(home + "/.gnupg") })
	start := time.Now()
	bash(t, repo, maintainer, "cd \"$HOME\"\n"+testenv.DocBlock(t, guide, "release-key")+
		"cd "+shellQuote(repo)+"\n"+testenv.DocBlock(t, guide, "release-build"))
	t.Logf("make release for %s: %s", host, time.Since(start).Round(time.Second))

	want := []string{
		AgentArchive(docVersion, host.Arch), AgentSums(docVersion), AgentSums(docVersion) + ".sig",
		ProviderZip(docVersion, host), ProviderSums(docVersion), ProviderSums(docVersion) + ".sig", ProviderManifest(docVersion),
	}
	if host.OS != AgentOS {
		want = want[3:]
	}
	sort.Strings(want)
	entries, err := os.ReadDir(dist)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("release files:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	checkZip(t, filepath.Join(dist, ProviderZip(docVersion, host)), ProviderBinary(docVersion, host))
	manifest, _ := os.ReadFile(filepath.Join(dist, ProviderManifest(docVersion)))
	if orig, _ := os.ReadFile(filepath.Join(repo, ManifestFile)); !bytes.Equal(manifest, orig) {
		t.Errorf("the manifest is not a copy of %s:\n%s", ManifestFile, manifest)
	}
	pub := filepath.Join(home, "autarky-signing-key.asc")
	for _, set := range [][]string{{ProviderSums(docVersion), ProviderZip(docVersion, host), ProviderManifest(docVersion)},
		{AgentSums(docVersion), AgentArchive(docVersion, host.Arch)}} {
		checkSums(t, dist, set[0], set[1:])
		checkSignature(t, pub, filepath.Join(dist, set[0]))
	}

	// The user: downloads, verifies and lays out the mirror as the guide
	// says, in a keyring of their own.
	user := filepath.Join(work, "user")
	mustMkdir(t, user)
	copyFile(t, pub, filepath.Join(user, "autarky-signing-key.asc"))
	userEnv := append(cleanEnv(), "HOME="+home, "GNUPGHOME="+filepath.Join(work, "usergnupg"))
	mustMkdir(t, filepath.Join(work, "usergnupg"))
	t.Cleanup(func() { gpgKill(filepath.Join(work, "usergnupg")) })
	download := testenv.DocBlock(t, guide, "mirror-download")
	for _, ph := range []string{docBase, docOSArch} {
		if !strings.Contains(download, ph) {
			t.Fatalf("the guide's mirror-download block has no %q to substitute", ph)
		}
	}
	download = strings.NewReplacer(docBase, "file://"+dist, docOSArch, "OS_ARCH="+host.String()).Replace(download)
	script := download + testenv.DocBlock(t, guide, "mirror-verify") + testenv.DocBlock(t, guide, "mirror-layout")
	if host.OS == AgentOS {
		agent := testenv.DocBlock(t, guide, "agent-verify")
		if !strings.Contains(agent, docArch) {
			t.Fatalf("the guide's agent-verify block has no %q to substitute", docArch)
		}
		script += strings.Replace(agent, docArch, "ARCH="+host.Arch, 1)
	}
	out := bash(t, user, userEnv, script)
	for _, w := range []string{"Good signature", ProviderZip(docVersion, host) + ": OK", "autarky-agent " + docVersion + "\n"} {
		if w == "autarky-agent "+docVersion+"\n" && host.OS != AgentOS {
			continue
		}
		if !strings.Contains(out, w) {
			t.Fatalf("the user's download, verification and layout said no %q:\n%s", w, out)
		}
	}
	mirror := filepath.Join(home, ".terraform.d", "autarky-mirror")
	if _, err := os.Stat(filepath.Join(mirror, "registry.terraform.io", "autarky", "autarky", ProviderZip(docVersion, host))); err != nil {
		t.Fatalf("the mirror's packed layout: %v", err)
	}
	// A tampered archive fails the guide's check.
	tampered := filepath.Join(work, "tampered")
	mustMkdir(t, tampered)
	for _, f := range []string{ProviderZip(docVersion, host), ProviderSums(docVersion), ProviderSums(docVersion) + ".sig", "autarky-signing-key.asc"} {
		copyFile(t, filepath.Join(user, f), filepath.Join(tampered, f))
	}
	appendFile(t, filepath.Join(tampered, ProviderZip(docVersion, host)), "x")
	if b, err := bashErr(tampered, userEnv, "VERSION="+docVersion+"\n"+testenv.DocBlock(t, guide, "mirror-verify")); err == nil || !strings.Contains(b, "FAILED") {
		t.Errorf("the guide's verification of a tampered zip: %v\n%s", err, b)
	}

	// The CLI configuration of the guide, and a plain terraform init and
	// apply of examples/local.
	cliConfig := testenv.DocBlock(t, guide, "mirror-cli-config")
	if !strings.Contains(cliConfig, docMirrorPath) {
		t.Fatalf("the guide's CLI configuration has no %q to substitute", docMirrorPath)
	}
	rc := filepath.Join(home, ".terraformrc")
	if err := os.WriteFile(rc, []byte(strings.ReplaceAll(cliConfig, docMirrorPath, mirror)), 0o644); err != nil {
		t.Fatal(err)
	}
	stateDir := testenv.StateDir(t)
	cluster := filepath.Join(work, "cluster")
	mustMkdir(t, cluster)
	copyFile(t, filepath.Join(repo, "examples", "local", "main.tf"), filepath.Join(cluster, "main.tf"))
	tfEnv := append(cleanEnv(), "HOME="+home, "TF_CLI_CONFIG_FILE="+rc, "AUTARKY_STATE_DIR="+stateDir, "TF_IN_AUTOMATION=1",
		"PATH="+filepath.Dir(tf)+":"+os.Getenv("PATH"))
	initOut := bash(t, cluster, tfEnv, testenv.DocBlock(t, guide, "mirror-init"))
	if !strings.Contains(initOut, "Installed autarky/autarky v"+docVersion) {
		t.Fatalf("terraform init did not install autarky/autarky v%s from the mirror:\n%s", docVersion, initOut)
	}
	lock, err := os.ReadFile(filepath.Join(cluster, ".terraform.lock.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	if h := zipHash1(t, filepath.Join(dist, ProviderZip(docVersion, host))); !strings.Contains(string(lock), `"`+h+`"`) {
		t.Errorf(".terraform.lock.hcl has not the zip's hash %s:\n%s", h, lock)
	}
	destroyed := false
	t.Cleanup(func() {
		if !destroyed {
			_, _ = bashErr(cluster, tfEnv, "terraform destroy -auto-approve -no-color")
		}
	})
	bash(t, cluster, tfEnv, "terraform apply -auto-approve -no-color")
	dockerHost := strings.TrimSpace(bash(t, cluster, tfEnv, "terraform output -raw docker_host"))
	nodes := testenv.Docker(t, dockerHost, "node", "ls", "--format", "{{.Status}} {{.ManagerStatus}}")
	if ready := strings.Count(nodes, "Ready"); ready != 5 {
		t.Errorf("docker -H %s node ls: %d nodes Ready, want 3 managers and 2 workers:\n%s", dockerHost, ready, nodes)
	}
	bash(t, cluster, tfEnv, "terraform destroy -auto-approve -no-color")
	destroyed = true
	if left := testenv.Leftovers(stateDir); len(left) > 0 {
		t.Errorf("left after terraform destroy:\n%s", strings.Join(left, "\n"))
	}

	// What is not a release version is refused before anything is built.
	b, err := bashErr(repo, maintainer, "make release VERSION=garbage SIGNING_KEY=\"$HOME/release-key.asc\"")
	if err == nil || !strings.Contains(b, `VERSION="garbage" is not a release version: want MAJOR.MINOR.PATCH`) {
		t.Errorf("make release VERSION=garbage: %v\n%s", err, b)
	}
}

// terraformCLI is the pinned Terraform the tests run.
func terraformCLI(t *testing.T) string {
	t.Helper()
	tf := os.Getenv("TF_ACC_TERRAFORM_PATH")
	if tf == "" {
		home, _ := os.UserHomeDir()
		tf = filepath.Join(home, ".cache", "autarky", "terraform-1.5.7", "terraform")
	}
	if _, err := os.Stat(tf); err != nil {
		t.Fatalf("the Terraform CLI is not at TF_ACC_TERRAFORM_PATH=%s: run `%s`", tf, testenv.Setup)
	}
	return tf
}

// cleanEnv is the test's environment without what would change how
// Terraform, gpg or make behave for a user (their CLI configuration,
// keyring, a VERSION of the caller's).
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "HOME", "GNUPGHOME", "TF_CLI_CONFIG_FILE", "VERSION", "PLATFORMS", "RELEASE_DIR", "SIGNING_KEY", "SIGNING_KEY_PASSPHRASE",
			"AGENT_TAGS", "TF_PLUGIN_CACHE_DIR", "TF_LOG", "AUTARKY_STATE_DIR", "MAKEFLAGS", "MAKELEVEL":
			continue
		}
		out = append(out, kv)
	}
	// go (make release) keeps its caches where the caller's are.
	for _, k := range []string{"GOCACHE", "GOMODCACHE", "GOPATH"} {
		if v, err := exec.Command("go", "env", k).Output(); err == nil {
			out = append(out, k+"="+strings.TrimSpace(string(v)))
		}
	}
	return out
}

// bash runs script in dir, failing the test (with its output) if it fails.
func bash(t *testing.T, dir string, env []string, script string) string {
	t.Helper()
	out, err := bashErr(dir, env, script)
	if err != nil {
		t.Fatalf("in %s:\n%s\nfailed: %v\n%s", dir, script, err, out)
	}
	return out
}

func bashErr(dir string, env []string, script string) (string, error) {
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir, cmd.Env = dir, env
	b, err := cmd.CombinedOutput()
	return string(b), err
}

// gpgKill stops the gpg-agent a keyring's gpg started.
func gpgKill(gnupghome string) {
	cmd := exec.Command("gpgconf", "--kill", "all")
	cmd.Env = append(os.Environ(), "GNUPGHOME="+gnupghome)
	_ = cmd.Run()
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// checkZip: the zip holds the executable, alone, by the name Terraform runs.
func checkZip(t *testing.T, path, binary string) {
	t.Helper()
	r, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if len(r.File) != 1 || r.File[0].Name != binary || r.File[0].Mode()&0o111 == 0 {
		var names []string
		for _, f := range r.File {
			names = append(names, fmt.Sprintf("%s %v", f.Name, f.Mode()))
		}
		t.Fatalf("%s holds %v, want the executable %s alone", filepath.Base(path), names, binary)
	}
}

// checkSums: the sums file names exactly files, each with its SHA-256.
func checkSums(t *testing.T, dir, sums string, files []string) {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, sums))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	listed := map[string]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		sum, name, ok := strings.Cut(s.Text(), "  ")
		if !ok {
			t.Fatalf("%s: line %q is not \"<sha256>  <file>\"", sums, s.Text())
		}
		listed[name] = sum
	}
	if len(listed) != len(files) {
		t.Errorf("%s lists %v, want %v", sums, listed, files)
	}
	for _, name := range files {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(b)
		if listed[name] != hex.EncodeToString(h[:]) {
			t.Errorf("%s: %s has %q, the file's SHA-256 is %x", sums, name, listed[name], h)
		}
	}
}

// checkSignature: the .sig is a binary detached signature of the sums by
// the public key, and it fails for sums changed by one byte.
func checkSignature(t *testing.T, pubFile, sums string) {
	t.Helper()
	pub, err := os.ReadFile(pubFile)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(pub))
	if err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(sums)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := os.ReadFile(sums + ".sig")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.HasPrefix(sig, []byte("-----BEGIN")) {
		t.Errorf("%s.sig is armored; the registries take a binary signature", filepath.Base(sums))
	}
	if _, err := openpgp.CheckDetachedSignature(ring, bytes.NewReader(body), bytes.NewReader(sig), nil); err != nil {
		t.Errorf("%s.sig does not verify with the public key: %v", filepath.Base(sums), err)
	}
	tampered := append([]byte{}, body...)
	tampered[0] ^= 1
	if _, err := openpgp.CheckDetachedSignature(ring, bytes.NewReader(tampered), bytes.NewReader(sig), nil); err == nil {
		t.Errorf("%s.sig verifies a tampered %s", filepath.Base(sums), filepath.Base(sums))
	}
}

// zipHash1 is the "h1:" hash Terraform records in .terraform.lock.hcl for
// a provider package: the SHA-256 of the list of "<sha256 hex>  <name>\n"
// of the package's files, sorted by name (Go's dirhash "h1"), in base64.
func zipHash1(t *testing.T, path string) string {
	t.Helper()
	r, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var lines []string
	for _, f := range r.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		_, err = io.Copy(h, rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, fmt.Sprintf("%x  %s\n", h.Sum(nil), f.Name))
	}
	sort.Strings(lines)
	sum := sha256.Sum256([]byte(strings.Join(lines, "")))
	return "h1:" + base64.StdEncoding.EncodeToString(sum[:])
}

func mustMkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}
