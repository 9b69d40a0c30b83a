package watch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pubpresence/pubpresence/internal/feed"
	"github.com/pubpresence/pubpresence/metrics"
	"github.com/pubpresence/pubpresence/nodes"
	"github.com/pubpresence/pubpresence/presence"
	"github.com/pubpresence/pubpresence/status"
	"github.com/pubpresence/pubpresence/web"
)

// Both followers offer what the watch command and the tests use.
var _ interface {
	SetHooks(Hooks)
	Run(context.Context) error
	Snapshot() (string, []presence.Conn)
	Changes() <-chan struct{}
	WaitFor(context.Context, func(string, []presence.Conn) bool) (string, []presence.Conn, error)
} = (*HTTPFollower)(nil)

var _ interface {
	SetHooks(Hooks)
	Run(context.Context) error
} = (*Follower)(nil)

var t0 = time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)

// hconn is a connection as the service's feed holds it.
func hconn(jid string, show presence.Show, prio int) presence.Conn {
	return presence.Conn{JID: jid, Show: show, Priority: prio, IP: "192.0.2.1", Text: "t " + jid, Since: t0.Add(time.Duration(prio) * time.Second)}
}

// apiServer is the service's HTTP face as cmd/pubpresence/serve.go builds
// it, on a test server.
type apiServer struct {
	t    *testing.T
	feed *feed.Feed
	st   *status.Tracker
	api  *web.API
	srv  *httptest.Server

	mu       sync.Mutex
	requests []http.Header // of the events requests, in order
	before   func(w http.ResponseWriter, r *http.Request) bool
}

func newAPIServer(t *testing.T, cfg feed.Config) *apiServer {
	t.Helper()
	if cfg.Start == 0 {
		cfg.Start = 1000
	}
	s := &apiServer{t: t, feed: feed.New(cfg), st: &status.Tracker{}}
	m := metrics.New("test")
	tokens, err := web.ParseTokens([]byte("# test\ntest " + testToken + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	s.api = web.NewAPI(web.APIConfig{Feed: s.feed, Tokens: tokens, Domains: []string{"x"}, Log: zerolog.Nop(),
		Heartbeat: 50 * time.Millisecond}, m, s.st)
	h := web.Handler(m, s.st, s.api)
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		if r.URL.Path == EventsPath {
			s.requests = append(s.requests, r.Header.Clone())
		}
		before := s.before
		s.mu.Unlock()
		if before != nil && before(w, r) {
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		s.api.Close()
		s.srv.Close()
		s.feed.Close()
	})
	return s
}

// lastEventIDs returns the Last-Event-ID of each events request so far.
func (s *apiServer) lastEventIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for _, h := range s.requests {
		ids = append(ids, h.Get("Last-Event-ID"))
	}
	return ids
}

// httpHarness runs an HTTPFollower and records its hooks.
type httpHarness struct {
	t    *testing.T
	f    *HTTPFollower
	done chan error
	stop context.CancelFunc

	mu      sync.Mutex
	calls   []string // hook calls
	events  int      // OnEvent calls
	retries []time.Duration
	errs    []error
}

func startHTTP(t *testing.T, cfg HTTPConfig) *httpHarness {
	t.Helper()
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = 5 * time.Millisecond
		cfg.MaxBackoff = 20 * time.Millisecond
	}
	if cfg.Token == "" {
		cfg.Token = testToken
	}
	f, err := NewHTTPFollower(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := &httpHarness{t: t, f: f, done: make(chan error, 1)}
	f.SetHooks(Hooks{
		OnEvent: func(e Event) {
			h.record("event " + e.ID + "=" + string(e.Conn.Show))
			h.mu.Lock()
			h.events++
			h.mu.Unlock()
		},
		OnStatus:   func(s string) { h.record("status " + s) },
		OnSnapshot: func(cs []presence.Conn) { h.record(fmt.Sprint("snapshot ", jids(cs))) },
	})
	f.OnRetry = func(err error, wait time.Duration) {
		h.mu.Lock()
		h.retries = append(h.retries, wait)
		h.errs = append(h.errs, err)
		h.mu.Unlock()
		h.record("retry")
	}
	f.OnConnect = func(id string) { h.record("connect " + id) }
	ctx, cancel := context.WithCancel(context.Background())
	h.stop = cancel
	go func() { h.done <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-h.done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return")
		}
	})
	return h
}

func (h *httpHarness) record(s string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, s)
}

// takeCalls returns the hook calls since the last take, without the
// retries and connections.
func (h *httpHarness) takeCalls() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, c := range h.calls {
		if c != "retry" && !strings.HasPrefix(c, "connect") {
			out = append(out, c)
		}
	}
	h.calls = nil
	return out
}

// waitCall waits until a hook call starts with prefix.
func (h *httpHarness) waitCall(prefix string) {
	h.t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		h.mu.Lock()
		calls := h.calls
		h.mu.Unlock()
		for _, c := range calls {
			if strings.HasPrefix(c, prefix) {
				return
			}
		}
	}
	h.t.Fatalf("no call %q", prefix)
}

func (h *httpHarness) want(status string, conns ...string) {
	h.t.Helper()
	wantView(h.t, h.f, status, conns...)
}

// wantFeed waits until the view is online and says what the feed holds, as
// the API writes it.
func (h *httpHarness) wantFeed(f *feed.Feed) {
	h.t.Helper()
	encode := func(conns []presence.Conn) string {
		var b []byte
		for _, c := range conns {
			b = append(nodes.AppendJSON(b, c, true), '\n')
		}
		return string(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var want string
	st, cs, err := h.f.WaitFor(ctx, func(s string, cs []presence.Conn) bool {
		want = encode(f.Snapshot().Conns)
		return s == StatusOnline && encode(cs) == want
	})
	if err != nil {
		h.t.Fatalf("view is %q:\n%swant online:\n%s(%v)", st, encode(cs), want, err)
	}
}

// wait returns Run's error.
func (h *httpHarness) wait() error {
	h.t.Helper()
	select {
	case err := <-h.done:
		h.done <- err // for the cleanup
		return err
	case <-time.After(10 * time.Second):
		h.t.Fatal("Run did not return")
		return nil
	}
}

func TestHTTPFollowerSnapshotAndChanges(t *testing.T) {
	s := newAPIServer(t, feed.Config{WithIP: true})
	s.feed.Set(hconn("a@x/1", presence.Online, 1))
	s.feed.Set(hconn("b@x/1", presence.Away, 2))
	s.feed.SetPhase(feed.Online)
	h := startHTTP(t, HTTPConfig{URL: s.srv.URL})
	h.wantFeed(s.feed)
	s.feed.Set(hconn("c@x/1", presence.DND, 3))
	s.feed.Gone(hconn("a@x/1", presence.Online, 1))
	s.feed.Set(hconn("b@x/1", presence.Chat, 4))
	h.want(StatusOnline, "b@x/1=chat", "c@x/1=dnd")
	h.wantFeed(s.feed)
	want := []string{"status online", "snapshot [a@x/1=online b@x/1=away]",
		"event c@x/1=dnd", "event a@x/1=offline", "event b@x/1=chat"}
	if got := h.takeCalls(); !reflect.DeepEqual(got, want) {
		t.Errorf("hook calls:\n got %q\nwant %q", got, want)
	}
	// Every field made it, as the API writes them.
	if _, cs := h.f.Snapshot(); cs[0] != hconn("b@x/1", presence.Chat, 4) {
		t.Errorf("b is %+v", cs[0])
	}
	hdr := s.requests[0]
	if hdr.Get("Authorization") != "Bearer "+testToken || hdr.Get("Accept") != "text/event-stream" || hdr.Get("Last-Event-ID") != "" {
		t.Errorf("request headers %v", hdr)
	}
	select {
	case <-h.f.Changes():
	default:
		t.Error("no change signalled")
	}
	h.stop()
	if err := h.wait(); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	if err := h.f.Run(context.Background()); err == nil {
		t.Error("second Run accepted")
	}
}

// The service's phases map to the status node's: while init the view keeps
// the last state and changes are not told, as a Follower discards live
// events; online loads the state the stream says, as a Follower fetches
// the actual node.
func TestHTTPFollowerServiceEvents(t *testing.T) {
	s := newAPIServer(t, feed.Config{WithIP: true})
	s.feed.Set(hconn("a@x/1", presence.Online, 1)) // init: partial
	h := startHTTP(t, HTTPConfig{URL: s.srv.URL})
	h.want(StatusInit)
	s.feed.Set(hconn("b@x/1", presence.Away, 2))
	s.feed.SetPhase(feed.Online)
	h.want(StatusOnline, "a@x/1=online", "b@x/1=away")
	s.feed.Set(hconn("c@x/1", presence.XA, 3))
	h.want(StatusOnline, "a@x/1=online", "b@x/1=away", "c@x/1=xa")

	// The service restarts its XMPP side: init, changes, online.
	s.feed.SetPhase(feed.Init)
	h.want(StatusInit, "a@x/1=online", "b@x/1=away", "c@x/1=xa") // kept until online
	s.feed.Gone(hconn("a@x/1", presence.Online, 1))
	s.feed.Set(hconn("d@x/1", presence.Chat, 4))
	time.Sleep(50 * time.Millisecond) // a view that changed now would be wrong
	h.want(StatusInit, "a@x/1=online", "b@x/1=away", "c@x/1=xa")
	s.feed.SetPhase(feed.Online)
	h.want(StatusOnline, "b@x/1=away", "c@x/1=xa", "d@x/1=chat")
	h.wantFeed(s.feed)
	h.waitCall("snapshot [b@x/1=away c@x/1=xa d@x/1=chat]")
	want := []string{"status init", "status online", "snapshot [a@x/1=online b@x/1=away]", "event c@x/1=xa",
		"status init", "status online", "snapshot [b@x/1=away c@x/1=xa d@x/1=chat]"}
	if got := h.takeCalls(); !reflect.DeepEqual(got, want) {
		t.Errorf("hook calls:\n got %q\nwant %q", got, want)
	}

	// Standby: told, the stream ends, and the 503's Retry-After (10 s)
	// is the wait.
	s.st.SetPhase(status.Standby)
	s.feed.SetPhase(feed.Standby)
	h.want(StatusStandby, "b@x/1=away", "c@x/1=xa", "d@x/1=chat")
	deadline := time.Now().Add(5 * time.Second)
	for {
		h.mu.Lock()
		retries, errs := append([]time.Duration(nil), h.retries...), append([]error(nil), h.errs...)
		h.mu.Unlock()
		var he *HTTPError
		if n := len(errs); n > 0 && errors.As(errs[n-1], &he) {
			if he.Code != http.StatusServiceUnavailable || retries[n-1] != 10*time.Second || !strings.Contains(he.Message, "standby") {
				t.Errorf("standby: retry after %s: %v", retries[n-1], errs[n-1])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no 503 after standby; retries %v %v", retries, errs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A stream cut again and again while the state changes: the follower
// resumes with Last-Event-ID and ends with what the feed holds, every
// change told once.
func TestHTTPFollowerResumes(t *testing.T) {
	s := newAPIServer(t, feed.Config{WithIP: true, Coalesce: -1})
	s.feed.SetPhase(feed.Online)
	h := startHTTP(t, HTTPConfig{URL: s.srv.URL})
	h.want(StatusOnline)
	const changes = 400
	for i := range changes {
		jid := fmt.Sprintf("u%d@x/r", i%7)
		if i%5 == 4 {
			s.feed.Gone(hconn(jid, presence.Online, 0))
		} else {
			s.feed.Set(hconn(jid, presence.Online, i%100+1)) // never the same twice in a row
		}
		if i%40 == 20 {
			s.srv.CloseClientConnections()
		}
		if i%10 == 0 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	h.wantFeed(s.feed)

	ids := s.lastEventIDs()
	if len(ids) < 3 {
		t.Fatalf("%d requests: the stream was not cut", len(ids))
	}
	resumed := 0
	for _, id := range ids[1:] {
		if id != "" {
			resumed++
		}
	}
	if ids[0] != "" || resumed != len(ids)-1 {
		t.Errorf("Last-Event-IDs %q: want none first, then one each time", ids)
	}
	// Only the first snapshot: every reconnection resumed. Every change
	// that was not a Gone of an absent connection was told once.
	calls := h.takeCalls()
	snapshots := 0
	for _, c := range calls {
		if strings.HasPrefix(c, "snapshot") {
			snapshots++
		}
	}
	if snapshots != 1 {
		t.Errorf("%d snapshots, want 1", snapshots)
	}
	h.mu.Lock()
	events := h.events
	h.mu.Unlock()
	if want := countChanges(changes); events != want {
		t.Errorf("%d events told, want %d (the feed's changes)", events, want)
	}
}

// countChanges counts the feed's changes of TestHTTPFollowerResumes: a
// Gone of a connection that is not there is none.
func countChanges(n int) int {
	on := map[string]bool{}
	count := 0
	for i := range n {
		jid := fmt.Sprintf("u%d@x/r", i%7)
		if i%5 == 4 {
			if on[jid] {
				count++
			}
			on[jid] = false
		} else {
			on[jid] = true
			count++
		}
	}
	return count
}

// A client that missed more than the feed keeps gets a fresh snapshot.
func TestHTTPFollowerResumeTooLate(t *testing.T) {
	s := newAPIServer(t, feed.Config{WithIP: true, History: 4, Coalesce: -1})
	s.feed.Set(hconn("a@x/1", presence.Online, 1))
	s.feed.SetPhase(feed.Online)
	var mu sync.Mutex
	hold := false
	s.before = func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		if hold {
			w.Header().Set("Retry-After", "0")
			http.Error(w, "busy", http.StatusBadGateway)
			return true
		}
		return false
	}
	h := startHTTP(t, HTTPConfig{URL: s.srv.URL})
	h.wantFeed(s.feed)
	mu.Lock()
	hold = true
	mu.Unlock()
	s.srv.CloseClientConnections()
	for i := range 10 {
		s.feed.Set(hconn(fmt.Sprintf("n%d@x/1", i), presence.Away, i+2))
	}
	mu.Lock()
	hold = false
	mu.Unlock()
	h.wantFeed(s.feed)
	h.waitCall("snapshot [a@x/1=online n0@x/1=away")
	calls := h.takeCalls()
	if last := calls[len(calls)-1]; !strings.HasPrefix(last, "snapshot [a@x/1=online n0@x/1=away") {
		t.Errorf("calls %q: want a fresh snapshot last", calls)
	}
	if ids := s.lastEventIDs(); ids[len(ids)-1] == "" {
		t.Errorf("Last-Event-IDs %q: the last one must try to resume", ids)
	}
}

// sseServer serves a fixed stream to each request, in turn, and keeps it
// open; ids returns the Last-Event-ID of each request so far.
func sseServer(t *testing.T, streams ...string) (srv *httptest.Server, ids func() []string) {
	t.Helper()
	var mu sync.Mutex
	var got []string
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n := len(got)
		got = append(got, r.Header.Get("Last-Event-ID"))
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		if n < len(streams) {
			_, _ = io.WriteString(w, streams[n])
		}
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	return srv, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
}

// A duplicate change is skipped; one that skips a seq makes the follower
// start again from a snapshot.
func TestHTTPFollowerGap(t *testing.T) {
	a := `{"fulljid":"a@x/1","name":"a@x","status":"online","priority":0}`
	b := `{"fulljid":"b@x/1","name":"b@x","status":"away","priority":0}`
	srv, ids := sseServer(t,
		"retry: 2000\n\nid: 5\nevent: snapshot\ndata: {\"service\":\"online\",\"seq\":5,\"connections\":["+a+"]}\n\n"+
			"id: 6\nevent: change\ndata: "+b+"\n\nid: 6\nevent: change\ndata: "+b+"\n\n"+
			"id: 8\nevent: change\ndata: {\"fulljid\":\"c@x/1\",\"status\":\"xa\",\"priority\":0}\n\n",
		"id: 20\nevent: snapshot\ndata: {\"service\":\"online\",\"seq\":20,\"connections\":["+b+"]}\n\n")
	h := startHTTP(t, HTTPConfig{URL: srv.URL})
	h.want(StatusOnline, "b@x/1=away")
	h.waitCall("snapshot [b@x/1=away]")
	h.mu.Lock()
	err := h.errs[0]
	h.mu.Unlock()
	if !errors.Is(err, errGap) || !strings.Contains(err.Error(), "from 6 to 8") {
		t.Errorf("retry for %v, want the gap", err)
	}
	want := []string{"status online", "snapshot [a@x/1=online]", "event b@x/1=away", "status online", "snapshot [b@x/1=away]"}
	if got := h.takeCalls(); !reflect.DeepEqual(got, want) {
		t.Errorf("hook calls:\n got %q\nwant %q", got, want)
	}
	if !reflect.DeepEqual(ids(), []string{"", ""}) {
		t.Errorf("Last-Event-IDs %q: after a gap, none", ids())
	}
}

func TestHTTPFollowerFatal(t *testing.T) {
	s := newAPIServer(t, feed.Config{})
	off := httptest.NewServer(web.Handler(metrics.New("test"), &status.Tracker{}, nil))
	t.Cleanup(off.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "<html>hello</html>")
	}))
	t.Cleanup(html.Close)
	huge, _ := sseServer(t, "data: "+strings.Repeat("x", 2000)+"\n\n")
	redirect := httptest.NewServer(http.RedirectHandler("http://example.org/", http.StatusFound))
	t.Cleanup(redirect.Close)

	for _, tc := range []struct {
		name string
		cfg  HTTPConfig
		want func(error) bool
	}{
		{"wrong token", HTTPConfig{URL: s.srv.URL, Token: "wrong-token-1234567890"}, func(err error) bool {
			var he *HTTPError
			return errors.As(err, &he) && he.Code == 401 && strings.Contains(he.Message, "bearer token") && !strings.Contains(err.Error(), "wrong-token")
		}},
		{"API off", HTTPConfig{URL: off.URL}, func(err error) bool {
			var he *HTTPError
			return errors.As(err, &he) && he.Code == 404
		}},
		{"connection refused", HTTPConfig{URL: closed}, func(err error) bool {
			var oe *net.OpError
			return errors.As(err, &oe) && oe.Op == "dial" && strings.Contains(err.Error(), "refused")
		}},
		{"not an event stream", HTTPConfig{URL: html.URL}, func(err error) bool { return errors.Is(err, errNotStream) }},
		{"event too large", HTTPConfig{URL: huge.URL, MaxEvent: 1000}, func(err error) bool { return errors.Is(err, ErrSSETooLarge) }},
		{"redirect", HTTPConfig{URL: redirect.URL}, func(err error) bool {
			var he *HTTPError
			return errors.As(err, &he) && he.Code == 302 && strings.Contains(he.Message, "redirected to http://example.org/")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := startHTTP(t, tc.cfg)
			if err := h.wait(); !tc.want(err) {
				t.Errorf("Run = %v", err)
			}
			h.mu.Lock()
			defer h.mu.Unlock()
			if len(h.retries) > 0 {
				t.Errorf("retried %v", h.errs)
			}
		})
	}
}

// A 503 before the stream (standby, max_streams) is waited out as its
// Retry-After says; a server that is down once the stream was open is
// retried with the backoff.
func TestHTTPFollowerRetryAfter(t *testing.T) {
	s := newAPIServer(t, feed.Config{WithIP: true})
	s.feed.Set(hconn("a@x/1", presence.Online, 1))
	s.feed.SetPhase(feed.Online)
	var mu sync.Mutex
	var times []time.Time
	s.before = func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		times = append(times, time.Now())
		if len(times) == 1 {
			w.Header().Set("Retry-After", "1")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"error":"too many event streams open"}`)
			return true
		}
		return false
	}
	h := startHTTP(t, HTTPConfig{URL: s.srv.URL, MinBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond})
	h.wantFeed(s.feed)
	mu.Lock()
	if len(times) != 2 || times[1].Sub(times[0]) < time.Second {
		t.Errorf("requests at %v: want the second a second after the first", times)
	}
	mu.Unlock()
	h.mu.Lock()
	var he *HTTPError
	if len(h.retries) != 1 || h.retries[0] != time.Second || !errors.As(h.errs[0], &he) || he.Message != "too many event streams open" {
		t.Errorf("retries %v %v", h.retries, h.errs)
	}
	h.mu.Unlock()

	// The service goes away: connection refused is retried now, with the
	// backoff doubling to its bound.
	s.srv.Listener.Close()
	s.srv.CloseClientConnections()
	deadline := time.Now().Add(5 * time.Second)
	for {
		h.mu.Lock()
		n := len(h.retries)
		retries := append([]time.Duration(nil), h.retries...)
		h.mu.Unlock()
		if n >= 5 {
			if want := scale([]time.Duration{1000, 10, 20, 40, 40}, time.Millisecond); !reflect.DeepEqual(retries[:5], want) {
				t.Errorf("waits %v, want %v", retries, want)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("retries %v", retries)
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.want(StatusOnline, "a@x/1=online") // the last state is kept
}

func scale(ds []time.Duration, unit time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d * unit
	}
	return out
}

// A stream that stays silent longer than Idle is taken for dead.
func TestHTTPFollowerIdle(t *testing.T) {
	srv, ids := sseServer(t, "retry: 2000\n\nid: 1\nevent: snapshot\ndata: {\"service\":\"online\",\"seq\":1,\"connections\":[]}\n\n")
	h := startHTTP(t, HTTPConfig{URL: srv.URL, Idle: 100 * time.Millisecond})
	h.want(StatusOnline)
	deadline := time.Now().Add(5 * time.Second)
	for {
		h.mu.Lock()
		errs := append([]error(nil), h.errs...)
		h.mu.Unlock()
		if len(errs) > 0 {
			if !strings.Contains(errs[0].Error(), "silent for 100ms") {
				t.Errorf("retry for %v", errs[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no retry after a silent stream")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for len(ids()) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := ids(); len(got) < 2 || got[1] != "1" {
		t.Errorf("Last-Event-IDs %q", got)
	}
}

func TestParseHTTPBase(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:9273":          "http://127.0.0.1:9273",
		"http://127.0.0.1:9273/":         "http://127.0.0.1:9273",
		"https://example.org/presence/":  "https://example.org/presence",
		"http://[::1]:80/a/b":            "http://[::1]:80/a/b",
		"ftp://example.org":              "",
		"127.0.0.1:9273":                 "",
		"http://":                        "",
		"http://user:pw@example.org":     "",
		"http://example.org/?token=x":    "",
		"http://example.org/#frag":       "",
		"http://example.org:0":           "",
		"http://example.org:99999":       "",
		"http://example.org:x":           "",
		"":                               "",
		"http://example.org/a%20b/":      "http://example.org/a%20b",
		"HTTP://Example.org:9273/Prefix": "http://Example.org:9273/Prefix",
	} {
		got, err := ParseHTTPBase(in)
		if got != want || (err == nil) != (want != "") {
			t.Errorf("ParseHTTPBase(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"10":                            10 * time.Second,
		" 5 ":                           5 * time.Second,
		"0":                             0,
		"-1":                            0,
		"abc":                           0,
		"999999999999999999999":         0,
		"86400":                         maxRetryAfter,
		"Sat, 21 Nov 2026 09:00:30 GMT": 30 * time.Second,
		"Sat, 21 Nov 2026 08:00:00 GMT": 0,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", in, got, want)
		}
	}
}
