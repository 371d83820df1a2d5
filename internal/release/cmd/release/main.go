// Command release builds a signed Autarky release into a directory:
// `make release VERSION=x.y.z SIGNING_KEY=key.asc` runs it (see package
// release for what it makes).
//
//	go run ./internal/release/cmd/release -version 0.1.0 -key key.asc [-platforms linux_amd64,...] [-out dist]
//
// Without -version the version is the release tag vX.Y.Z that `git
// describe` finds on a clean checkout, else it refuses. The key's
// passphrase, if it has one, is read from $SIGNING_KEY_PASSPHRASE, never
// from a flag (which ps would show).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/release"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "release: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("release", flag.ContinueOnError)
	fs.SetOutput(stderr)
	version := fs.String("version", "", "the release version, MAJOR.MINOR.PATCH[-PRERELEASE] (default: the vX.Y.Z tag git describe finds)")
	platforms := fs.String("platforms", "all", "comma-separated os_arch list, all, or host")
	out := fs.String("out", "dist", "the directory that receives the artifacts")
	key := fs.String("key", os.Getenv("SIGNING_KEY"), "ASCII-armored OpenPGP private key file (passphrase in $SIGNING_KEY_PASSPHRASE)")
	repo := fs.String("repo", ".", "the repository's top directory")
	tags := fs.String("agent-tags", "", "the agent's build tags (nogcp, noaws)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	v := *version
	if v == "" {
		cmd := exec.CommandContext(ctx, "git", "describe", "--tags", "--dirty")
		cmd.Dir = *repo
		described, _ := cmd.Output() // no tag at all: empty, refused below
		var err error
		if v, err = release.VersionFromDescribe(string(described)); err != nil {
			return err
		}
	}
	if err := release.ValidateVersion(v); err != nil {
		return err
	}
	ps, err := release.ParsePlatforms(*platforms)
	if err != nil {
		return err
	}
	signer, err := release.LoadSigningKey(*key, []byte(os.Getenv("SIGNING_KEY_PASSPHRASE")))
	if err != nil {
		return err
	}
	start := time.Now()
	a, err := release.Build(ctx, release.Options{Version: v, Platforms: ps, Repo: *repo, Out: *out, Signer: signer, AgentTags: *tags, Log: stderr})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "release %s in %s (%s, signed by %X):\n", v, a.Dir, time.Since(start).Round(time.Second), signer.PrimaryKey.Fingerprint)
	for _, f := range a.Files {
		st, err := os.Stat(filepath.Join(a.Dir, f))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "  %10d  %s\n", st.Size(), f)
	}
	return nil
}
