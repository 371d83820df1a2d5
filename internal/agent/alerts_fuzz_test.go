package agent

import (
	"encoding/json"
	"testing"
)

// FuzzDecodeAlerts feeds /v1/alerts' decoder arbitrary bodies: it never
// panics; a body it takes is a JSON webhook whose alerts it returns in
// order, each with its alertname (never empty) and firing exactly when its
// status is not "resolved".
func FuzzDecodeAlerts(f *testing.F) {
	f.Add([]byte(`{"version":"4","status":"firing","receiver":"autarky","groupLabels":{},"alerts":[{"status":"firing","labels":{"alertname":"WebOverloaded","severity":"page"},"annotations":{},"startsAt":"2026-01-01T00:00:00Z","endsAt":"0001-01-01T00:00:00Z","fingerprint":"a"}]}`))
	f.Add([]byte(`{"version":"4","status":"resolved","alerts":[{"status":"resolved","labels":{"alertname":"WebOverloaded"}},{"status":"firing","labels":{}}]}`))
	f.Add([]byte(`{"alerts":[{"labels":{"alertname":""}},{"labels":null},null]}`))
	f.Add([]byte(`{"alerts":[{"startsAt":"not a time","labels":{"alertname":"x"}}]}`))
	f.Add([]byte(`{"alerts":{}}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"alerts":[{"labels":{"alertname":"\u0000\ud800"}}]}`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, body []byte) {
		notices, _, err := decodeAlerts(body)
		if err != nil {
			if notices != nil {
				t.Fatalf("an error with alerts: %v", notices)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("took a body that is not JSON: %q", body)
		}
		// The same body read as plain JSON names the same alerts.
		var raw struct {
			Alerts []*struct {
				Status string            `json:"status"`
				Labels map[string]string `json:"labels"`
			} `json:"alerts"`
		}
		if err := json.Unmarshal(body, &raw); err != nil {
			t.Fatalf("the decoder took a body plain JSON refuses: %v", err)
		}
		var want []alertNotice
		for _, al := range raw.Alerts {
			if al == nil || al.Labels["alertname"] == "" {
				continue
			}
			want = append(want, alertNotice{Name: al.Labels["alertname"], Firing: al.Status != "resolved"})
		}
		if len(notices) != len(want) {
			t.Fatalf("decoded %d alerts, want %d: %v vs %v", len(notices), len(want), notices, want)
		}
		for i := range want {
			if notices[i] != want[i] {
				t.Fatalf("alert %d: %+v, want %+v", i, notices[i], want[i])
			}
			if notices[i].Name == "" {
				t.Fatalf("alert %d has no name", i)
			}
		}
	})
}
