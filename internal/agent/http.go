package agent

import (
	"net/http"
	"time"
)

// The agent's HTTP server timeouts. Its clients are Prometheus scraping
// /metrics, Alertmanager posting to /v1/alerts, the other agents probing
// /healthz and a person reading /v1/status: all on the cluster's network,
// all with small requests. Without deadlines a client that sends its
// request a byte at a time (slowloris), or opens connections and never
// uses them, holds a goroutine and a descriptor each for as long as it
// likes; a few thousand of them exhaust the agent.
const (
	// HTTPReadHeaderTimeout bounds the request line and headers.
	HTTPReadHeaderTimeout = 5 * time.Second
	// HTTPReadTimeout bounds the whole request, headers and body: a
	// megabyte (the largest alert post) takes milliseconds on a LAN.
	HTTPReadTimeout = 15 * time.Second
	// HTTPWriteTimeout bounds the answer, counted from the end of the
	// request's headers; every handler answers from memory.
	HTTPWriteTimeout = 30 * time.Second
	// HTTPIdleTimeout closes a kept-alive connection no request came on
	// for this long. Prometheus scrapes every 15 to 60 s and reconnects
	// at no cost when it finds the connection closed.
	HTTPIdleTimeout = 90 * time.Second
	// httpMaxHeaderBytes: the agent's clients send a few hundred bytes.
	httpMaxHeaderBytes = 64 << 10
)

// httpServer is the server Run listens with: the agent's handler behind
// the timeouts above.
func (a *Agent) httpServer() *http.Server {
	return &http.Server{
		Handler:           a.Handler(),
		ReadHeaderTimeout: HTTPReadHeaderTimeout,
		ReadTimeout:       HTTPReadTimeout,
		WriteTimeout:      HTTPWriteTimeout,
		IdleTimeout:       HTTPIdleTimeout,
		MaxHeaderBytes:    httpMaxHeaderBytes,
	}
}
