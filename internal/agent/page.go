package agent

import (
	"bytes"
	_ "embed"
	"html/template"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/notify"
)

// The status page: what /v1/status says, for a person with a browser, at
// the agent's "/". It is one HTML document rendered on the server with
// html/template (every value escaped for where it lands), with its charts
// as inline SVG drawn here: no JavaScript, no fonts or libraries fetched
// from anywhere, so it works on a cluster with no way out and its
// Content-Security-Policy can forbid every script. It refreshes itself
// every pageRefresh with a meta tag.
//
// It shows what /v1/status shows (node ids and host names, what is
// failing, the decisions' reasons) and nothing more: no token, no address
// of the store, no label values of alerts. So it is guarded like
// /v1/status (statusAuthorized): open when the agent listens on loopback,
// and beyond, only with the status token (else the alert token). Because
// a browser cannot send a bearer token by itself, the page also takes that
// same token as the password of HTTP Basic authentication (any user name),
// and its 401 asks for it, so the browser prompts.

//go:embed page.html
var pageHTML string

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"short":       short,
	"clock":       pageClock,
	"stateClass":  stateClass,
	"reasonClass": reasonClass,
	"severityClass": func(s notify.Severity) string {
		return map[notify.Severity]string{notify.SeverityCritical: "bad", notify.SeverityWarning: "warn"}[s]
	},
}).Parse(pageHTML))

const (
	// pageRefresh: the page reloads itself this often (seconds).
	pageRefresh = 10
	// pageDecisions: the newest decisions the page lists.
	pageDecisions = 30
)

// pageData is what the template renders.
type pageData struct {
	Status    Status
	Now       time.Time
	Role      string
	Refresh   int
	Pools     []pagePool
	Services  []pageService
	Others    []pageKind
	Decisions []Decision
}

type pagePool struct {
	PoolStatus
	Chart *sizeChart
}

type pageService struct {
	ServiceStatus
	Chart *sizeChart
}

// pageKind is the charts of one kind of series that no pool or service
// of the status names (a service no longer under a policy keeps its
// chart for the hour its history covers), under a heading.
type pageKind struct {
	Title  string
	Charts []*sizeChart
}

// handlePage serves the status page (GET and HEAD of "/" only).
func (a *Agent) handlePage(w http.ResponseWriter, r *http.Request) {
	if !a.pageAuthorized(r) {
		w.Header().Add("WWW-Authenticate", `Basic realm="autarky-agent", charset="UTF-8"`)
		w.Header().Add("WWW-Authenticate", `Bearer realm="autarky-agent"`)
		http.Error(w, "the status page needs the agent's status token (--status-token-file), else its alert token: as the password (any user name) when the browser asks, or as an Authorization header \"Bearer <token>\"", http.StatusUnauthorized)
		return
	}
	now := a.cfg.Now()
	data := buildPage(a.Status(), a.history.snapshot(now), now)
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, data); err != nil {
		a.log.Error("status page", "error", err)
		http.Error(w, "the status page could not be rendered: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	// No script at all, nothing fetched, never framed; the topology is
	// not cached by the browser or a proxy, nor sent on as a referrer.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	_, _ = w.Write(buf.Bytes())
}

// pageAuthorized is statusAuthorized, also given the token as HTTP Basic
// authentication's password.
func (a *Agent) pageAuthorized(r *http.Request) bool {
	if a.statusAuthorized(r) {
		return true
	}
	_, password, ok := r.BasicAuth()
	return ok && password != "" && a.statusTokenOK(password)
}

// buildPage arranges a status and the size history for the template:
// pools and services in the status's order, each with its chart; the
// other series under their kinds' headings; decisions newest first.
func buildPage(s Status, series []SizeHistory, now time.Time) pageData {
	d := pageData{Status: s, Now: now, Refresh: pageRefresh}
	d.Role = "follower (observes and reports)"
	if s.Leader {
		d.Role = "leader (acts)"
	}
	if s.DryRun {
		d.Role += ", dry-run"
	}
	charts := map[seriesKey]*sizeChart{}
	for _, sh := range series {
		charts[seriesKey{sh.Kind, sh.Name}] = newSizeChart(sh)
	}
	for _, p := range s.Pools {
		k := seriesKey{SeriesPool, p.ID}
		d.Pools = append(d.Pools, pagePool{PoolStatus: p, Chart: charts[k]})
		delete(charts, k)
	}
	for _, sv := range s.Services {
		k := seriesKey{SeriesService, sv.Name}
		d.Services = append(d.Services, pageService{ServiceStatus: sv, Chart: charts[k]})
		delete(charts, k)
	}
	others := map[string]*pageKind{}
	var kinds []string
	for _, sh := range series {
		c := charts[seriesKey{sh.Kind, sh.Name}]
		if c == nil {
			continue
		}
		k := others[sh.Kind]
		if k == nil {
			k = &pageKind{Title: kindTitle(sh.Kind) + " no longer in the status"}
			others[sh.Kind] = k
			kinds = append(kinds, sh.Kind)
		}
		k.Charts = append(k.Charts, c)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		d.Others = append(d.Others, *others[k])
	}
	d.Decisions = append([]Decision(nil), s.Decisions...)
	sort.SliceStable(d.Decisions, func(i, j int) bool { return d.Decisions[i].Time.After(d.Decisions[j].Time) })
	if len(d.Decisions) > pageDecisions {
		d.Decisions = d.Decisions[:pageDecisions]
	}
	return d
}

// kindTitle is a series kind's heading: "service" gives "Services".
func kindTitle(kind string) string {
	if kind == "" {
		return "Other"
	}
	return strings.ToUpper(kind[:1]) + kind[1:] + "s"
}

// pageClock is a time of day in UTC, with its date when that is not today.
func pageClock(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	t = t.UTC()
	if y, m, d := time.Now().UTC().Date(); t.Year() != y || t.Month() != m || t.Day() != d {
		return t.Format(time.DateTime)
	}
	return t.Format(time.TimeOnly)
}

func stateClass(state string) string {
	switch state {
	case "ready":
		return "ok"
	case "down", "disconnected", "unknown":
		return "bad"
	}
	return "warn"
}

func reasonClass(code string) string {
	switch code {
	case "healthy", "within_target", "act":
		return "ok"
	case "quorum", "circuit_breaker", "error", "invalid", "max_size", "stale_metric", "no_data", "backoff", "unschedulable":
		return "bad"
	case "disabled", "":
		return ""
	}
	return "warn"
}

// sizeChart is one series drawn as an SVG step chart: the last hour left
// to right, one pixel per historyStep; the size that serves as a solid
// line, the desired size dashed; the bounds as dotted lines when the
// chart's range reaches them. The y axis runs from 0 to the largest of
// the values, min_size and 1, and to max_size when a value reaches it, so
// a pool pinned at its maximum shows its line on the max line.
type sizeChart struct {
	Kind, Name, Label, SizeName string
	Size, Desired, Min, Max     int
	Width, Height               int
	Left, Right, Top            int
	PlotWidth, PlotHeight       int
	LabelX, TopLabelY           int
	BottomLabelY, AxisY         int
	TopValue                    int
	SizePath, DesiredPath       string
	ShowMax, ShowMin            bool
	MaxLine, MinLine            string
	windowStart, now            time.Time
	scaleTop                    float64
}

const (
	chartLeft   = 26
	chartTop    = 6
	chartPlotH  = 64
	chartBottom = 16
	// chartHeadroom keeps the top value's line off the plot's border.
	chartHeadroom = 6
)

func newSizeChart(sh SizeHistory) *sizeChart {
	c := &sizeChart{
		Kind: sh.Kind, Name: sh.Name,
		Size: sh.Last.Size, Desired: sh.Last.Desired, Min: sh.Last.Min, Max: sh.Last.Max,
		Left: chartLeft, Top: chartTop, PlotWidth: historyPoints, PlotHeight: chartPlotH,
		now: sh.Now, windowStart: sh.Now.Add(-historyWindow),
	}
	c.SizeName = "ready"
	if sh.Kind != SeriesPool {
		c.SizeName = "running"
	}
	c.Label = sh.Kind + " " + sh.Name + ": size over the last hour, now " + strconv.Itoa(c.Size) + " of " + strconv.Itoa(c.Desired) + " desired"
	c.Right = c.Left + c.PlotWidth
	c.Width = c.Right + 4
	c.Height = chartTop + chartPlotH + chartBottom
	c.LabelX = c.Left - 4
	c.BottomLabelY = chartTop + chartPlotH
	c.AxisY = c.Height - 3
	top := max(1, c.Min)
	for _, p := range sh.Points {
		top = max(top, p.Size, p.Desired)
	}
	c.TopValue, c.scaleTop = top, float64(top)
	c.TopLabelY = chartTop + chartHeadroom + 3
	if c.Max > 0 && c.Max <= top {
		c.ShowMax, c.MaxLine = true, c.fy(c.Max)
	}
	if c.Min > 0 {
		c.ShowMin, c.MinLine = true, c.fy(c.Min)
	}
	c.SizePath = c.stepPath(sh.Points, func(p SizePoint) int { return p.Size })
	c.DesiredPath = c.stepPath(sh.Points, func(p SizePoint) int { return p.Desired })
	return c
}

// stepPath is an SVG path through the points as steps: a value holds
// until the next point, and the last one until now.
func (c *sizeChart) stepPath(points []SizePoint, v func(SizePoint) int) string {
	if len(points) == 0 {
		return ""
	}
	var b strings.Builder
	for i, p := range points {
		x, y := c.fx(p.At), c.fy(v(p))
		if i == 0 {
			b.WriteString("M" + x + "," + y)
			continue
		}
		b.WriteString(" H" + x + " V" + y)
	}
	b.WriteString(" H" + c.fx(c.now))
	return b.String()
}

// fx is the x of time t: clamped to the plot.
func (c *sizeChart) fx(t time.Time) string {
	x := float64(t.Sub(c.windowStart)) / float64(historyStep)
	x = min(max(x, 0), float64(c.PlotWidth))
	return strconv.FormatFloat(float64(c.Left)+x, 'f', 1, 64)
}

// fy is the y of value v, 0 at the plot's bottom.
func (c *sizeChart) fy(v int) string {
	y := float64(c.Top+c.PlotHeight) - float64(v)/c.scaleTop*float64(c.PlotHeight-chartHeadroom)
	y = max(y, float64(c.Top))
	return strconv.FormatFloat(y, 'f', 1, 64)
}
