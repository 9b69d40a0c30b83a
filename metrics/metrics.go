// Package metrics defines pubpresence's Prometheus metrics on a registry of
// its own.
package metrics

import (
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/pubpresence/pubpresence/status"
)

// Metrics are the service's instruments.
type Metrics struct {
	Registry *prometheus.Registry

	State          *prometheus.GaugeVec // state{state="init"|"online"|"standby"} 1 for the current one
	Phase          *prometheus.GaugeVec // phase{phase=status.Phase} 1 for the current one
	Connected      prometheus.Gauge
	Connections    prometheus.Gauge
	Users          prometheus.Gauge
	Events         *prometheus.CounterVec   // presence stanzas by kind
	Malformed      *prometheus.CounterVec   // input dropped or repaired, by reason
	Requests       *prometheus.CounterVec   // pubsub requests by node, op, result
	RequestSeconds *prometheus.HistogramVec // pubsub request latency by node, op
	IQErrors       *prometheus.CounterVec   // error answers by condition
	Reconnects     prometheus.Counter
	Syncs          *prometheus.CounterVec // syncs by kind (initial, reconcile) and result
	SyncSeconds    *prometheus.HistogramVec
	SyncSessions   prometheus.Gauge       // sessions the last sync found on the server
	Fixes          *prometheus.CounterVec // reconciliation fixes by kind
	StuckItems     prometheus.Gauge       // actual node items the server lists and will not retract
	QueueDepth     prometheus.Gauge
	LiveDropped    prometheus.Counter
	RepliesDropped prometheus.Counter
	WriteWaits     prometheus.Counter
	Reloads        *prometheus.CounterVec // SIGHUP reloads by result
	BuildInfo      *prometheus.GaugeVec
	Foreign        prometheus.Counter   // IQ answers meant for another instance
	Tracking       *prometheus.GaugeVec // tracking{way="privileged"|"roster"} 1 for the way in force
	Unknown        prometheus.Gauge     // sessions listed whose presence the server never told
	Excluded       prometheus.Counter   // presence stanzas of excluded users ignored
	StreamUp       *prometheus.GaugeVec // stream_up{stream, address}: 1 while that component stream is up

	// The HTTP face (web.API).
	HTTPRequests     *prometheus.CounterVec // API and page requests by endpoint and code
	HTTPUnauthorized *prometheus.CounterVec // API requests refused for want of a valid token, by reason
	HTTPTokens       prometheus.Gauge       // tokens loaded from http.tokens_file
	HTTPStreams      prometheus.Gauge       // event streams open
	HTTPRefused      prometheus.Counter     // event streams refused by max_streams
	HTTPSnapshots    *prometheus.CounterVec // snapshots sent on event streams, by reason
	HTTPResumes      prometheus.Counter     // event streams resumed from Last-Event-ID
	HTTPClosed       *prometheus.CounterVec // event streams ended, by reason

	// The children of Requests/RequestSeconds and Events that the hot path
	// uses: WithLabelValues hashes the labels and takes a lock on every
	// call, about a microsecond per event (a sync.Map, the hash of its
	// key, 0.15 µs). Each is a short list, never changed once stored but
	// replaced whole under seriesMu: a lookup is a scan of a few string
	// comparisons, without a lock.
	seriesMu       sync.Mutex
	requestsSeries atomic.Pointer[[]requestSeries]
	eventsSeries   atomic.Pointer[[]eventSeries]
}

type requestKey struct{ node, op, result string }

type requestSeries struct {
	key     requestKey
	count   prometheus.Counter
	seconds prometheus.Observer
}

type eventSeries struct {
	kind  string
	count prometheus.Counter
}

// Request counts one pubsub request that ended with result ("ok" or
// "error") and observes its duration.
func (m *Metrics) Request(node, op, result string, took time.Duration) {
	s := m.requestSeries(requestKey{node, op, result})
	s.count.Inc()
	s.seconds.Observe(took.Seconds())
}

func (m *Metrics) requestSeries(k requestKey) *requestSeries {
	if all := m.requestsSeries.Load(); all != nil {
		for i := range *all {
			if (*all)[i].key == k {
				return &(*all)[i]
			}
		}
	}
	m.seriesMu.Lock()
	defer m.seriesMu.Unlock()
	var all []requestSeries
	if p := m.requestsSeries.Load(); p != nil {
		all = *p
		for i := range all {
			if all[i].key == k {
				return &all[i]
			}
		}
	}
	all = append(all[:len(all):len(all)], requestSeries{k, m.Requests.WithLabelValues(k.node, k.op, k.result),
		m.RequestSeconds.WithLabelValues(k.node, k.op)})
	m.requestsSeries.Store(&all)
	return &all[len(all)-1]
}

// Event counts one presence stanza of kind.
func (m *Metrics) Event(kind string) {
	if all := m.eventsSeries.Load(); all != nil {
		for i := range *all {
			if (*all)[i].kind == kind {
				(*all)[i].count.Inc()
				return
			}
		}
	}
	m.seriesMu.Lock()
	defer m.seriesMu.Unlock()
	var all []eventSeries
	if p := m.eventsSeries.Load(); p != nil {
		all = *p
		for i := range all {
			if all[i].kind == kind {
				all[i].count.Inc()
				return
			}
		}
	}
	all = append(all[:len(all):len(all)], eventSeries{kind, m.Events.WithLabelValues(kind)})
	m.eventsSeries.Store(&all)
	all[len(all)-1].count.Inc()
}

// New creates the metrics and registers them, with the Go and process
// collectors, on a new registry. version is shown by pubpresence_build_info.
func New(version string) *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry:    r,
		State:       prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pubpresence_state", Help: "Service state: 1 for the current one of init, online and standby."}, []string{"state"}),
		Phase:       prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pubpresence_phase", Help: "Life-cycle phase: 1 for the current one of connecting, nodes, discovering, converging, online and standby."}, []string{"phase"}),
		Connected:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "pubpresence_connected", Help: "1 while the component stream is up."}),
		Connections: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pubpresence_tracked_connections", Help: "User connections (full JIDs) tracked as online."}),
		Users:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "pubpresence_tracked_users", Help: "Users (bare JIDs) with at least one tracked connection."}),
		Events:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pubpresence_presence_events_total", Help: "Presence stanzas received, by type."}, []string{"type"}),
		Malformed:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pubpresence_malformed_total", Help: "Malformed input repaired or dropped, by reason."}, []string{"reason"}),
		Requests:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pubpresence_pubsub_requests_total", Help: "Publish and retract requests sent by the publish queue, by node, operation and result (error: refused, timed out or not sent)."}, []string{"node", "op", "result"}),
		RequestSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "pubpresence_pubsub_request_duration_seconds", Help: "Time from sending a pubsub request to its answer.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, []string{"node", "op"}),
		IQErrors:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pubpresence_iq_errors_total", Help: "Failed requests to the server, by error condition (the stanza error's, or timeout, or other)."}, []string{"condition"}),
		Reconnects: prometheus.NewCounter(prometheus.CounterOpts{Name: "pubpresence_reconnects_total", Help: "Component streams lost and connection attempts failed, each followed by a new attempt."}),
		Syncs:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pubpresence_syncs_total", Help: "Resyncs with the server, by kind (initial, reconcile) and result."}, []string{"kind", "result"}),
		SyncSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "pubpresence_sync_duration_seconds", Help: "Duration of a resync, from its start to the actual node being equal to the server's truth.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14)}, []string{"kind"}),
		SyncSessions: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pubpresence_sync_sessions", Help: "Online sessions the server listed at the last resync."}),
		Fixes:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pubpresence_reconcile_fixes_total", Help: "Differences a periodic reconciliation corrected, by kind (ghost: connection gone from the server; missing: connection the state lacked; item_retracted, item_published: items of the actual node)."}, []string{"kind"}),
		StuckItems: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pubpresence_actual_stuck_items",
			Help: "Items of the actual node that the server still listed at the last resync though it had answered their retract with item-not-found: it keeps them and no request removes them (ejabberd 23.01, after a node was deleted while items were published to it)."}),
		QueueDepth:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "pubpresence_publish_queue_depth", Help: "Pubsub requests queued, not yet sent."}),
		LiveDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "pubpresence_live_dropped_total", Help: "Live events dropped because the publish queue was full."}),
		WriteWaits: prometheus.NewCounter(prometheus.CounterOpts{Name: "pubpresence_write_waits_total",
			Help: "Writes to the server that took xmpp's write timeout (10 s) and went on because the server was still sending: a busy server."}),
		RepliesDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "pubpresence_replies_dropped_total",
			Help: "Presence answers (subscription, probe) dropped because 65536 were waiting for the stream's writer."}),
		Reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pubpresence_config_reloads_total",
			Help: "Configuration reloads on SIGHUP, by result (ok, error)."}, []string{"result"}),
		Foreign: prometheus.NewCounter(prometheus.CounterOpts{Name: "pubpresence_foreign_answers_total",
			Help: "IQ answers the server delivered to this instance for requests another connection with the same component name sent (ejabberd splits traffic between them)."}),
		Tracking: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pubpresence_tracking",
			Help: "How presence reaches the service on the current stream: 1 for privileged (XEP-0356) or roster, 0 for both before it is known."}, []string{"way"}),
		Unknown: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pubpresence_sessions_unknown",
			Help: "Online sessions the server listed at the last resync or poll whose presence (show, text) it never told the service, so they are not published (with privileged presence on ejabberd: sessions online before the service connected, without ejabberd.api_url)."}),
		Excluded: prometheus.NewCounter(prometheus.CounterOpts{Name: "pubpresence_excluded_total",
			Help: "Presence stanzas and listed sessions of users in tracking.exclude, ignored."}),
		StreamUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pubpresence_stream_up",
			Help: "1 while the component stream to that address (xmpp.address, one per cluster node) is up, else 0."}, []string{"stream", "address"}),
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pubpresence_http_requests_total",
			Help: "Requests to the HTTP API and page, by endpoint (presence, user, events, page, other) and status code."}, []string{"endpoint", "code"}),
		HTTPUnauthorized: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pubpresence_http_unauthorized_total",
			Help: "API requests answered 401, by reason (missing: no bearer token; invalid: a token not in http.tokens_file)."}, []string{"reason"}),
		HTTPTokens: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pubpresence_http_tokens",
			Help: "Bearer tokens loaded from http.tokens_file (0 while the API is off)."}),
		HTTPStreams: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pubpresence_http_streams",
			Help: "Event streams (GET /api/v1/events) open."}),
		HTTPRefused: prometheus.NewCounter(prometheus.CounterOpts{Name: "pubpresence_http_streams_refused_total",
			Help: "Event streams refused with 503 because http.max_streams were open."}),
		HTTPSnapshots: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pubpresence_http_stream_snapshots_total",
			Help: "Snapshots sent on event streams, by reason (start: a new stream, or a Last-Event-ID no longer held; behind: the client fell more than http.resume_events behind; reset: users newly excluded)."}, []string{"reason"}),
		HTTPResumes: prometheus.NewCounter(prometheus.CounterOpts{Name: "pubpresence_http_stream_resumes_total",
			Help: "Event streams that resumed from their Last-Event-ID with exactly the changes they missed."}),
		HTTPClosed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pubpresence_http_streams_closed_total",
			Help: "Event streams ended, by reason (client: it went away; stalled: a write blocked for 10 s; standby: another instance became active; shutdown: the service stopped)."}, []string{"reason"}),
		BuildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pubpresence_build_info",
			Help: "Always 1; the labels say which build runs."}, []string{"version", "goversion"}),
	}
	r.MustRegister(m.State, m.Phase, m.Connected, m.Connections, m.Users, m.Events, m.Malformed, m.Requests,
		m.RequestSeconds, m.IQErrors, m.Reconnects, m.Syncs, m.SyncSeconds, m.SyncSessions, m.Fixes, m.StuckItems,
		m.QueueDepth, m.LiveDropped, m.RepliesDropped, m.WriteWaits, m.Reloads, m.BuildInfo, m.Foreign,
		m.Tracking, m.Unknown, m.Excluded, m.StreamUp,
		m.HTTPRequests, m.HTTPUnauthorized, m.HTTPTokens, m.HTTPStreams, m.HTTPRefused, m.HTTPSnapshots, m.HTTPResumes, m.HTTPClosed,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.BuildInfo.WithLabelValues(version, runtime.Version()).Set(1)
	m.SetPhase(status.Connecting)
	m.SetTracking("")
	return m
}

// SetPhase marks p as the current phase: its series of pubpresence_phase,
// the series of pubpresence_state for the state it shows (init, online or
// standby) and pubpresence_connected.
func (m *Metrics) SetPhase(p status.Phase) {
	for _, q := range status.Phases {
		m.Phase.WithLabelValues(q.String()).Set(b2f(q == p))
	}
	state := string(p.State())
	if p == status.Standby {
		state = "standby"
	}
	for _, s := range []string{"init", "online", "standby"} {
		m.State.WithLabelValues(s).Set(b2f(s == state))
	}
	m.Connected.Set(b2f(p.Connected()))
}

// SetAddresses makes one series of pubpresence_stream_up per address,
// all 0 (down).
func (m *Metrics) SetAddresses(addrs []string) {
	for i, a := range addrs {
		m.StreamUp.WithLabelValues(strconv.Itoa(i), a).Set(0)
	}
}

// SetStreamUp records whether stream i, to addr, is up.
func (m *Metrics) SetStreamUp(i int, addr string, up bool) {
	m.StreamUp.WithLabelValues(strconv.Itoa(i), addr).Set(b2f(up))
}

// SetTracking records how presence reaches the service: "privileged",
// "roster", or "" (not known yet).
func (m *Metrics) SetTracking(way string) {
	for _, w := range []string{"privileged", "roster"} {
		m.Tracking.WithLabelValues(w).Set(b2f(w == way))
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
