// Package workload is a tiny program for test and demo services on a
// cluster. It ships inside the autarky-agent binary (run as "workload", or
// from a file named "workload") and is loaded into every local node as the
// image autarky/workload:latest, so no registry is needed.
package workload

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Image is the reference the local platform imports the workload as.
const Image = "autarky/workload:latest"

// Run serves a small HTTP endpoint until SIGTERM, the way a real service
// would, and exits cleanly so Swarm sees a graceful stop.
func Run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("workload", flag.ContinueOnError)
	fs.SetOutput(out)
	listen := fs.String("listen", ":8080", "address to serve HTTP on")
	stubborn := fs.Bool("ignore-sigterm", false, "keep running on SIGTERM, as a task that never finishes draining")
	load := fs.Float64("load", 0, "the load gauge's first value (see Handler)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	host, _ := os.Hostname()
	srv := &http.Server{Addr: *listen, Handler: Handler(host, *load), ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	fmt.Fprintf(out, "workload serving on %s\n", *listen)
	if *stubborn {
		signal.Ignore(syscall.SIGTERM, syscall.SIGINT)
		fmt.Fprintln(out, "ignoring SIGTERM")
		return <-errc
	}
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	case err := <-errc:
		return err
	}
}

// LoadMetric is the name of the load gauge the workload exports.
const LoadMetric = "autarky_workload_load"

// Handler serves the workload's endpoints: "/" answers who served it;
// "/metrics" exports the load gauge in Prometheus's text format; and
// "/load" sets it (PUT or POST with the number as the body), so a test
// or a demo drives the load a Prometheus check reads. The gauge stands
// for the demand on the service (requests in flight, say), in units of
// what one replica serves: with a target of 1 per replica a scaling
// policy sizes the service to it.
func Handler(host string, load float64) http.Handler {
	var mu sync.Mutex
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintf(w, "ok from %s\n", host) })
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		v := load
		mu.Unlock()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, "# HELP %s The demand on the service, set through /load.\n# TYPE %s gauge\n%s %s\n",
			LoadMetric, LoadMetric, LoadMetric, strconv.FormatFloat(v, 'g', -1, 64))
	})
	setLoad := func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(io.LimitReader(r.Body, 64))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			http.Error(w, fmt.Sprintf("the body %q is not a load: send a number of 0 or more, such as 3.5", b), http.StatusBadRequest)
			return
		}
		mu.Lock()
		load = v
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}
	mux.HandleFunc("PUT /load", setLoad)
	mux.HandleFunc("POST /load", setLoad)
	return mux
}
