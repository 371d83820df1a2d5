package agent

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// maxAlertBody is the largest webhook body /v1/alerts reads. Alertmanager
// sends a group's alerts in one post; a megabyte holds thousands of them
// (max_alerts in Alertmanager's webhook_config caps them anyway). A larger
// body is refused with 413 before it is read, not cut short and parsed.
const maxAlertBody = 1 << 20

// Alerts posted with a name no scaling policy used at the agent's last
// reading are held until the next one (within an evaluation interval),
// which keeps those a policy now uses and drops the rest: a post that
// races the policy naming it is not lost until Alertmanager's next repeat
// (hours, by default). Held alerts are bounded in number and bytes, so a
// post of thousands of names, or of huge ones, costs the agent nothing.
const (
	maxHeldAlerts     = 100
	maxHeldAlertBytes = 64 << 10
)

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
	// Service and Scale are the alert's service and scale labels, by
	// which Alertmanager routes an alert to a service (service.go).
	Service, Scale string
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
		out = append(out, alertNotice{Name: name, Firing: al.Status != "resolved", Service: al.Labels["service"], Scale: al.Labels["scale"]})
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

// alertIndex is what the agent knows of alert names. a.mu guards it.
type alertIndex struct {
	// used are the names the scaling policies used at the last reading;
	// nil before the first.
	used map[string]bool
	// held are alerts posted since that reading under a name it did not
	// hold, and heldBytes the length of their names.
	held      map[string]alertState
	heldBytes int
}

// noteAlertNames records the alert names the scaling policies use, read in
// this evaluation: alerts held since the last reading that a policy now
// names join the remembered ones, the other held ones are dropped, and so
// is every remembered alert no policy uses any more. The remembered
// alerts are thus always a subset of the policies' names.
func (a *Agent) noteAlertNames(ps []policy.Scaling) {
	used := map[string]bool{}
	for _, p := range ps {
		for _, c := range p.Alert {
			used[c.Name] = true
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	ix := &a.alertIndex
	for name, st := range ix.held {
		if used[name] {
			a.alerts[name] = st
		}
	}
	ix.used, ix.held, ix.heldBytes = used, nil, 0
	for name := range a.alerts {
		if !used[name] {
			delete(a.alerts, name)
		}
	}
}

// noteAlert takes one posted alert: remembered when a policy uses its
// name, else held for the next reading while there is room. a.mu held.
func (a *Agent) noteAlert(n alertNotice, now time.Time) (kept bool) {
	st := alertState{Firing: n.Firing, ReceivedAt: now}
	ix := &a.alertIndex
	if ix.used[n.Name] {
		a.alerts[n.Name] = st
		return true
	}
	if _, ok := ix.held[n.Name]; ok {
		ix.held[n.Name] = st
		return true
	}
	if len(ix.held) >= maxHeldAlerts || ix.heldBytes+len(n.Name) > maxHeldAlertBytes {
		return false
	}
	if ix.held == nil {
		ix.held = map[string]alertState{}
	}
	ix.held[n.Name] = st
	ix.heldBytes += len(n.Name)
	return true
}

// loopbackListen reports whether the agent only listens on loopback.
func loopbackListen(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	return err == nil && policy.IsLoopbackHost(host)
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

// ReadToken reads a bearer token the way autarky-agent's flags give it:
// from file when the flag names one (trimmed of surrounding white space,
// so a file that `aws ssm get-parameter ... > file` or an editor wrote
// works), else from the environment variable's value env. flag and
// envName name them in errors. A token is one word: sent as
// "Authorization: Bearer <token>", one with a space in it could never
// match. No error ever holds the token.
func ReadToken(flag, file, envName, env string) (string, error) {
	token, from := env, "$"+envName
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s: %w", flag, err)
		}
		token, from = strings.TrimSpace(string(b)), flag+" "+file
		if token == "" {
			return "", fmt.Errorf("%s: %s is empty: it must hold the token (one word, such as the output of `openssl rand -hex 32`)", flag, file)
		}
	}
	if strings.ContainsFunc(token, unicode.IsSpace) {
		return "", fmt.Errorf("%s: the token holds a space: use one word (such as the output of `openssl rand -hex 32`)", from)
	}
	return token, nil
}

// authorized reports whether r may post alerts: on loopback without a
// configured token anyone on the machine may; otherwise the request must
// carry the token in the Bearer scheme.
func (a *Agent) authorized(r *http.Request) bool {
	if a.cfg.AlertToken == "" {
		return loopbackListen(a.cfg.Listen)
	}
	return carriesToken(r, a.cfg.AlertToken)
}

// statusAuthorized reports whether r may read /v1/status, which shows the
// cluster's topology (node addresses, host names, what is failing): with
// a status token configured, only with it; else anyone on loopback, and
// beyond loopback only with the alert token (none configured: nobody).
func (a *Agent) statusAuthorized(r *http.Request) bool {
	presented, _ := bearerToken(r.Header.Get("Authorization"))
	return a.statusTokenOK(presented)
}

// statusTokenOK reports whether presented (a bearer token, or the status
// page's Basic password) opens the status: the status token, else the
// alert token beyond loopback; anything on loopback without a status
// token. Compared in constant time, as carriesToken does.
func (a *Agent) statusTokenOK(presented string) bool {
	token := a.cfg.StatusToken
	if token == "" {
		if loopbackListen(a.cfg.Listen) {
			return true
		}
		token = a.cfg.AlertToken
	}
	return token != "" && subtle.ConstantTimeCompare([]byte(presented), []byte(token)) == 1
}

// carriesToken reports whether r's Authorization header is token in the
// Bearer scheme, compared in constant time. ConstantTimeCompare returns
// at once on a length mismatch; hashing first would hide the length too,
// but the token's length is no secret worth it: it is a random string.
func carriesToken(r *http.Request, token string) bool {
	got, ok := bearerToken(r.Header.Get("Authorization"))
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}

// handleAlerts takes Alertmanager's webhook as is. Beyond loopback a bearer
// token (Alertmanager's http_config.authorization) is required; without a
// configured token every request is refused. Only alerts a scaling policy
// names are kept (noteAlert, noteAlertNames).
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
		// A node pool's and a service's alike: one alert may be both.
		forPool := a.noteAlert(n, now)
		if a.noteServiceAlert(n, now) || forPool {
			kept++
		} else {
			ignored++
		}
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
