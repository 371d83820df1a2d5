package agent

import (
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/autarky/terraform-provider-autarky/internal/swarm"
)

// A scrape never finds a service's series missing while the agent
// publishes the next evaluation's values: an empty scrape in between is
// a stale series to Prometheus, which would hold every check that reads
// it (the adaptation example's query divides by it) and restart the
// alert rules' clocks.
func TestServiceSeriesHaveNoGap(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := &Agent{log: hclog.NewNullLogger(), reasons: map[string]string{}, history: newSizeHistory(), services: newServiceMemory(reg)}
	statuses := []ServiceStatus{{Name: "web", Mode: swarm.ModeReplicated, Replicas: 2, Running: 2, MinReplicas: 1, MaxReplicas: 5}}
	o := &observation{now: time.Now()}
	a.reportServices(o, statuses)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				a.reportServices(o, statuses)
			}
		}
	}()
	missing := 0
	for i := 0; i < 3000; i++ {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		seen := false
		for _, mf := range mfs {
			if mf.GetName() == "autarky_service_running_replicas" && len(mf.GetMetric()) == 1 {
				seen = true
			}
		}
		if !seen {
			missing++
		}
	}
	close(stop)
	wg.Wait()
	if missing > 0 {
		t.Fatalf("%d of 3000 scrapes found no autarky_service_running_replicas series", missing)
	}
	// A service no longer under a policy is gone from the metrics.
	a.reportServices(o, nil)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "autarky_service_running_replicas" && len(mf.GetMetric()) != 0 {
			t.Fatalf("after the policy went: %v", mf.GetMetric())
		}
	}
}
