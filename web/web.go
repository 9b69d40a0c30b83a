// Package web serves pubpresence's HTTP endpoints: Prometheus metrics at
// /metrics, liveness at /healthz and readiness at /readyz, and, when there
// are tokens, the HTTP face: the API under /api/v1/ and the page at /
// (docs/http.md).
package web

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pubpresence/pubpresence/metrics"
	"github.com/pubpresence/pubpresence/status"
)

// Handler returns the HTTP handler for m and st, and for api unless it is
// nil (then /api/ and / answer 404).
func Handler(m *metrics.Metrics, st *status.Tracker, api *API) http.Handler {
	mux := http.NewServeMux()
	if api != nil {
		api.register(mux)
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		// With several streams (a cluster), each answer says which are up.
		streams := st.StreamsSummary()
		if streams != "" {
			streams = " (" + streams + ")"
		}
		switch p := st.Phase(); {
		case st.Problem() != "":
			http.Error(w, st.Problem()+streams, http.StatusServiceUnavailable)
		case p == status.Standby:
			http.Error(w, "standby: another instance holds the component name", http.StatusServiceUnavailable)
		case !p.Connected():
			http.Error(w, "not connected"+streams, http.StatusServiceUnavailable)
		case p != status.Online:
			http.Error(w, "init ("+p.String()+")"+streams, http.StatusServiceUnavailable)
		case !st.Ready():
			http.Error(w, "failing: pubsub requests to the actual node fail"+streams, http.StatusServiceUnavailable)
		default:
			_, _ = w.Write([]byte("online" + streams + "\n"))
		}
	})
	return mux
}
