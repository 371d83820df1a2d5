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
	"net/http"
	"os"
	"os/signal"
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
	if err := fs.Parse(args); err != nil {
		return err
	}
	host, _ := os.Hostname()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintf(w, "ok from %s\n", host) })
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
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
