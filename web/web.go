// Package web serves pubpresence's HTTP endpoints: Prometheus metrics at
// /metrics, liveness at /healthz and readiness at /readyz.
package web

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pubpresence/pubpresence/metrics"
	"github.com/pubpresence/pubpresence/status"
)

// Handler returns the HTTP handler for m and st.
func Handler(m *metrics.Metrics, st *status.Tracker) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		switch p := st.Phase(); {
		case st.Problem() != "":
			http.Error(w, st.Problem(), http.StatusServiceUnavailable)
		case p == status.Standby:
			http.Error(w, "standby: another instance holds the component name", http.StatusServiceUnavailable)
		case !p.Connected():
			http.Error(w, "not connected", http.StatusServiceUnavailable)
		case p != status.Online:
			http.Error(w, "init ("+p.String()+")", http.StatusServiceUnavailable)
		case !st.Ready():
			http.Error(w, "failing: pubsub requests to the actual node fail", http.StatusServiceUnavailable)
		default:
			_, _ = w.Write([]byte("online\n"))
		}
	})
	return mux
}
