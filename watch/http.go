package watch

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/pubpresence/pubpresence/nodes"
	"github.com/pubpresence/pubpresence/presence"
)

// EventsPath is where the service serves its event stream, under its HTTP
// base URL.
const EventsPath = "/api/v1/events"

// StatusStandby is the phase the HTTP face tells of a standby instance.
const StatusStandby = "standby"

// Defaults of HTTPConfig.
const (
	DefaultHTTPTimeout = 10 * time.Second
	DefaultMinBackoff  = 500 * time.Millisecond
	DefaultMaxBackoff  = 10 * time.Second
	// DefaultIdle is three of the service's keepalive comments (one every
	// 15 s).
	DefaultIdle = 45 * time.Second
	// DefaultMaxEvent bounds an event: a snapshot of some 300 000
	// connections.
	DefaultMaxEvent = 64 << 20
	// maxRetryAfter bounds the wait a Retry-After asks for.
	maxRetryAfter = 5 * time.Minute
)

// HTTPConfig sets up an HTTPFollower.
type HTTPConfig struct {
	// URL is the service's HTTP base, http(s)://host[:port][/prefix]
	// (ParseHTTPBase); the events are at URL + EventsPath.
	URL string
	// Token is the bearer token (one of the service's http.tokens_file).
	Token string
	// TLS configures https connections (nil: the system's CAs).
	TLS *tls.Config
	// Timeout bounds connecting and waiting for the answer's headers;
	// default DefaultHTTPTimeout.
	Timeout time.Duration
	// MinBackoff and MaxBackoff bound the wait before reconnecting, which
	// doubles at each failure in a row; defaults DefaultMinBackoff and
	// DefaultMaxBackoff. A 503's Retry-After is waited instead.
	MinBackoff, MaxBackoff time.Duration
	// Idle is how long a stream may be silent before it is taken for dead
	// and opened again; default DefaultIdle.
	Idle time.Duration
	// MaxEvent bounds a line and an event of the stream; default
	// DefaultMaxEvent.
	MaxEvent int
	// Client, when set, makes the requests instead of one built from TLS
	// and Timeout (tests).
	Client *http.Client
}

// HTTPError is an answer other than an event stream to the request for
// the events.
type HTTPError struct {
	URL        string
	Code       int           // the status code
	Message    string        // the service's {"error": …}, or the start of the body, made printable
	RetryAfter time.Duration // from Retry-After, 0 when none
}

func (e *HTTPError) Error() string {
	msg := fmt.Sprintf("GET %s: %d %s", e.URL, e.Code, http.StatusText(e.Code))
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// Fatal reports whether asking again cannot help: a 4xx answer (the
// token, the URL), or a 3xx (watch does not follow redirects).
func (e *HTTPError) Fatal() bool {
	return e.Code < 500 && e.Code != http.StatusRequestTimeout && e.Code != http.StatusTooManyRequests
}

// errNotStream: the answer is not an event stream (the URL is not the
// service's).
var errNotStream = errors.New("the answer is not an event stream")

// errGap: a change's seq is not the one after the last: the stream lost
// some. The follower starts again from a snapshot.
var errGap = errors.New("the stream skipped changes")

// errEnded: the service closed the stream (it stops, or went standby).
var errEnded = errors.New("the service closed the stream")

// HTTPFollower follows the service's event stream (docs/http.md) and
// keeps a View true, as Follower does from the nodes, with the same
// statuses, snapshots and events, so that what is printed of either is
// the same:
//
//   - a "snapshot" event is the state at its seq. While its service is
//     "online" it is loaded into the view (OnSnapshot); while "init" the
//     view keeps the last state, as a Follower does until "online";
//   - a "change" event is applied (OnEvent) while the service is online;
//     in init it is kept for the next online;
//   - a "service" event is the status (OnStatus); "online" loads what the
//     stream has said since the snapshot (OnSnapshot).
//
// When the stream ends or cannot be opened, it opens it again with
// Last-Event-ID (the service then sends the changes missed, or a fresh
// snapshot), after a wait that doubles from MinBackoff to MaxBackoff, or
// a 503's Retry-After. A change whose seq is not the one after the last
// makes it start again from a snapshot.
type HTTPFollower struct {
	Hooks // set before Run
	// OnRetry, when set before Run, is called from Run's goroutine when
	// the stream ended or could not be opened, and Run opens it again
	// after wait; err says why.
	OnRetry func(err error, wait time.Duration)
	// OnConnect, when set before Run, is called from Run's goroutine each
	// time a stream is open, with the Last-Event-ID sent ("" when none:
	// a snapshot comes first).
	OnConnect func(lastEventID string)

	state // the view: Snapshot, Changes, WaitFor

	cfg    HTTPConfig
	events string // the events' URL

	// Run's goroutine only.
	mirror  map[string]presence.Conn // the state as the stream says, also while init
	service string                   // the last service phase the stream said; "" before a snapshot
	seq     uint64                   // the last change's seq (or the snapshot's)
	hasSeq  bool                     // seq is known: a snapshot was loaded
	lastID  string                   // the Last-Event-ID of the next request
	fresh   bool                     // the next request asks for a snapshot (no Last-Event-ID)
}

// ParseHTTPBase checks a service's HTTP base URL:
// http(s)://host[:port][/prefix], without user, query or fragment. It
// returns it without a trailing slash.
func ParseHTTPBase(s string) (string, error) {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "", err
	case u.Scheme != "http" && u.Scheme != "https":
		return "", errors.New("want http://host[:port][/prefix] or https://…")
	case u.Host == "" || u.Hostname() == "":
		return "", errors.New("no host: want http://host[:port][/prefix]")
	case u.User != nil:
		return "", errors.New("no credentials in the URL: the token comes from a file")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(s, "#"):
		return "", errors.New("no query or fragment: want http://host[:port][/prefix]")
	case u.Opaque != "":
		return "", errors.New("want http://host[:port][/prefix]")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("port %q: want 1 to 65535", p)
		}
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u.String(), nil
}

// NewHTTPFollower returns a follower of the event stream of the service at
// cfg.URL. Call Run.
func NewHTTPFollower(cfg HTTPConfig) (*HTTPFollower, error) {
	base, err := ParseHTTPBase(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("watch: URL %q: %w", cfg.URL, err)
	}
	if err := checkToken(cfg.Token); err != nil {
		return nil, fmt.Errorf("watch: %w", err)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultHTTPTimeout
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	cfg.MaxBackoff = max(cfg.MaxBackoff, cfg.MinBackoff)
	if cfg.Idle <= 0 {
		cfg.Idle = DefaultIdle
	}
	if cfg.MaxEvent <= 0 {
		cfg.MaxEvent = DefaultMaxEvent
	}
	if cfg.Client == nil {
		cfg.Client = newHTTPClient(cfg.TLS, cfg.Timeout)
	}
	f := &HTTPFollower{cfg: cfg, events: base + EventsPath}
	f.state.init()
	return f, nil
}

// newHTTPClient returns a client for one long request: bounded connecting
// and headers, no bound on the body, no redirects (the token would
// follow).
func newHTTPClient(tlsConfig *tls.Config, timeout time.Duration) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:       tlsConfig,
			TLSHandshakeTimeout:   timeout,
			ResponseHeaderTimeout: timeout,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          1,
			IdleConnTimeout:       30 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// EventsURL returns the URL the follower asks.
func (f *HTTPFollower) EventsURL() string { return f.events }

// Run follows the stream until ctx ends (it returns ctx.Err()), or an
// error that asking again cannot help: an answer 4xx (*HTTPError: 401 for
// the token, 404 when the service's API is off), an event over
// MaxEvent, an answer that is not an event stream. Until a stream has
// been open once, failing to reach the service is such an error too
// (connection refused, a name that does not resolve, TLS); after, it is
// retried. Run may be called once.
func (f *HTTPFollower) Run(ctx context.Context) (err error) {
	if err := f.begin(); err != nil {
		return err
	}
	defer func() { f.end(err) }()

	wait := f.cfg.MinBackoff
	ever := false // a stream was open
	for {
		opened, got, err := f.connect(ctx)
		ever = ever || opened
		if got {
			wait = f.cfg.MinBackoff
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var he *HTTPError
		isHTTP := errors.As(err, &he)
		switch {
		case isHTTP && he.Fatal(), errors.Is(err, ErrSSETooLarge), errors.Is(err, errNotStream):
			return err
		case !ever && !isHTTP:
			return err // the service cannot be reached: the URL is wrong, or it is not running
		}
		delay := wait
		if isHTTP && he.RetryAfter > 0 {
			delay = he.RetryAfter
		} else {
			wait = min(2*wait, f.cfg.MaxBackoff)
		}
		if f.OnRetry != nil {
			f.OnRetry(err, delay)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// connect opens the stream and follows it until it ends, which it always
// does with an error. opened reports whether the stream was open; got,
// whether it delivered an event.
func (f *HTTPFollower) connect(ctx context.Context) (opened, got bool, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	lastID := f.lastID
	if f.fresh || !f.hasSeq {
		lastID = ""
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.events, nil)
	if err != nil {
		return false, false, err
	}
	req.Header.Set("Authorization", "Bearer "+f.cfg.Token)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := f.cfg.Client.Do(req)
	if err != nil {
		return false, false, err
	}
	defer resp.Body.Close()
	if err := checkAnswer(f.events, resp); err != nil {
		return false, false, err
	}
	if f.OnConnect != nil {
		f.OnConnect(lastID)
	}
	idle := &idleReader{r: resp.Body, timer: time.AfterFunc(f.cfg.Idle, func() {
		cancel(fmt.Errorf("the stream was silent for %s (the service sends a keepalive every 15 s)", f.cfg.Idle))
	}), idle: f.cfg.Idle}
	defer idle.timer.Stop()
	sr := NewSSEReader(idle, f.cfg.MaxEvent)
	for {
		ev, err := sr.Next()
		if err != nil {
			if cause := context.Cause(ctx); ctx.Err() != nil && !errors.Is(cause, context.Canceled) {
				err = cause // silent for too long
			} else if errors.Is(err, io.EOF) {
				err = errEnded
			}
			return true, got, err
		}
		if err := f.handle(ev); err != nil {
			return true, got, err
		}
		got = true
		f.lastID = ev.ID
	}
}

// checkAnswer returns nil for an event stream, else what is wrong.
func checkAnswer(u string, resp *http.Response) error {
	if resp.StatusCode == http.StatusOK {
		mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if err != nil || mt != "text/event-stream" {
			return fmt.Errorf("GET %s: %w (Content-Type %q): is it the service's URL?", u, errNotStream, resp.Header.Get("Content-Type"))
		}
		return nil
	}
	e := &HTTPError{URL: u, Code: resp.StatusCode, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var j struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &j) == nil && j.Error != "" {
		e.Message = printable(j.Error)
	} else if line, _, _ := strings.Cut(strings.TrimSpace(string(body)), "\n"); line != "" {
		e.Message = printable(line)
	}
	if loc := resp.Header.Get("Location"); resp.StatusCode/100 == 3 && loc != "" {
		e.Message = strings.TrimSpace(e.Message + " (redirected to " + printable(loc) + ": give that URL)")
	}
	return e
}

// printable cuts s to 200 bytes and quotes it when it holds anything but
// printable characters.
func printable(s string) string {
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

// parseRetryAfter reads a Retry-After header: seconds, or an HTTP date;
// 0 when absent or unreadable, at most maxRetryAfter.
func parseRetryAfter(s string, now time.Time) time.Duration {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseUint(s, 10, 64); err == nil {
		d = time.Duration(min(n, uint64(maxRetryAfter/time.Second))) * time.Second
	} else if t, err := http.ParseTime(s); err == nil {
		d = t.Sub(now)
	}
	return max(0, min(d, maxRetryAfter))
}

// idleReader resets timer at every read that returns data.
type idleReader struct {
	r     io.Reader
	timer *time.Timer
	idle  time.Duration
}

func (r *idleReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.timer.Reset(r.idle)
	}
	return n, err
}

// snapshotData is the data of a snapshot event.
type snapshotData struct {
	Service     string            `json:"service"`
	Seq         *uint64           `json:"seq"`
	Connections []json.RawMessage `json:"connections"`
}

// handle applies one event of the stream.
func (f *HTTPFollower) handle(ev SSEEvent) error {
	switch ev.Type {
	case "snapshot":
		var s snapshotData
		if err := json.Unmarshal([]byte(ev.Data), &s); err != nil {
			f.fresh = true
			return fmt.Errorf("snapshot: %w", err)
		}
		if s.Seq == nil || s.Service == "" {
			f.fresh = true
			return errors.New("snapshot: no seq or no service")
		}
		f.mirror = make(map[string]presence.Conn, len(s.Connections))
		for _, raw := range s.Connections {
			// One that cannot be read is left out, as a Follower leaves
			// out items it cannot read.
			if c, err := nodes.ParseJSON(raw); err == nil && c.Show != presence.Offline {
				f.mirror[c.JID] = c
			}
		}
		f.seq, f.hasSeq, f.fresh = *s.Seq, true, false
		f.setService(s.Service)
	case "change":
		if !f.hasSeq {
			f.fresh = true
			return errors.New("a change before any snapshot")
		}
		if seq, err := strconv.ParseUint(ev.ID, 10, 64); err == nil {
			switch {
			case seq <= f.seq:
				return nil // had already
			case seq != f.seq+1:
				f.fresh = true
				return fmt.Errorf("%w: from %d to %d", errGap, f.seq, seq)
			}
			f.seq = seq
		}
		c, err := nodes.ParseJSON([]byte(ev.Data))
		if err != nil {
			return nil // left out, as a Follower leaves out items it cannot read
		}
		if c.Show == presence.Offline {
			delete(f.mirror, c.JID)
		} else {
			f.mirror[c.JID] = c
		}
		if f.service != StatusOnline {
			return nil // the next online loads it
		}
		e := Event{ID: c.JID, Conn: c}
		if f.OnEvent != nil {
			f.OnEvent(e)
		}
		f.update(func(v *View) bool { return v.Apply(e) })
	case "service":
		var s struct {
			Service string `json:"service"`
		}
		if err := json.Unmarshal([]byte(ev.Data), &s); err != nil || s.Service == "" {
			return nil // not one the follower knows: ignored
		}
		if !f.hasSeq || s.Service == f.service {
			// The snapshot says it; a resumed stream starts with the
			// phase it had when the stream dropped, most often.
			return nil
		}
		f.setService(s.Service)
	}
	return nil
}

// setService records the service's phase and tells it; online loads the
// mirror into the view.
func (f *HTTPFollower) setService(s string) {
	f.service = s
	f.update(func(v *View) bool { return v.SetStatus(s) })
	if f.OnStatus != nil {
		f.OnStatus(s)
	}
	if s != StatusOnline {
		return
	}
	snap := make([]Event, 0, len(f.mirror))
	for id, c := range f.mirror {
		snap = append(snap, Event{ID: id, Conn: c})
	}
	f.update(func(v *View) bool { return v.Load(snap) })
	if f.OnSnapshot != nil {
		conns := make([]presence.Conn, 0, len(f.mirror))
		for _, c := range f.mirror {
			conns = append(conns, c)
		}
		slices.SortFunc(conns, func(a, b presence.Conn) int { return strings.Compare(a.JID, b.JID) })
		f.OnSnapshot(conns)
	}
}
