package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The webhook URL comes from a file or the environment, is validated before
// anything starts with an error naming where it came from, and is never
// echoed; `run -h` documents the flags.
func TestRunNotifyFlags(t *testing.T) {
	const secret = "T0SECRET/B0SECRET/XXXXsecretXXXX"
	dir := t.TempDir()
	file := filepath.Join(dir, "webhook")
	if err := os.WriteFile(file, []byte("http://hooks.example.com/services/"+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"--notify-webhook-file", file}, "", "--notify-webhook-file " + file + ": the webhook URL is http:// to hooks.example.com, beyond loopback: use https://"},
		{[]string{"--notify-webhook-file", filepath.Join(dir, "missing")}, "", "--notify-webhook-file:"},
		{nil, "ftp://hooks.example.com/" + secret, `$AUTARKY_NOTIFY_WEBHOOK_URL: the webhook URL's scheme is "ftp"`},
		{[]string{"--notify-format", "teams"}, "", `--notify-format "teams": use json`},
		{[]string{"--notify-resolve-after", "-1s"}, "", "--notify-resolve-after"},
	}
	for _, c := range cases {
		t.Setenv("AUTARKY_NOTIFY_WEBHOOK_URL", c.env)
		var out, errb bytes.Buffer
		code := run(append([]string{"autarky-agent", "run", "--cluster", "c"}, c.args...), &out, &errb)
		if code == 0 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("run %q (env %q): code %d, stderr %q, want it to name %q", c.args, c.env, code, errb.String(), c.want)
		}
		if strings.Contains(errb.String(), "SECRET") {
			t.Errorf("run %q: stderr shows the webhook's secret: %s", c.args, errb.String())
		}
	}
	var out, errb bytes.Buffer
	run([]string{"autarky-agent", "run", "-h"}, &out, &errb)
	for _, want := range []string{"-notify-webhook-file", "$AUTARKY_NOTIFY_WEBHOOK_URL", "-notify-format", "slack", "-notify-stale-after", "-notify-resolve-after"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("run -h does not mention %s:\n%s", want, errb.String())
		}
	}
}
