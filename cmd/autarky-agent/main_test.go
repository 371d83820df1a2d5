package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestVersionAndUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"autarky-agent", "version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "autarky-agent ") {
		t.Fatalf("version: code %d, out %q", code, out.String())
	}
	out.Reset()
	if code := run([]string{"autarky-agent"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "Usage: autarky-agent") {
		t.Fatalf("no command: code %d, stderr %q", code, errb.String())
	}
	errb.Reset()
	if code := run([]string{"autarky-agent", "frobnicate"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: code %d, stderr %q", code, errb.String())
	}
}
