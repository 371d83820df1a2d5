package agent

import (
	"sort"
	"sync"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/decide"
)

// The status page (page.go) draws each pool's size, and each service's
// once the agent scales services, over the last hour. The agent keeps that
// history itself, in memory: the page must work where no Prometheus
// scrapes the agent (the local platform, a first look at a new cluster),
// and an hour of a few hundred series is small. After a restart the charts
// start empty; Prometheus, where it scrapes autarky_nodes and
// autarky_pool_instances, keeps the long history.
//
// Memory is bounded on both axes. A series holds one point per
// historyStep, in a ring of historyPoints, so an hour costs the same
// whatever the evaluation interval. A point keeps the fewest that served
// within its step and the last desired size: a node lost for a few
// seconds, or replicas that crashed and came back, still show as a dip
// on the hour's chart, where the step's last value would hide them. At most
// historyMaxSeries series are kept: a series not recorded for
// historyWindow is dropped (a deleted pool's chart stays for the hour it
// still has data for), and a new series beyond the limit replaces the one
// recorded least recently.
const (
	historyWindow    = time.Hour
	historyStep      = 10 * time.Second
	historyPoints    = int(historyWindow / historyStep)
	historyMaxSeries = 256
)

// Kinds of series the history keeps, by what they size.
const (
	// SeriesPool is a node pool; its name is the pool id.
	SeriesPool = "pool"
	// SeriesService is a Swarm service; its name is the service's name.
	SeriesService = "service"
)

// SizeSample is one recording of a thing's size: how many it has that
// serve (Ready nodes, running replicas), how many it is meant to have, and
// its bounds (zero Max: none).
type SizeSample struct {
	Size    int
	Desired int
	Min     int
	Max     int
}

// sizePoint is a SizeSample at the start of its historyStep.
type sizePoint struct {
	at      time.Time
	size    int
	desired int
}

// sizeSeries is one thing's ring of points.
type sizeSeries struct {
	kind, name string
	points     [historyPoints]sizePoint
	next, n    int // next slot to write; points held
	last       SizeSample
	lastAt     time.Time
}

// sizeHistory is every series, by kind and name. Safe for concurrent use:
// the evaluation records and the page reads.
type sizeHistory struct {
	mu     sync.Mutex
	series map[seriesKey]*sizeSeries
}

type seriesKey struct{ kind, name string }

func newSizeHistory() *sizeHistory {
	return &sizeHistory{series: map[seriesKey]*sizeSeries{}}
}

// record notes kind/name's size at time at. Any part of the agent that
// sizes something records it here (report does pools; service scaling
// records its services), and the page draws every series it holds.
func (h *sizeHistory) record(kind, name string, at time.Time, s SizeSample) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := seriesKey{kind, name}
	sr := h.series[k]
	if sr == nil {
		h.pruneLocked(at)
		if len(h.series) >= historyMaxSeries {
			h.dropOldestLocked()
		}
		sr = &sizeSeries{kind: kind, name: name}
		h.series[k] = sr
	}
	step := at.Truncate(historyStep)
	p := sizePoint{at: step, size: s.Size, desired: s.Desired}
	if sr.n > 0 {
		prev := (sr.next + historyPoints - 1) % historyPoints
		if !sr.points[prev].at.Before(step) {
			// The same step (or a clock that went back): the fewest
			// serving, the newest desired size.
			pp := &sr.points[prev]
			pp.size, pp.desired = min(pp.size, s.Size), s.Desired
			sr.last, sr.lastAt = s, at
			return
		}
	}
	sr.points[sr.next] = p
	sr.next = (sr.next + 1) % historyPoints
	if sr.n < historyPoints {
		sr.n++
	}
	sr.last, sr.lastAt = s, at
}

// pruneLocked drops the series not recorded within historyWindow of now.
func (h *sizeHistory) pruneLocked(now time.Time) {
	for k, sr := range h.series {
		if now.Sub(sr.lastAt) > historyWindow {
			delete(h.series, k)
		}
	}
}

func (h *sizeHistory) dropOldestLocked() {
	var oldest *sizeSeries
	for _, sr := range h.series {
		if oldest == nil || sr.lastAt.Before(oldest.lastAt) {
			oldest = sr
		}
	}
	if oldest != nil {
		delete(h.series, seriesKey{oldest.kind, oldest.name})
	}
}

// SizeHistory is one series as the page draws it: its points within the
// window ending at Now, oldest first, and its latest sample.
type SizeHistory struct {
	Kind, Name string
	Now        time.Time
	Points     []SizePoint
	Last       SizeSample
}

// SizePoint is one step of a SizeHistory.
type SizePoint struct {
	At      time.Time
	Size    int
	Desired int
}

// snapshot returns the series recorded within historyWindow of now, by
// kind then name.
func (h *sizeHistory) snapshot(now time.Time) []SizeHistory {
	h.mu.Lock()
	defer h.mu.Unlock()
	from := now.Add(-historyWindow)
	var out []SizeHistory
	for _, sr := range h.series {
		if now.Sub(sr.lastAt) > historyWindow {
			continue
		}
		sh := SizeHistory{Kind: sr.kind, Name: sr.name, Now: now, Last: sr.last}
		for i := 0; i < sr.n; i++ {
			p := sr.points[(sr.next-sr.n+i+historyPoints)%historyPoints]
			if p.at.Before(from.Truncate(historyStep)) || p.at.After(now) {
				continue
			}
			sh.Points = append(sh.Points, SizePoint{At: p.at, Size: p.size, Desired: p.desired})
		}
		out = append(out, sh)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// recordPools notes every pool's size after an evaluation: its Ready
// nodes against its desired size and bounds.
func (a *Agent) recordPools(at time.Time, pools []PoolStatus) {
	for _, p := range pools {
		ready := 0
		for _, n := range p.Nodes {
			if n.State == decide.NodeReady {
				ready++
			}
		}
		a.history.record(SeriesPool, p.ID, at, SizeSample{Size: ready, Desired: p.Desired, Min: p.MinSize, Max: p.MaxSize})
	}
}
