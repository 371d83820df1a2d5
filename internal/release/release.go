// Package release builds Autarky's release artifacts the way the Terraform
// and OpenTofu registries take a provider release, with the agent's
// archives beside them (`make release`, through ./internal/release/cmd/release).
//
// A registry release is a directory of files named from the version alone:
//
//	terraform-provider-autarky_<V>_<os>_<arch>.zip   one per platform, holding
//	                                                 terraform-provider-autarky_v<V>(.exe)
//	terraform-provider-autarky_<V>_manifest.json     terraform-registry-manifest.json
//	terraform-provider-autarky_<V>_SHA256SUMS        sha256sum format, zips and manifest
//	terraform-provider-autarky_<V>_SHA256SUMS.sig    detached, binary OpenPGP signature
//
// Terraform checks a download against SHA256SUMS, and SHA256SUMS against
// the signature and the key the registry holds for the namespace, so the
// signature is what makes the archives trustworthy: it is made here, in
// Go (github.com/ProtonMail/go-crypto, the library Terraform itself
// verifies with), from an ASCII-armored private key file, so that
// building a release needs no gpg, no agent and no keyring.
//
// The agent's archives are autarky-agent_<V>_linux_<arch>.tar.gz with their
// own autarky-agent_<V>_SHA256SUMS and .sig, signed by the same key: the
// registries read the provider's SHA256SUMS and nothing else of a release,
// and a second sums file keeps the agent's files out of what they check.
package release

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
)

// Names of the binaries and of the registry manifest in the repository.
const (
	ProviderName = "terraform-provider-autarky"
	AgentName    = "autarky-agent"
	ManifestFile = "terraform-registry-manifest.json"
)

// semver is a release version as the registries take it: MAJOR.MINOR.PATCH
// with an optional pre-release, no leading v and no build metadata (a
// registry orders versions by semver precedence, which ignores build
// metadata, so two releases differing only there could not be told apart).
var semver = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)` +
	`(-(0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)(\.(0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*))*)?$`)

const versionRule = "MAJOR.MINOR.PATCH with an optional -PRERELEASE, such as 0.1.0 or 1.2.0-rc.1 (no leading v, no +BUILD)"

// ValidateVersion refuses what is not a release version, naming VERSION.
func ValidateVersion(v string) error {
	if semver.MatchString(v) {
		return nil
	}
	if strings.HasPrefix(v, "v") && semver.MatchString(v[1:]) {
		return fmt.Errorf("VERSION=%q: drop the leading v (VERSION=%s): the archives are named with the bare version, and the tag is v%[2]s", v, v[1:])
	}
	return fmt.Errorf("VERSION=%q is not a release version: want %s", v, versionRule)
}

// describeSuffix is what git describe adds past a tag: commits since it and
// the commit, or a dirty tree.
var describeSuffix = regexp.MustCompile(`(-[0-9]+-g[0-9a-f]+)?(-dirty)?$`)

// VersionFromDescribe is the version of a checkout that `git describe
// --tags --dirty` describes as described: only a release tag vX.Y.Z on the
// commit itself, in a clean tree, names a release. Anything else (no tag,
// commits past the tag, local changes) fails with what to do instead.
func VersionFromDescribe(described string) (string, error) {
	d := strings.TrimSpace(described)
	if s := describeSuffix.FindString(d); s != "" || !strings.HasPrefix(d, "v") || !semver.MatchString(d[1:]) {
		why := fmt.Sprintf("git describe says %q", d)
		switch {
		case d == "":
			why = "the commit has no tag"
		case s != "":
			why += ", not a release tag on a clean checkout"
		default:
			why += ", not a release tag vX.Y.Z"
		}
		return "", fmt.Errorf("VERSION is not set and %s: pass VERSION=x.y.z (make release VERSION=0.1.0), or tag the commit v0.1.0 and release from a clean checkout", why)
	}
	return d[1:], nil
}

// Platform is one os and architecture the provider is built for.
type Platform struct{ OS, Arch string }

func (p Platform) String() string { return p.OS + "_" + p.Arch }

// DefaultPlatforms are the six the registries' users run Terraform on.
var DefaultPlatforms = []Platform{
	{"darwin", "amd64"}, {"darwin", "arm64"},
	{"linux", "amd64"}, {"linux", "arm64"},
	{"windows", "amd64"}, {"windows", "arm64"},
}

// AgentOS is the only OS the agent is released for. The agent runs beside
// Swarm managers and drives their dockerd: the aws and gcp platforms boot
// Linux instances, the local platform's nodes are Linux namespaces, and a
// Docker Desktop engine on macOS or Windows is itself a Linux VM, so a
// darwin or windows agent would have nothing to run beside. (Its status
// command is a plain HTTP GET of the agent's /status, which curl does as
// well from any machine.)
const AgentOS = "linux"

// ParsePlatforms reads a list such as "linux_amd64,darwin_arm64" ("" or
// "all": DefaultPlatforms; "host": the machine's own).
func ParsePlatforms(s string) ([]Platform, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "", "all":
		return DefaultPlatforms, nil
	case "host":
		return []Platform{{runtime.GOOS, runtime.GOARCH}}, nil
	}
	var out []Platform
	seen := map[Platform]bool{}
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		var p Platform
		for _, d := range DefaultPlatforms {
			if d.String() == f {
				p = d
			}
		}
		if p.OS == "" {
			names := make([]string, len(DefaultPlatforms))
			for i, d := range DefaultPlatforms {
				names[i] = d.String()
			}
			return nil, fmt.Errorf("PLATFORMS: %q is not a platform a release is built for: use a comma-separated list of %s, or all, or host", f, strings.Join(names, ", "))
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("PLATFORMS: empty list")
	}
	return out, nil
}

// Options say what Build makes and where.
type Options struct {
	Version   string
	Platforms []Platform
	// Repo is the repository's top directory; Out receives the artifacts
	// (created; artifacts of this version already there are replaced).
	Repo, Out string
	// Signer signs both SHA256SUMS files (LoadSigningKey).
	Signer *openpgp.Entity
	// AgentTags are the agent's build tags (nogcp, noaws).
	AgentTags string
	// Log receives one line per step; nil: discarded.
	Log io.Writer
}

// Artifacts are the files Build wrote, by base name, in Out.
type Artifacts struct {
	Dir   string
	Files []string
}

// ProviderZip, ProviderSums and the like are the registries' file names.
func ProviderZip(version string, p Platform) string {
	return fmt.Sprintf("%s_%s_%s.zip", ProviderName, version, p)
}

// ProviderBinary is the executable inside a provider zip: Terraform runs
// the file named terraform-provider-<type>_v<version> (or without the
// version), with .exe on windows.
func ProviderBinary(version string, p Platform) string {
	return ProviderName + "_v" + version + exe(p)
}

// ProviderSums is the SHA256SUMS the registries read; its signature is
// ProviderSums + ".sig".
func ProviderSums(version string) string { return ProviderName + "_" + version + "_SHA256SUMS" }

// ProviderManifest is the copy of terraform-registry-manifest.json.
func ProviderManifest(version string) string { return ProviderName + "_" + version + "_manifest.json" }

// AgentArchive is the agent's archive for a Linux architecture.
func AgentArchive(version, arch string) string {
	return fmt.Sprintf("%s_%s_%s_%s.tar.gz", AgentName, version, AgentOS, arch)
}

// AgentSums is the agent's own sums file; its signature is + ".sig".
func AgentSums(version string) string { return AgentName + "_" + version + "_SHA256SUMS" }

func exe(p Platform) string {
	if p.OS == "windows" {
		return ".exe"
	}
	return ""
}

// archiveTime is every archive entry's modification time: fixed, so that
// the same binaries make byte-identical archives (and sums).
var archiveTime = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// Build compiles the provider for each platform and the agent for each
// Linux architecture among them, packs, sums and signs them into o.Out.
// Nothing is left half-written: the artifacts are made in a scratch
// directory inside o.Out and moved into it once all are signed.
func Build(ctx context.Context, o Options) (Artifacts, error) {
	if err := ValidateVersion(o.Version); err != nil {
		return Artifacts{}, err
	}
	if o.Signer == nil {
		return Artifacts{}, errors.New("SIGNING_KEY: no signing key: the registries take only a signed SHA256SUMS")
	}
	if len(o.Platforms) == 0 {
		o.Platforms = DefaultPlatforms
	}
	logw := o.Log
	if logw == nil {
		logw = io.Discard
	}
	manifest, err := os.ReadFile(filepath.Join(o.Repo, ManifestFile))
	if err != nil {
		return Artifacts{}, fmt.Errorf("the registry manifest: %w", err)
	}
	out, err := filepath.Abs(o.Out)
	if err != nil {
		return Artifacts{}, err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return Artifacts{}, err
	}
	scratch, err := os.MkdirTemp(out, ".build-")
	if err != nil {
		return Artifacts{}, err
	}
	defer os.RemoveAll(scratch)
	stage := filepath.Join(scratch, "out")
	if err := os.Mkdir(stage, 0o755); err != nil {
		return Artifacts{}, err
	}
	ldflags := "-s -w -X main.version=" + o.Version

	var providerFiles, agentFiles []string
	for _, p := range o.Platforms {
		bin := filepath.Join(scratch, p.String(), ProviderBinary(o.Version, p))
		fmt.Fprintf(logw, ">> %s %s\n", ProviderName, p)
		if err := goBuild(ctx, o.Repo, p, bin, ldflags, "", "."); err != nil {
			return Artifacts{}, err
		}
		name := ProviderZip(o.Version, p)
		if err := writeZip(filepath.Join(stage, name), bin); err != nil {
			return Artifacts{}, err
		}
		providerFiles = append(providerFiles, name)
		if p.OS != AgentOS {
			continue
		}
		abin := filepath.Join(scratch, p.String(), AgentName)
		fmt.Fprintf(logw, ">> %s %s\n", AgentName, p)
		if err := goBuild(ctx, o.Repo, p, abin, ldflags, o.AgentTags, "./cmd/autarky-agent"); err != nil {
			return Artifacts{}, err
		}
		aname := AgentArchive(o.Version, p.Arch)
		if err := writeTarGz(filepath.Join(stage, aname), abin); err != nil {
			return Artifacts{}, err
		}
		agentFiles = append(agentFiles, aname)
	}
	mname := ProviderManifest(o.Version)
	if err := os.WriteFile(filepath.Join(stage, mname), manifest, 0o644); err != nil {
		return Artifacts{}, err
	}
	providerFiles = append(providerFiles, mname)

	written := append(append([]string{}, providerFiles...), agentFiles...)
	sets := []struct {
		sums  string
		files []string
	}{{ProviderSums(o.Version), providerFiles}, {AgentSums(o.Version), agentFiles}}
	for _, set := range sets {
		if len(set.files) == 0 {
			continue // no Linux platform: no agent archives
		}
		sums, err := SHA256Sums(stage, set.files)
		if err != nil {
			return Artifacts{}, err
		}
		var sig bytes.Buffer
		if err := openpgp.DetachSign(&sig, o.Signer, bytes.NewReader(sums), nil); err != nil {
			return Artifacts{}, fmt.Errorf("signing %s: %w", set.sums, err)
		}
		if err := os.WriteFile(filepath.Join(stage, set.sums), sums, 0o644); err != nil {
			return Artifacts{}, err
		}
		if err := os.WriteFile(filepath.Join(stage, set.sums+".sig"), sig.Bytes(), 0o644); err != nil {
			return Artifacts{}, err
		}
		written = append(written, set.sums, set.sums+".sig")
	}

	// A sums file from an earlier build of the same version with more
	// platforms would name archives this build did not make: this
	// version's files are all replaced.
	old, _ := filepath.Glob(filepath.Join(out, ProviderName+"_"+o.Version+"_*"))
	oldAgent, _ := filepath.Glob(filepath.Join(out, AgentName+"_"+o.Version+"_*"))
	for _, f := range append(old, oldAgent...) {
		if err := os.Remove(f); err != nil {
			return Artifacts{}, err
		}
	}
	sort.Strings(written)
	for _, f := range written {
		if err := os.Rename(filepath.Join(stage, f), filepath.Join(out, f)); err != nil {
			return Artifacts{}, err
		}
	}
	return Artifacts{Dir: out, Files: written}, nil
}

// goBuild cross-compiles pkg for p: static (CGO_ENABLED=0, as the
// registries' providers are and as the agent must be to double as the
// workload image), with paths trimmed, so the binary depends on the
// sources alone.
func goBuild(ctx context.Context, repo string, p Platform, out, ldflags, tags, pkg string) error {
	args := []string{"build", "-trimpath", "-ldflags", ldflags, "-o", out}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	cmd := exec.CommandContext(ctx, "go", append(args, pkg)...)
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Arch)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s for %s: %v\n%s", pkg, p, err, b)
	}
	return nil
}

// writeZip packs the executable bin, alone, into a new zip at path.
func writeZip(path, bin string) error {
	return writeArchive(path, bin, func(w io.Writer, name string, size int64, body io.Reader) (io.Closer, error) {
		zw := zip.NewWriter(w)
		h := &zip.FileHeader{Name: name, Method: zip.Deflate, Modified: archiveTime}
		h.SetMode(0o755)
		fw, err := zw.CreateHeader(h)
		if err == nil {
			_, err = io.Copy(fw, body)
		}
		return zw, err
	})
}

// writeTarGz packs the executable bin, alone, into a new .tar.gz at path:
// the agent's archives are for Linux, where tar is always at hand and
// unzip often is not.
func writeTarGz(path, bin string) error {
	return writeArchive(path, bin, func(w io.Writer, name string, size int64, body io.Reader) (io.Closer, error) {
		gz := gzip.NewWriter(w)
		tw := tar.NewWriter(gz)
		err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: size, ModTime: archiveTime, Typeflag: tar.TypeReg, Format: tar.FormatPAX})
		if err == nil {
			_, err = io.Copy(tw, body)
		}
		if err == nil {
			err = tw.Close()
		}
		return gz, err
	})
}

// writeArchive opens bin and path and lets pack write the one entry; the
// closer pack returns finishes the archive.
func writeArchive(path, bin string, pack func(w io.Writer, name string, size int64, body io.Reader) (io.Closer, error)) error {
	in, err := os.Open(bin)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	c, err := pack(f, filepath.Base(bin), st.Size(), in)
	if err == nil {
		err = c.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("packing %s: %w", filepath.Base(path), err)
	}
	return nil
}

// SHA256Sums is files' (in dir) sums in sha256sum's format, sorted by
// name: "<hex>  <name>\n" each.
func SHA256Sums(dir string, files []string) ([]byte, error) {
	names := append([]string{}, files...)
	sort.Strings(names)
	var b bytes.Buffer
	for _, name := range names {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "%s  %s\n", hex.EncodeToString(h.Sum(nil)), name)
	}
	return b.Bytes(), nil
}
