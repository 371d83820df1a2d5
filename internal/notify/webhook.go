package notify

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// Webhook is a validated webhook URL. Its address is a secret: Slack's
// incoming-webhook URLs (and most others) carry their credential in the
// path or the query, so whoever reads the URL can post to the channel.
// A Webhook therefore never prints its address: String and Redacted show
// the scheme and host only, and errors are scrubbed before they leave the
// package (scrub), so nothing that logs, counts or returns a Webhook's
// failures can leak it.
type Webhook struct {
	u   *url.URL
	raw string
}

// ParseWebhook validates raw as a webhook address for setting (the flag or
// variable it came from, named in every error). It must be an absolute
// https URL, or http to a loopback host (a local relay or a test receiver:
// cleartext beyond the machine would hand the secret to the network).
// Errors never quote the URL: they say what is wrong, and at most the
// scheme and host.
func ParseWebhook(setting, raw string) (*Webhook, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil, fmt.Errorf("%s: the webhook URL is empty: give an https:// URL (or http:// to a loopback address)", setting)
	}
	if strings.ContainsFunc(raw, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return nil, fmt.Errorf("%s: the webhook URL holds spaces or control characters: give one https:// URL", setting)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse quotes its input in its errors: not this one.
		return nil, fmt.Errorf("%s: the webhook URL does not parse as a URL: give an https:// URL (or http:// to a loopback address)", setting)
	}
	if u.Host == "" || u.Opaque != "" {
		return nil, fmt.Errorf("%s: the webhook URL has no host: give an absolute https://host/path URL", setting)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !policy.IsLoopbackHost(u.Hostname()) {
			return nil, fmt.Errorf("%s: the webhook URL is http:// to %s, beyond loopback: use https:// (http:// is allowed only to 127.0.0.0/8, ::1 or localhost), since the URL is a secret", setting, u.Host)
		}
	default:
		return nil, fmt.Errorf("%s: the webhook URL's scheme is %q: use https:// (or http:// to a loopback address)", setting, u.Scheme)
	}
	if u.Fragment != "" {
		return nil, fmt.Errorf("%s: the webhook URL has a #fragment, which is never sent: remove it", setting)
	}
	return &Webhook{u: u, raw: raw}, nil
}

// WebhookFrom reads the webhook URL from file (named by flag) or, without
// one, from the environment variable envName whose value is env; nil when
// neither is set. Never from a flag's value: process arguments are
// world-readable (ps, /proc/<pid>/cmdline), a 0600 file and the process's
// environment are not.
func WebhookFrom(flag, file, envName, env string) (*Webhook, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", flag, err)
		}
		return ParseWebhook(flag+" "+file, string(b))
	}
	if env == "" {
		return nil, nil
	}
	return ParseWebhook("$"+envName, env)
}

// Redacted is the webhook's scheme and host, and "/…" for the rest: enough
// to tell which service it points at, never its credential.
func (w *Webhook) Redacted() string {
	if w == nil {
		return ""
	}
	return w.u.Scheme + "://" + w.u.Host + "/[redacted]"
}

// String is Redacted, so a Webhook printed by accident (%v, a log field)
// shows no secret.
func (w *Webhook) String() string { return w.Redacted() }

// GoString is Redacted too (%#v).
func (w *Webhook) GoString() string { return w.Redacted() }

// url is the address to post to, for the sender only.
func (w *Webhook) url() string { return w.raw }

// scrub turns an error from posting to w into text that holds none of the
// URL's secret parts: net/http quotes the whole URL in its errors
// (`Post "https://hooks…/T0/B0/XXXX": dial tcp: …`), and a redirect or
// parse error can quote parts of it. It unwraps a *url.Error to its cause
// and names the request with the redacted address, then removes anything
// left that looks like the URL, its path, query or user info.
func (w *Webhook) scrub(err error) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	var ue *url.Error
	if errors.As(err, &ue) {
		msg = fmt.Sprintf("%s %s: %v", ue.Op, w.Redacted(), ue.Err)
	}
	return w.scrubText(msg)
}

// scrubText removes the webhook's secret parts from s.
func (w *Webhook) scrubText(s string) string {
	secrets := []string{w.raw, w.u.String(), w.u.RequestURI(), w.u.EscapedPath(), w.u.Path, w.u.RawQuery}
	if w.u.User != nil {
		secrets = append(secrets, w.u.User.String(), w.u.User.Username())
		if p, ok := w.u.User.Password(); ok {
			secrets = append(secrets, p)
		}
	}
	for _, sec := range secrets {
		if len(sec) > 1 { // never "/" alone: it would shred every message
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	return s
}
