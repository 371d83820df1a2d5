package agent

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/notify"
)

// Three hours of evaluations every 2 s keep one point per 10 s step of the
// last hour and nothing older; a point holds the fewest serving within its
// step and the newest desired size.
func TestSizeHistoryKeepsOneHourInSteps(t *testing.T) {
	h := newSizeHistory()
	start := time.Date(2026, 1, 1, 10, 0, 3, 0, time.UTC)
	var now time.Time
	for i := 0; i < 3*3600/2; i++ {
		now = start.Add(time.Duration(i) * 2 * time.Second)
		h.record(SeriesPool, "c/web", now, SizeSample{Size: 5 - i%5, Desired: i, Min: 1, Max: 10})
	}
	got := h.snapshot(now)
	if len(got) != 1 {
		t.Fatalf("%d series, want 1", len(got))
	}
	sh := got[0]
	if n := len(sh.Points); n < historyPoints-1 || n > historyPoints+1 {
		t.Fatalf("%d points for an hour, want about %d", n, historyPoints)
	}
	if old := sh.Points[0].At; now.Sub(old) > historyWindow+historyStep {
		t.Fatalf("oldest point %s is %s old, more than the window", old, now.Sub(old))
	}
	for i := 1; i < len(sh.Points); i++ {
		if d := sh.Points[i].At.Sub(sh.Points[i-1].At); d != historyStep {
			t.Fatalf("points %d and %d are %s apart, want %s", i-1, i, d, historyStep)
		}
	}
	for _, p := range sh.Points[1:] {
		if p.Size != 1 {
			t.Fatalf("point %+v: want size 1, the fewest of its step", p)
		}
	}
	last, n := sh.Points[len(sh.Points)-1], 3*3600/2-1
	if last.Desired != n || sh.Last.Size != 5-n%5 || sh.Last.Max != 10 {
		t.Fatalf("last point %+v, last sample %+v: want desired %d (the step's newest), last sample's size %d", last, sh.Last, n, 5-n%5)
	}
}

// The number of series is bounded, and series not recorded for an hour go.
func TestSizeHistoryBoundsSeries(t *testing.T) {
	h := newSizeHistory()
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	for i := 0; i < historyMaxSeries+40; i++ {
		h.record(SeriesService, fmt.Sprintf("svc%03d", i), t0.Add(time.Duration(i)*time.Second), SizeSample{Size: 1})
	}
	got := h.snapshot(t0.Add(10 * time.Minute))
	if len(got) != historyMaxSeries {
		t.Fatalf("%d series, want the bound %d", len(got), historyMaxSeries)
	}
	if got[0].Name != "svc040" {
		t.Fatalf("first series %s: the least recently recorded ones should have gone first", got[0].Name)
	}
	// Two hours later one series is recorded again: the others, silent
	// for over an hour, are dropped.
	later := t0.Add(2 * time.Hour)
	h.record(SeriesPool, "c/web", later, SizeSample{Size: 2})
	if got := h.snapshot(later); len(got) != 1 || got[0].Name != "c/web" {
		t.Fatalf("series after an hour of silence: %+v", got)
	}
	h.mu.Lock()
	n := len(h.series)
	h.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d series held, want 1", n)
	}
}

// Everything the status shows is escaped for where it lands in the page:
// a message, a pool id or a host name cannot add markup or script.
func TestStatusPageEscapes(t *testing.T) {
	now := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	evil := `<script>alert("x")</script><img src=x onerror=alert(1)>`
	s := Status{
		Cluster: "c" + evil, Leader: true, Health: "ok", Quorum: QuorumStatus{Managers: 1, Reachable: 1, Held: true},
		Pools: []PoolStatus{{ID: `c/web"` + evil, Role: "worker", MaxSize: 3, Reason: "healthy", Message: evil,
			Nodes: []NodeStatus{{ID: "n1", Hostname: evil, State: "ready"}}}},
		Decisions: []Decision{{Time: now, Pool: "c/web", Kind: "hold", Code: "healthy", Message: evil},
			{Time: now, Service: evil, Kind: "scale_up", Code: "alert", Message: evil}},
		Services:      []ServiceStatus{{Name: evil, Source: "labels", Replicas: 3, Running: 2, MaxReplicas: 5, Message: evil, Note: evil}},
		Notifications: []notify.Active{{Key: "pool_at_max/" + evil, Severity: notify.SeverityWarning, Summary: evil, Since: now}},
	}
	h := newSizeHistory()
	h.record(SeriesPool, s.Pools[0].ID, now.Add(-time.Minute), SizeSample{Size: 1, Desired: 1, Max: 3})
	h.record(SeriesService, evil, now.Add(-time.Minute), SizeSample{Size: 2, Desired: 3})
	h.record(SeriesService, "gone", now.Add(-time.Minute), SizeSample{Size: 1, Desired: 1})
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, buildPage(s, h.snapshot(now), now)); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, bad := range []string{"<script", "<img", `"x")`} {
		if strings.Contains(strings.ToLower(page), bad) {
			t.Fatalf("the page carries %q unescaped:\n%s", bad, page)
		}
	}
	if !strings.Contains(page, "&lt;script&gt;") {
		t.Fatalf("the hostile text is not on the page, escaped:\n%s", page)
	}
	if n := strings.Count(page, "<svg"); n != 3 {
		t.Fatalf("%d charts, want 3 (the pool's, the service's, the gone service's)", n)
	}
	for _, want := range []string{"<h2>Services</h2>", "<h2>Services no longer in the status</h2>", `id="service-gone"`, "<h2>Told people</h2>"} {
		if !strings.Contains(page, want) {
			t.Fatalf("the page lacks %s:\n%s", want, page)
		}
	}
}

// A chart's path steps through the points in the hour, left to right,
// and a pool at its maximum draws its max line at the top.
func TestSizeChartGeometry(t *testing.T) {
	now := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	sh := SizeHistory{Kind: SeriesPool, Name: "c/web", Now: now, Last: SizeSample{Size: 4, Desired: 4, Min: 1, Max: 4},
		Points: []SizePoint{
			{At: now.Add(-historyWindow), Size: 1, Desired: 1},
			{At: now.Add(-30 * time.Minute), Size: 4, Desired: 4},
		}}
	c := newSizeChart(sh)
	if want := "M26.0,55.5 H206.0 V12.0 H386.0"; c.SizePath != want {
		t.Fatalf("size path %q, want %q", c.SizePath, want)
	}
	if !c.ShowMax || c.MaxLine != "12.0" || c.TopValue != 4 {
		t.Fatalf("max line %v at %s, top %d: want shown at the top (12.0), top 4", c.ShowMax, c.MaxLine, c.TopValue)
	}
	if !c.ShowMin || c.MinLine != "55.5" {
		t.Fatalf("min line %v at %s, want shown at 55.5", c.ShowMin, c.MinLine)
	}
}
