package agent

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// maxAlertBody is the largest webhook body /v1/alerts reads. Alertmanager
// sends a group's alerts in one post; a megabyte holds thousands of them
// (max_alerts in Alertmanager's webhook_config caps them anyway). A larger
// body is refused with 413 before it is read, not cut short and parsed.
const maxAlertBody = 1 << 20

// maxRememberedAlerts bounds the alerts the agent keeps. The agent only
// acts on alerts a scaling policy names, so it only keeps those (once the
// policies are read); the bound holds the memory of an agent that has not
// read them yet, or whose policies name absurdly many, to a few hundred
// kilobytes whatever is posted.
const maxRememberedAlerts = 1000

// alertmanagerPayload is the part of Alertmanager's webhook body (version 4)
// the agent reads.
type alertmanagerPayload struct {
	Version string `json:"version"`
	Status  string `json:"status"`
	// Only status and labels are read: a field the agent does not use
	// (startsAt, annotations, ...) cannot make a post fail.
	Alerts []struct {
		Status string            `json:"status"`
		Labels map[string]string `json:"labels"`
	} `json:"alerts"`
}

// alertNotice is one alert of a webhook post: its alertname, and whether
// it fires (anything but "resolved" does: Alertmanager only sends "firing"
// and "resolved").
type alertNotice struct {
	Name   string
	Firing bool
}

// decodeAlerts reads Alertmanager's webhook body into the alerts it
// names, in the post's order; alerts without an alertname are left out.
// The body is untrusted: anything that is not a JSON object of the
// webhook's shape is an error, and nothing of it is used.
func decodeAlerts(body []byte) ([]alertNotice, string, error) {
	var p alertmanagerPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, "", fmt.Errorf("not an Alertmanager webhook body: %w", err)
	}
	out := make([]alertNotice, 0, len(p.Alerts))
	for _, al := range p.Alerts {
		name := al.Labels["alertname"]
		if name == "" {
			continue
		}
		out = append(out, alertNotice{Name: name, Firing: al.Status != "resolved"})
	}
	return out, p.Status, nil
}

// alertState is what the agent knows of one named alert.
type alertState struct {
	Firing     bool
	ReceivedAt time.Time
	// Handled is set once a scaling step was taken for this notification;
	// a later notification (Alertmanager's repeat) asks again.
	Handled bool
}

// AlertStatus is one remembered alert, for /v1/status.
type AlertStatus struct {
	Name       string    `json:"name"`
	Firing     bool      `json:"firing"`
	ReceivedAt time.Time `json:"received_at"`
	Handled    bool      `json:"handled,omitempty"`
}

// alertStatuses lists the remembered alerts by name. a.mu held.
func (a *Agent) alertStatuses() []AlertStatus {
	out := make([]AlertStatus, 0, len(a.alerts))
	for name, st := range a.alerts {
		out = append(out, AlertStatus{Name: name, Firing: st.Firing, ReceivedAt: st.ReceivedAt, Handled: st.Handled})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// noteAlertNames records the alert names the scaling policies use, read in
// this evaluation, and forgets every remembered alert none of them uses:
// from now on /v1/alerts keeps only these. Before the first reading the
// agent cannot tell, and keeps what is posted up to maxRememberedAlerts,
// so that a post arriving while it starts is not lost until Alertmanager's
// next repeat (hours, by default).
func (a *Agent) noteAlertNames(ps []policy.Scaling) {
	names := map[string]bool{}
	for _, p := range ps {
		for _, c := range p.Alert {
			names[c.Name] = true
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.alertNames = names
	for name := range a.alerts {
		if !names[name] {
			delete(a.alerts, name)
		}
	}
}

// loopbackListen reports whether the agent only listens on loopback.
func loopbackListen(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// bearerToken is the token of an Authorization header of the Bearer scheme
// (RFC 6750): the scheme is case-insensitive (RFC 7235), followed by one
// or more spaces and the token. Any other header, a bare token included,
// gives ok false.
func bearerToken(header string) (token string, ok bool) {
	scheme, rest, found := strings.Cut(header, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimLeft(rest, " ")
	if token == "" || strings.ContainsAny(token, " \t") {
		return "", false
	}
	return token, true
}

// authorized reports whether r may post alerts: on loopback without a
// configured token anyone on the machine may; otherwise the request must
// carry the token in the Bearer scheme, compared in constant time.
func (a *Agent) authorized(r *http.Request) bool {
	if a.cfg.AlertToken == "" {
		return loopbackListen(a.cfg.Listen)
	}
	got, ok := bearerToken(r.Header.Get("Authorization"))
	// ConstantTimeCompare returns at once on a length mismatch; hashing
	// first would hide the length too, but the token's length is no
	// secret worth it: it is the operator's random string.
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(a.cfg.AlertToken)) == 1
}

// handleAlerts takes Alertmanager's webhook as is. Beyond loopback a bearer
// token (Alertmanager's http_config.authorization) is required; without a
// configured token every request is refused. Only alerts a scaling policy
// names are kept (noteAlertNames), and never more than maxRememberedAlerts.
func (a *Agent) handleAlerts(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "use POST with Alertmanager's webhook body", http.StatusMethodNotAllowed)
		return
	}
	if !a.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="autarky-agent"`)
		http.Error(w, "an Authorization header \"Bearer <token>\" is required: set http_config.authorization (type Bearer) in Alertmanager's webhook receiver", http.StatusUnauthorized)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAlertBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		var nerr net.Error
		switch {
		case errors.As(err, &tooBig):
			http.Error(w, fmt.Sprintf("the body is over %d bytes: lower max_alerts in Alertmanager's webhook_config", maxAlertBody), http.StatusRequestEntityTooLarge)
		case errors.As(err, &nerr) && nerr.Timeout():
			http.Error(w, "the body did not arrive in time", http.StatusRequestTimeout)
		default:
			http.Error(w, "reading the body: "+err.Error(), http.StatusBadRequest)
		}
		return
	}
	notices, status, err := decodeAlerts(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	now := a.cfg.Now()
	kept, ignored := 0, 0
	a.mu.Lock()
	for _, n := range notices {
		_, known := a.alerts[n.Name]
		switch {
		case a.alertNames != nil && !a.alertNames[n.Name]:
			ignored++
			continue
		case !known && len(a.alerts) >= maxRememberedAlerts:
			ignored++
			continue
		}
		a.alerts[n.Name] = alertState{Firing: n.Firing, ReceivedAt: now}
		kept++
	}
	a.mu.Unlock()
	a.log.Info("alerts received", "count", len(notices), "kept", kept, "ignored", ignored, "status", status)
	if kept > 0 {
		a.wakeNow()
	}
	// 202 even when every alert was ignored: the post was well formed, and
	// Alertmanager would only retry it.
	w.WriteHeader(http.StatusAccepted)
}
