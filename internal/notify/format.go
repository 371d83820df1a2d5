package notify

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Format is the body a webhook receives.
type Format string

const (
	// FormatJSON is the generic body: the Event's fields, plus "version"
	// (1: fields are only ever added) and "source" ("autarky-agent"):
	//
	//	{"version": 1, "source": "autarky-agent", "kind": "firing",
	//	 "name": "pool_at_max", "key": "pool_at_max/demo/web",
	//	 "severity": "warning", "cluster": "demo", "pool": "demo/web",
	//	 "summary": "…", "detail": "…", "agent": "<node id>",
	//	 "time": "2026-11-27T22:45:07Z", "since": "2026-11-27T22:45:07Z"}
	FormatJSON Format = "json"
	// FormatSlack is Slack's incoming-webhook body: {"text": "…"} in
	// Slack's mrkdwn (Mattermost and Rocket.Chat take it as well).
	FormatSlack Format = "slack"
)

// ParseFormat validates a format name for setting.
func ParseFormat(setting, s string) (Format, error) {
	switch Format(s) {
	case FormatJSON, FormatSlack:
		return Format(s), nil
	}
	return "", fmt.Errorf("%s %q: use json (the generic body) or slack (Slack's incoming-webhook format)", setting, s)
}

// jsonBody is the generic body.
type jsonBody struct {
	Version int    `json:"version"`
	Source  string `json:"source"`
	Event
}

// Body encodes e in format f.
func Body(f Format, e Event) ([]byte, error) {
	switch f {
	case FormatJSON:
		return json.Marshal(jsonBody{Version: 1, Source: "autarky-agent", Event: e})
	case FormatSlack:
		return json.Marshal(struct {
			Text string `json:"text"`
		}{SlackText(e)})
	}
	return nil, fmt.Errorf("notify: unknown format %q", f)
}

// SlackText is e as one Slack message: a bold first line that says what
// and where, then the reasoning, then a context line.
func SlackText(e Event) string {
	var icon, what string
	switch {
	case e.Kind == KindResolved:
		icon, what = ":white_check_mark:", "RESOLVED"
	case e.Kind == KindAction:
		icon, what = ":gear:", "did"
	case e.Severity == SeverityCritical:
		icon, what = ":rotating_light:", "CRITICAL"
	default:
		icon, what = ":warning:", "WARNING"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s *[%s] %s %s*: %s", icon, slackEscape(e.Cluster), what, slackEscape(e.Name), slackEscape(e.Summary))
	if e.Detail != "" {
		fmt.Fprintf(&b, "\n%s", slackEscape(e.Detail))
	}
	var ctx []string
	if e.Pool != "" {
		ctx = append(ctx, "pool "+e.Pool)
	}
	if e.Service != "" {
		ctx = append(ctx, "service "+e.Service)
	}
	if !e.Since.IsZero() {
		ctx = append(ctx, "since "+e.Since.UTC().Format(time.RFC3339))
		if e.Kind == KindResolved {
			ctx = append(ctx, "lasted "+e.Time.Sub(e.Since).Round(time.Second).String())
		}
	}
	if e.Agent != "" {
		ctx = append(ctx, "agent on node "+shortID(e.Agent))
	}
	if e.DryRun {
		ctx = append(ctx, "dry-run")
	}
	if len(ctx) > 0 {
		fmt.Fprintf(&b, "\n_%s_", slackEscape(strings.Join(ctx, " · ")))
	}
	return b.String()
}

// slackEscape escapes the three characters Slack's mrkdwn gives meaning
// to, so a pool name or a PromQL query in a message cannot form a link or
// a mention.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
