package agent

import (
	"crypto/subtle"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// alertmanagerPayload is the part of Alertmanager's webhook body (version 4)
// the agent reads.
type alertmanagerPayload struct {
	Version string `json:"version"`
	Status  string `json:"status"`
	Alerts  []struct {
		Status   string            `json:"status"`
		Labels   map[string]string `json:"labels"`
		StartsAt time.Time         `json:"startsAt"`
	} `json:"alerts"`
}

// alertState is what the agent knows of one named alert.
type alertState struct {
	Firing     bool
	ReceivedAt time.Time
	// Handled is set once a scaling step was taken for this notification;
	// a later notification (Alertmanager's repeat) asks again.
	Handled bool
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

// handleAlerts takes Alertmanager's webhook as is. Beyond loopback a bearer
// token (Alertmanager's http_config.authorization) is required; without a
// configured token every request is refused.
func (a *Agent) handleAlerts(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "use POST with Alertmanager's webhook body", http.StatusMethodNotAllowed)
		return
	}
	if a.cfg.AlertToken != "" || !loopbackListen(a.cfg.Listen) {
		got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if a.cfg.AlertToken == "" || subtle.ConstantTimeCompare([]byte(got), []byte(a.cfg.AlertToken)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="autarky-agent"`)
			http.Error(w, "a bearer token is required: set http_config.authorization in Alertmanager's webhook receiver", http.StatusUnauthorized)
			return
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var p alertmanagerPayload
	if err := json.Unmarshal(body, &p); err != nil {
		http.Error(w, "not an Alertmanager webhook body: "+err.Error(), http.StatusBadRequest)
		return
	}
	now := a.cfg.Now()
	a.mu.Lock()
	for _, al := range p.Alerts {
		name := al.Labels["alertname"]
		if name == "" {
			continue
		}
		firing := al.Status != "resolved"
		a.alerts[name] = alertState{Firing: firing, ReceivedAt: now}
	}
	a.mu.Unlock()
	a.log.Info("alerts received", "count", len(p.Alerts), "status", p.Status)
	a.wakeNow()
	w.WriteHeader(http.StatusAccepted)
}
