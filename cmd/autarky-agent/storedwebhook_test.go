package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/autarky/terraform-provider-autarky/internal/platform/local"
)

// An agent started without a webhook of its own takes the one an operator
// put in its cluster's store (here the local platform's file); a bad one
// is refused naming where it was read, never quoting it; none is none.
func TestStoredWebhook(t *testing.T) {
	dir := t.TempDir()
	p, err := local.New(dir, nil, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cl := p.Cluster("demo")
	ctx := context.Background()
	if hook, err := storedWebhook(ctx, cl); hook != nil || err != nil {
		t.Fatalf("without a stored webhook: %v, %v", hook, err)
	}
	file := filepath.Join(dir, "clusters", "demo", "agent", "notify-webhook")
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("https://hooks.example/services/T0/B0/SECRETPART\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hook, err := storedWebhook(ctx, cl)
	if err != nil || hook == nil || hook.Redacted() != "https://hooks.example/[redacted]" {
		t.Fatalf("stored webhook: %v, %v", hook, err)
	}
	if err := os.WriteFile(file, []byte("http://hooks.example/SECRETPART"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = storedWebhook(ctx, cl)
	if err == nil || !strings.Contains(err.Error(), file) || strings.Contains(err.Error(), "SECRETPART") {
		t.Fatalf("a plain http webhook beyond loopback: %v, want an error naming %s without the URL", err, file)
	}
}
