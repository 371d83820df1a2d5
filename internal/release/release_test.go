package release

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

func TestValidateVersion(t *testing.T) {
	for _, v := range []string{"0.1.0", "1.2.3", "10.20.30", "1.2.0-rc.1", "1.0.0-alpha-2.beta"} {
		if err := ValidateVersion(v); err != nil {
			t.Errorf("ValidateVersion(%q): %v", v, err)
		}
	}
	for v, want := range map[string]string{
		"garbage":     `VERSION="garbage" is not a release version: want MAJOR.MINOR.PATCH`,
		"":            `VERSION="" is not a release version`,
		"1.2":         `VERSION="1.2" is not a release version`,
		"01.2.3":      `VERSION="01.2.3" is not a release version`,
		"1.2.3+build": `no +BUILD`,
		"1.2.3-":      `VERSION="1.2.3-" is not`,
		"1.2.3-01":    `VERSION="1.2.3-01" is not`,
		"v0.1.0":      `VERSION="v0.1.0": drop the leading v (VERSION=0.1.0)`,
		"0.1.0 ":      `VERSION="0.1.0 " is not`,
		"0.1.0/../x":  `is not a release version`,
	} {
		err := ValidateVersion(v)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidateVersion(%q) = %v, want an error with %q", v, err, want)
		}
	}
}

func TestVersionFromDescribe(t *testing.T) {
	if v, err := VersionFromDescribe("v0.3.1\n"); v != "0.3.1" || err != nil {
		t.Errorf("v0.3.1: %q, %v", v, err)
	}
	for described, want := range map[string]string{
		"":                     "the commit has no tag",
		"416a699":              `git describe says "416a699", not a release tag vX.Y.Z`,
		"v0.3.1-4-g416a699":    "not a release tag on a clean checkout",
		"v0.3.1-dirty":         "not a release tag on a clean checkout",
		"v0.3.1-2-gabc-dirty":  "not a release tag on a clean checkout",
		"release-1":            "not a release tag vX.Y.Z",
		"0.3.1":                "not a release tag vX.Y.Z",
		"v0.3.1-rc.1-1-gabcde": "clean checkout",
	} {
		_, err := VersionFromDescribe(described)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "pass VERSION=x.y.z") {
			t.Errorf("VersionFromDescribe(%q) = %v, want an error with %q and what to pass", described, err, want)
		}
	}
}

func TestParsePlatforms(t *testing.T) {
	if ps, err := ParsePlatforms("all"); err != nil || len(ps) != 6 {
		t.Errorf("all: %v, %v", ps, err)
	}
	ps, err := ParsePlatforms("linux_arm64, windows_amd64,linux_arm64")
	if err != nil || len(ps) != 2 || ps[0] != (Platform{"linux", "arm64"}) || ps[1] != (Platform{"windows", "amd64"}) {
		t.Errorf("list: %v, %v", ps, err)
	}
	if _, err := ParsePlatforms("linux_386"); err == nil || !strings.Contains(err.Error(), `PLATFORMS: "linux_386" is not a platform`) {
		t.Errorf("linux_386: %v", err)
	}
	if _, err := ParsePlatforms(","); err == nil || !strings.Contains(err.Error(), "PLATFORMS: empty") {
		t.Errorf("empty: %v", err)
	}
}

// The registries' names, letter for letter.
func TestNames(t *testing.T) {
	for got, want := range map[string]string{
		ProviderZip("0.1.0", Platform{"darwin", "arm64"}):     "terraform-provider-autarky_0.1.0_darwin_arm64.zip",
		ProviderBinary("0.1.0", Platform{"windows", "amd64"}): "terraform-provider-autarky_v0.1.0.exe",
		ProviderBinary("0.1.0", Platform{"linux", "amd64"}):   "terraform-provider-autarky_v0.1.0",
		ProviderSums("0.1.0"):                                 "terraform-provider-autarky_0.1.0_SHA256SUMS",
		ProviderManifest("0.1.0"):                             "terraform-provider-autarky_0.1.0_manifest.json",
		AgentArchive("0.1.0", "arm64"):                        "autarky-agent_0.1.0_linux_arm64.tar.gz",
		AgentSums("0.1.0"):                                    "autarky-agent_0.1.0_SHA256SUMS",
	} {
		if got != want {
			t.Errorf("%q, want %q", got, want)
		}
	}
}

// writeKey writes e's private key, armored and encrypted with passphrase
// when one is given, and returns the file.
func writeKey(t *testing.T, e *openpgp.Entity, passphrase string, private bool) string {
	t.Helper()
	if passphrase != "" {
		if err := e.EncryptPrivateKeys([]byte(passphrase), nil); err != nil {
			t.Fatal(err)
		}
	}
	var b bytes.Buffer
	kind := openpgp.PublicKeyType
	if private {
		kind = openpgp.PrivateKeyType
	}
	w, err := armor.Encode(&b, kind, nil)
	if err != nil {
		t.Fatal(err)
	}
	if private {
		err = e.SerializePrivateWithoutSigning(w, nil)
	} else {
		err = e.Serialize(w)
	}
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	f := filepath.Join(t.TempDir(), "key.asc")
	if err := os.WriteFile(f, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func newEntity(t *testing.T) *openpgp.Entity {
	t.Helper()
	e, err := openpgp.NewEntity("Autarky test", "", "test@example.com", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// A key that cannot sign is refused before any build, naming SIGNING_KEY
// or its passphrase; a protected key signs once unlocked.
func TestLoadSigningKey(t *testing.T) {
	plain := writeKey(t, newEntity(t), "", true)
	if _, err := LoadSigningKey(plain, nil); err != nil {
		t.Errorf("passphrase-less key: %v", err)
	}
	locked := writeKey(t, newEntity(t), "secret", true)
	e, err := LoadSigningKey(locked, []byte("secret"))
	if err != nil {
		t.Fatalf("protected key with its passphrase: %v", err)
	}
	var sig bytes.Buffer
	if err := openpgp.DetachSign(&sig, e, strings.NewReader("sums"), nil); err != nil {
		t.Errorf("signing with the unlocked key: %v", err)
	}
	garbage := filepath.Join(t.TempDir(), "garbage.asc")
	os.WriteFile(garbage, []byte("not a key"), 0o600)
	for name, c := range map[string]struct {
		file, pass, want string
	}{
		"unset":          {"", "", "SIGNING_KEY is not set"},
		"missing file":   {"/nonexistent/key.asc", "", "SIGNING_KEY=/nonexistent/key.asc: open"},
		"not a key":      {garbage, "", "not an ASCII-armored OpenPGP key"},
		"public only":    {writeKey(t, newEntity(t), "", false), "", "holds only public keys"},
		"no passphrase":  {locked, "", "set SIGNING_KEY_PASSPHRASE"},
		"bad passphrase": {locked, "wrong", "SIGNING_KEY_PASSPHRASE does not unlock the key"},
	} {
		if _, err := LoadSigningKey(c.file, []byte(c.pass)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", name, err, c.want)
		}
	}
}
