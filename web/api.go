package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/pubpresence/pubpresence/internal/feed"
	"github.com/pubpresence/pubpresence/internal/xmpp"
	"github.com/pubpresence/pubpresence/metrics"
	"github.com/pubpresence/pubpresence/nodes"
	"github.com/pubpresence/pubpresence/status"
)

// Defaults of APIConfig.
const (
	// Heartbeat is how often an event stream carries a comment line, so
	// that proxies do not close it for being idle.
	Heartbeat = 15 * time.Second
	// WriteTimeout is how long one write to an event stream may block
	// before the stream is closed as stalled.
	WriteTimeout = 10 * time.Second
	// standbyRetry is the Retry-After of a standby instance's 503.
	standbyRetry = "10"
)

// APIConfig sets up the HTTP face.
type APIConfig struct {
	Feed        *feed.Feed
	Tokens      *Tokens
	CORSOrigins []string
	MaxStreams  int      // default 1000
	Domains     []string // the served domains: other users are not asked about
	Log         zerolog.Logger
	// Heartbeat and WriteTimeout default to the constants of the same
	// names; tests make them short.
	Heartbeat    time.Duration
	WriteTimeout time.Duration
}

// API serves the snapshot, per-user answers and the event stream from a
// feed, and the page, to clients with a bearer token (docs/http.md).
type API struct {
	feed    *feed.Feed
	m       *metrics.Metrics
	st      *status.Tracker
	log     zerolog.Logger
	domains map[string]bool
	tokens  atomic.Pointer[Tokens]
	cors    atomic.Pointer[map[string]bool]
	slots   chan struct{} // one per open event stream, up to max_streams
	writers chan struct{} // one per stream taking its frames now (stream)
	beat    time.Duration
	write   time.Duration

	done     chan struct{} // closed by Close: every stream ends
	stopOnce sync.Once
	warned   atomic.Int64 // unix seconds of the last warning about refused tokens
}

// NewAPI returns the HTTP face for cfg.
func NewAPI(cfg APIConfig, m *metrics.Metrics, st *status.Tracker) *API {
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = 1000
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = Heartbeat
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = WriteTimeout
	}
	a := &API{feed: cfg.Feed, m: m, st: st, log: cfg.Log, domains: make(map[string]bool),
		slots: make(chan struct{}, cfg.MaxStreams), writers: make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2)), beat: cfg.Heartbeat, write: cfg.WriteTimeout,
		done: make(chan struct{})}
	for _, d := range cfg.Domains {
		a.domains[strings.ToLower(d)] = true
	}
	a.SetTokens(cfg.Tokens)
	a.SetCORS(cfg.CORSOrigins)
	return a
}

// SetTokens replaces the tokens (SIGHUP).
func (a *API) SetTokens(t *Tokens) {
	if t == nil {
		t = &Tokens{}
	}
	a.tokens.Store(t)
	a.m.HTTPTokens.Set(float64(t.Len()))
}

// SetCORS replaces the origins allowed to call the API (SIGHUP).
func (a *API) SetCORS(origins []string) {
	m := make(map[string]bool, len(origins))
	for _, o := range origins {
		m[o] = true
	}
	a.cors.Store(&m)
}

// Close ends every event stream (the service stops). Requests after it
// are answered as before; streams started after it end at once.
func (a *API) Close() { a.stopOnce.Do(func() { close(a.done) }) }

// register adds the API's and the page's routes to mux.
func (a *API) register(mux *http.ServeMux) {
	mux.Handle("GET /api/v1/presence", a.guard("presence", a.presence))
	mux.Handle("GET /api/v1/presence/{jid...}", a.guard("user", a.user))
	mux.Handle("GET /api/v1/events", a.guard("events", a.events))
	mux.Handle("OPTIONS /api/", http.HandlerFunc(a.preflight))
	mux.Handle("/api/", a.guard("other", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", "GET, OPTIONS")
			apiError(w, http.StatusMethodNotAllowed, "only GET is served")
			return
		}
		apiError(w, http.StatusNotFound, "no such endpoint: see docs/http.md")
	}))
	a.registerPage(mux)
}

// codeWriter remembers the status code for the metrics.
type codeWriter struct {
	http.ResponseWriter
	code int
}

func (w *codeWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *codeWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush and SetWriteDeadline.
func (w *codeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// guard wraps an API handler: CORS headers for allowed origins, no token
// in the URL, a valid bearer token, no answer from a standby instance, and
// the request counted by endpoint and code.
func (a *API) guard(endpoint string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w := &codeWriter{ResponseWriter: rw}
		defer func() { a.m.HTTPRequests.WithLabelValues(endpoint, strconv.Itoa(max(w.code, 200))).Inc() }()
		a.allowOrigin(w, r)
		w.Header().Set("Cache-Control", "no-store")
		q := r.URL.Query()
		if q.Has("access_token") || q.Has("token") {
			apiError(w, http.StatusBadRequest, "tokens are not accepted in URLs (they end up in logs and histories): send Authorization: Bearer TOKEN")
			return
		}
		if !a.authorized(w, r) {
			return
		}
		if a.st.Phase() == status.Standby {
			w.Header().Set("Retry-After", standbyRetry)
			apiError(w, http.StatusServiceUnavailable, "standby: another instance holds the component name and serves the state")
			return
		}
		h(w, r)
	})
}

// authorized checks the bearer token and answers 401 when it is missing or
// wrong.
func (a *API) authorized(w http.ResponseWriter, r *http.Request) bool {
	auth := r.Header.Get("Authorization")
	scheme, token, _ := strings.Cut(auth, " ")
	reason := "missing"
	if strings.EqualFold(scheme, "Bearer") && strings.TrimSpace(token) != "" {
		if _, ok := a.tokens.Load().Match(strings.TrimSpace(token)); ok {
			return true
		}
		reason = "invalid"
	}
	a.m.HTTPUnauthorized.WithLabelValues(reason).Inc()
	ev := a.log.Debug()
	if now := time.Now().Unix(); a.warned.Load() < now-60 {
		a.warned.Store(now)
		ev = a.log.Warn() // at most one a minute; the metric counts them all
	}
	ev.Str("remote", r.RemoteAddr).Str("reason", reason).Str("path", r.URL.Path).Msg("http: API request refused: no valid bearer token")
	challenge := `Bearer realm="pubpresence"`
	if reason == "invalid" {
		challenge += `, error="invalid_token"`
	}
	w.Header().Set("WWW-Authenticate", challenge)
	apiError(w, http.StatusUnauthorized, "a bearer token from http.tokens_file is needed: Authorization: Bearer TOKEN")
	return false
}

// allowOrigin adds the CORS headers when the request's Origin is allowed.
func (a *API) allowOrigin(w http.ResponseWriter, r *http.Request) bool {
	w.Header().Add("Vary", "Origin")
	o := r.Header.Get("Origin")
	if o == "" || !(*a.cors.Load())[o] {
		return false
	}
	w.Header().Set("Access-Control-Allow-Origin", o)
	w.Header().Set("Access-Control-Expose-Headers", "Retry-After, WWW-Authenticate")
	return true
}

// preflight answers a browser's CORS preflight: no token is asked, and an
// origin not allowed is refused.
func (a *API) preflight(w http.ResponseWriter, r *http.Request) {
	if !a.allowOrigin(w, r) {
		apiError(w, http.StatusForbidden, "origin not in http.cors_origins")
		return
	}
	w.Header().Set("Access-Control-Allow-Methods", "GET")
	w.Header().Set("Access-Control-Allow-Headers", "Authorization, Last-Event-ID")
	w.Header().Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

// apiError answers {"error": msg} with code.
func apiError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	// msg may quote what the client sent (a JID in the path): encoded as
	// JSON, never as Go quotes, which are not JSON for every byte.
	js, _ := json.Marshal(msg)
	b := append([]byte(`{"error":`), js...)
	_, _ = w.Write(append(b, "}\n"...))
}

func writeJSON(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(append(b, '\n'))
}

// presence answers the snapshot.
func (a *API) presence(w http.ResponseWriter, r *http.Request) {
	_, js := a.feed.SnapshotJSON()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(js)
	_, _ = w.Write([]byte{'\n'})
}

// user answers one user: {"name":…,"status":…,"connections":[…]}.
func (a *API) user(w http.ResponseWriter, r *http.Request) {
	bare, err := ParseUserPath(r.PathValue("jid"))
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	if _, domain, _ := strings.Cut(bare, "@"); !a.domains[domain] {
		apiError(w, http.StatusNotFound, "not a user of a domain this service tracks")
		return
	}
	conns, service := a.feed.User(bare)
	name, _ := json.Marshal(bare)
	b := append([]byte(`{"name":`), name...)
	b = append(b, `,"service":"`...)
	b = append(b, service...)
	b = append(b, `","status":"`...)
	b = append(b, feed.MostAvailable(conns)...)
	b = append(b, `","connections":[`...)
	for i, c := range conns {
		if i > 0 {
			b = append(b, ',')
		}
		b = nodes.AppendJSON(b, c, a.feed.WithIP())
	}
	writeJSON(w, append(b, "]}"...))
}

// ParseUserPath reads the {bare JID} of /api/v1/presence/{bare JID}: a
// valid bare JID, returned normalised (lower case).
func ParseUserPath(s string) (string, error) {
	if s == "" {
		return "", errors.New("no JID: /api/v1/presence/{bare JID}")
	}
	if len(s) > 3071 {
		return "", errors.New("JID too long")
	}
	j, err := xmpp.ParseJID(s)
	if err != nil {
		return "", errors.New("not a JID: " + err.Error())
	}
	if j.Domain == "" {
		return "", errors.New("not a JID: no domain")
	}
	if j.Resource != "" {
		return "", errors.New("a bare JID (user@domain), not a full JID: the user's connections are in the answer")
	}
	if j.Local == "" {
		return "", errors.New("a user's JID (user@domain), not a domain")
	}
	return j.Bare(), nil
}

// ParseLastEventID reads a Last-Event-ID header: a seq (decimal digits, no
// sign). ok is false for anything else: the client gets a snapshot.
func ParseLastEventID(s string) (uint64, bool) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 20 {
		return 0, false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// events serves the Server-Sent Events stream.
func (a *API) events(w http.ResponseWriter, r *http.Request) {
	select {
	case a.slots <- struct{}{}:
		defer func() { <-a.slots }()
	default:
		a.m.HTTPRefused.Inc()
		w.Header().Set("Retry-After", "5")
		apiError(w, http.StatusServiceUnavailable, "too many event streams open (http.max_streams = "+strconv.Itoa(cap(a.slots))+")")
		return
	}
	a.m.HTTPStreams.Inc()
	defer a.m.HTTPStreams.Dec()
	last, has := ParseLastEventID(r.Header.Get("Last-Event-ID"))
	sub, resumed := a.feed.Follow(last, has)
	if resumed {
		a.m.HTTPResumes.Inc()
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no") // nginx: pass events on as they come
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	reason := a.stream(w, r.Context(), sub)
	a.m.HTTPClosed.WithLabelValues(reason).Inc()
	a.log.Debug().Str("remote", r.RemoteAddr).Str("reason", reason).Msg("http: event stream ended")
}

// stream writes what sub has until the stream ends, and says why it did.
func (a *API) stream(w http.ResponseWriter, ctx context.Context, sub *feed.Sub) string {
	rc := http.NewResponseController(w)
	beat := time.NewTicker(a.beat)
	defer beat.Stop()
	var out output
	out.add(retryFrame) // how long a browser's EventSource waits before reconnecting
	var frames [][]byte
	for {
		// At most a few streams take their frames at once (a.writers):
		// however many streams there are and however fast the changes
		// come, the service's own goroutines are never queued behind
		// thousands of runnable streams. The slot is let go before the
		// write, which may block on a slow client.
		select {
		case a.writers <- struct{}{}:
		case <-ctx.Done():
			return "client"
		case <-a.done:
			return a.last(rc, w, sub, &out)
		}
		var batch feed.Batch
		frames, batch = sub.Frames(frames[:0])
		for _, fr := range frames {
			out.add(fr)
		}
		clear(frames) // hold no frame the feed has let go of
		<-a.writers
		if batch.Snapshot != "" {
			a.m.HTTPSnapshots.WithLabelValues(batch.Snapshot).Inc()
		}
		if reason := a.send(rc, w, &out, a.write); reason != "" {
			return reason
		}
		switch {
		case batch.Closed:
			return "shutdown"
		case batch.Standby && a.st.Phase() == status.Standby:
			// (A stream resumed from before a standby that ended is sent
			// both phases; the service's own phase decides.)
			return "standby"
		case batch.More:
			continue
		}
		select {
		case <-batch.Wake:
		case <-beat.C:
			out.add(keepaliveFrame)
		case <-ctx.Done():
			return "client"
		case <-a.done:
			return a.last(rc, w, sub, &out)
		}
	}
}

// last sends what the stream has not sent yet as the service stops (its
// last changes and init may still wait for the wake-up), briefly, and
// ends it.
func (a *API) last(rc *http.ResponseController, w http.ResponseWriter, sub *feed.Sub, out *output) string {
	frames, _ := sub.Frames(nil)
	for _, fr := range frames {
		out.add(fr)
	}
	_ = a.send(rc, w, out, min(a.write, time.Second))
	return "shutdown"
}

// output is what a stream writes next: frames, shared with the feed and
// other streams, written as they are (net/http's buffer joins them).
type output struct{ parts [][]byte }

func (o *output) add(fr []byte) { o.parts = append(o.parts, fr) }

// reset empties o, holding no frame.
func (o *output) reset() {
	clear(o.parts)
	o.parts = o.parts[:0]
}

var (
	retryFrame     = []byte("retry: 2000\n\n")
	keepaliveFrame = []byte(": keepalive\n\n")
)

// send writes out and flushes it, within timeout; it returns why the
// stream must end, or "".
func (a *API) send(rc *http.ResponseController, w http.ResponseWriter, out *output, timeout time.Duration) string {
	defer out.reset()
	if len(out.parts) == 0 {
		return ""
	}
	_ = rc.SetWriteDeadline(time.Now().Add(timeout))
	var err error
	for _, p := range out.parts {
		if _, err = w.Write(p); err != nil {
			break
		}
	}
	if err == nil {
		err = rc.Flush()
	}
	if err == nil {
		return ""
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return "stalled"
	}
	return "client"
}
