package release

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
)

// LoadSigningKey reads the ASCII-armored OpenPGP private key in file (as
// `gpg --armor --export-secret-keys` writes it) and unlocks it with
// passphrase when it is protected. The key must be able to sign now: a
// registry rejects a signature by an expired or revoked key, and finding
// that out after twelve cross-compiles would be late, so it is checked
// before any build.
func LoadSigningKey(file string, passphrase []byte) (*openpgp.Entity, error) {
	if file == "" {
		return nil, errors.New("SIGNING_KEY is not set: name an ASCII-armored OpenPGP private key file (gpg --armor --export-secret-keys KEYID > key.asc), with its passphrase in SIGNING_KEY_PASSPHRASE if it has one")
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("SIGNING_KEY=%s: %w", file, err)
	}
	ring, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("SIGNING_KEY=%s: not an ASCII-armored OpenPGP key: %w", file, err)
	}
	var e *openpgp.Entity
	for _, cand := range ring {
		if cand.PrivateKey != nil {
			e = cand
			break
		}
	}
	if e == nil {
		return nil, fmt.Errorf("SIGNING_KEY=%s: holds only public keys: export the private key (gpg --armor --export-secret-keys KEYID)", file)
	}
	key, ok := e.SigningKey(time.Now())
	if !ok || key.PrivateKey == nil {
		return nil, fmt.Errorf("SIGNING_KEY=%s: key %X has no private key that can sign now (expired, revoked, or without a signing subkey)", file, e.PrimaryKey.Fingerprint)
	}
	if key.PrivateKey.Encrypted {
		if len(passphrase) == 0 {
			return nil, fmt.Errorf("SIGNING_KEY=%s: the key is protected by a passphrase: set SIGNING_KEY_PASSPHRASE", file)
		}
		if err := e.DecryptPrivateKeys(passphrase); err != nil {
			return nil, fmt.Errorf("SIGNING_KEY=%s: SIGNING_KEY_PASSPHRASE does not unlock the key: %w", file, err)
		}
	}
	return e, nil
}
