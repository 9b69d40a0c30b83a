package web

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/pubpresence/pubpresence/internal/feed"
	"github.com/pubpresence/pubpresence/metrics"
	"github.com/pubpresence/pubpresence/presence"
	"github.com/pubpresence/pubpresence/status"
)

const testToken = "0123456789abcdef-TOKEN"

type apiFixture struct {
	t    *testing.T
	feed *feed.Feed
	api  *API
	m    *metrics.Metrics
	st   *status.Tracker
	srv  *httptest.Server
}

func newAPIFixture(t *testing.T, tune func(*APIConfig)) *apiFixture {
	t.Helper()
	tokens, err := ParseTokens([]byte("# readers\nops " + testToken + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	f := feed.New(feed.Config{History: 8, WithIP: true, Coalesce: -1, Start: 100})
	m := metrics.New("test")
	st := &status.Tracker{}
	st.SetPhase(status.Online)
	f.SetPhase(feed.Online)
	cfg := APIConfig{Feed: f, Tokens: tokens, CORSOrigins: []string{"https://dash.example.org"}, MaxStreams: 2,
		Domains: []string{"example.org"}, Log: zerolog.Nop(), Heartbeat: time.Hour}
	if tune != nil {
		tune(&cfg)
	}
	api := NewAPI(cfg, m, st)
	srv := httptest.NewServer(Handler(m, st, api))
	t.Cleanup(func() {
		api.Close()
		srv.Close()
		f.Close()
	})
	return &apiFixture{t: t, feed: f, api: api, m: m, st: st, srv: srv}
}

func (x *apiFixture) get(path string, header ...string) *http.Response {
	x.t.Helper()
	req, err := http.NewRequest("GET", x.srv.URL+path, nil)
	if err != nil {
		x.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := x.srv.Client().Do(req)
	if err != nil {
		x.t.Fatal(err)
	}
	return resp
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var (
	since = time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	alice = presence.Conn{JID: "alice@example.org/laptop", Show: presence.Away, Text: "At lunch", Priority: 5,
		IP: "203.0.113.7", Since: since, Idle: since.Add(-5 * time.Minute)}
	alice2 = presence.Conn{JID: "alice@example.org/phone", Show: presence.DND, Priority: 0, Since: since}
)

func TestAPIAuth(t *testing.T) {
	x := newAPIFixture(t, nil)
	for _, tc := range []struct {
		name, auth, challenge, reason string
	}{
		{"none", "", `Bearer realm="pubpresence"`, "missing"},
		{"basic", "Basic b3BzOnBhc3M=", `Bearer realm="pubpresence"`, "missing"},
		{"wrong", "Bearer " + testToken + "x", `Bearer realm="pubpresence", error="invalid_token"`, "invalid"},
		{"prefix", "Bearer " + testToken[:10], `Bearer realm="pubpresence", error="invalid_token"`, "invalid"},
	} {
		for _, path := range []string{"/api/v1/presence", "/api/v1/presence/alice@example.org", "/api/v1/events", "/api/v2/x"} {
			before := testutil.ToFloat64(x.m.HTTPUnauthorized.WithLabelValues(tc.reason))
			r := x.get(path, "Authorization", tc.auth)
			b := body(t, r)
			if r.StatusCode != 401 || r.Header.Get("WWW-Authenticate") != tc.challenge {
				t.Errorf("%s %s: %d %q %s", tc.name, path, r.StatusCode, r.Header.Get("WWW-Authenticate"), b)
			}
			if strings.Contains(b, testToken) {
				t.Errorf("the answer shows the token: %s", b)
			}
			if got := testutil.ToFloat64(x.m.HTTPUnauthorized.WithLabelValues(tc.reason)); got != before+1 {
				t.Errorf("%s %s: unauthorized{%s} %v → %v", tc.name, path, tc.reason, before, got)
			}
		}
	}
	// "bearer" in any case is the scheme; the token itself is exact.
	if r := x.get("/api/v1/presence", "Authorization", "bearer "+testToken); r.StatusCode != 200 {
		t.Errorf("lower-case scheme: %d", r.StatusCode)
	}
	if r := x.get("/api/v1/presence?access_token="+testToken, "Authorization", "Bearer "+testToken); r.StatusCode != 400 {
		t.Errorf("token in the URL: %d, want 400", r.StatusCode)
	}
	// Revoked on reload.
	other, _ := ParseTokens([]byte("other-token-0123456789\n"))
	x.api.SetTokens(other)
	if r := x.get("/api/v1/presence", "Authorization", "Bearer "+testToken); r.StatusCode != 401 {
		t.Errorf("revoked token: %d", r.StatusCode)
	}
	if r := x.get("/api/v1/presence", "Authorization", "Bearer other-token-0123456789"); r.StatusCode != 200 {
		t.Errorf("new token: %d", r.StatusCode)
	}
	if testutil.ToFloat64(x.m.HTTPTokens) != 1 {
		t.Error("pubpresence_http_tokens not 1")
	}
}

func TestAPIOff(t *testing.T) {
	srv := httptest.NewServer(Handler(metrics.New(""), &status.Tracker{}, nil))
	defer srv.Close()
	for _, path := range []string{"/", "/api/v1/presence", "/api/v1/events", "/app.js"} {
		r, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != 404 {
			t.Errorf("%s without tokens: %d, want 404", path, r.StatusCode)
		}
	}
}

func TestAPISnapshotAndUser(t *testing.T) {
	x := newAPIFixture(t, nil)
	auth := []string{"Authorization", "Bearer " + testToken}
	x.feed.Set(alice)
	x.feed.Set(alice2)
	x.feed.Set(presence.Conn{JID: "bob@example.org/x", Show: presence.Online, Since: since})
	r := x.get("/api/v1/presence", auth...)
	got := body(t, r)
	want := `{"service":"online","seq":103,"connections":[` +
		`{"fulljid":"alice@example.org/laptop","name":"alice@example.org","status":"away","text":"At lunch","priority":5,"ip":"203.0.113.7","since":"2026-11-21T09:00:00Z","idle":"2026-11-21T08:55:00Z"},` +
		`{"fulljid":"alice@example.org/phone","name":"alice@example.org","status":"dnd","priority":0,"since":"2026-11-21T09:00:00Z"},` +
		`{"fulljid":"bob@example.org/x","name":"bob@example.org","status":"online","priority":0,"since":"2026-11-21T09:00:00Z"}]}` + "\n"
	if got != want || r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("snapshot:\n%s\nwant\n%s%v", got, want, r.Header)
	}
	r = x.get("/api/v1/presence/Alice@Example.org", auth...)
	var u struct {
		Name, Service, Status string
		Connections           []json.RawMessage
	}
	if err := json.Unmarshal([]byte(body(t, r)), &u); err != nil || r.StatusCode != 200 {
		t.Fatal(r.StatusCode, err)
	}
	if u.Name != "alice@example.org" || u.Status != "away" || len(u.Connections) != 2 || u.Service != "online" {
		t.Errorf("user: %+v", u)
	}
	r = x.get("/api/v1/presence/carol@example.org", auth...)
	if b := body(t, r); b != `{"name":"carol@example.org","service":"online","status":"offline","connections":[]}`+"\n" {
		t.Errorf("offline user: %s", b)
	}
	for path, code := range map[string]int{
		"/api/v1/presence/alice@example.org/laptop": 400,
		"/api/v1/presence/example.org":              400,
		"/api/v1/presence/a@b@example.org":          400,
		"/api/v1/presence/alice@elsewhere.net":      404,
		"/api/v1/nothing":                           404,
	} {
		if r := x.get(path, auth...); r.StatusCode != code {
			t.Errorf("%s: %d, want %d: %s", path, r.StatusCode, code, body(t, r))
		}
	}
	x.feed.SetPhase(feed.Init)
	if b := body(t, x.get("/api/v1/presence", auth...)); !strings.HasPrefix(b, `{"service":"init","partial":true,"seq":103,`) {
		t.Errorf("init snapshot: %s", b)
	}
	x.st.SetPhase(status.Standby)
	r = x.get("/api/v1/presence", auth...)
	if r.StatusCode != 503 || r.Header.Get("Retry-After") == "" {
		t.Errorf("standby: %d %v", r.StatusCode, r.Header)
	}
	r.Body.Close()
}

func TestAPICORS(t *testing.T) {
	x := newAPIFixture(t, nil)
	pre := func(origin string) *http.Response {
		req, _ := http.NewRequest("OPTIONS", x.srv.URL+"/api/v1/events", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "GET")
		req.Header.Set("Access-Control-Request-Headers", "authorization, last-event-id")
		r, err := x.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		return r
	}
	r := pre("https://dash.example.org")
	if r.StatusCode != 204 || r.Header.Get("Access-Control-Allow-Origin") != "https://dash.example.org" ||
		!strings.Contains(r.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("allowed preflight: %d %v", r.StatusCode, r.Header)
	}
	r = pre("https://evil.example.net")
	if r.StatusCode != 403 || r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("other origin's preflight: %d %v", r.StatusCode, r.Header)
	}
	r = x.get("/api/v1/presence", "Authorization", "Bearer "+testToken, "Origin", "https://dash.example.org")
	r.Body.Close()
	if r.Header.Get("Access-Control-Allow-Origin") != "https://dash.example.org" {
		t.Errorf("allowed GET: %v", r.Header)
	}
	r = x.get("/api/v1/presence", "Authorization", "Bearer "+testToken, "Origin", "https://evil.example.net")
	r.Body.Close()
	if r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("other origin's GET: %v", r.Header)
	}
	x.api.SetCORS(nil)
	if r := pre("https://dash.example.org"); r.StatusCode != 403 {
		t.Errorf("after the reload removed it: %d", r.StatusCode)
	}
}

// sse reads an event stream frame by frame.
type sse struct {
	t    *testing.T
	resp *http.Response
	r    *bufio.Reader
}

func (x *apiFixture) events(lastID string) *sse {
	x.t.Helper()
	h := []string{"Authorization", "Bearer " + testToken}
	if lastID != "" {
		h = append(h, "Last-Event-ID", lastID)
	}
	resp := x.get("/api/v1/events", h...)
	if resp.StatusCode != 200 {
		x.t.Fatalf("events: %d %s", resp.StatusCode, body(x.t, resp))
	}
	x.t.Cleanup(func() { resp.Body.Close() })
	return &sse{t: x.t, resp: resp, r: bufio.NewReader(resp.Body)}
}

// next returns the next frame's fields (event, id, data), skipping
// comments and the retry line unless keep is set.
func (s *sse) next() map[string]string {
	s.t.Helper()
	fr := map[string]string{}
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			s.t.Fatalf("stream: %v (frame so far %v)", err, fr)
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			if len(fr) > 0 {
				return fr
			}
			continue
		}
		if strings.HasPrefix(line, ":") {
			fr["comment"] = line
			continue
		}
		k, v, _ := strings.Cut(line, ": ")
		fr[k] = v
	}
}

func TestAPIEvents(t *testing.T) {
	x := newAPIFixture(t, func(c *APIConfig) { c.MaxStreams = 100 }) // closed streams free their slot a little later
	x.feed.Set(alice)
	s := x.events("")
	if s.resp.Header.Get("Content-Type") != "text/event-stream" || s.resp.Header.Get("X-Accel-Buffering") != "no" {
		t.Errorf("headers: %v", s.resp.Header)
	}
	if fr := s.next(); fr["retry"] != "2000" {
		t.Fatalf("first frame: %v", fr)
	}
	fr := s.next()
	if fr["event"] != "snapshot" || fr["id"] != "101" || !strings.Contains(fr["data"], `"seq":101`) || !strings.Contains(fr["data"], alice.JID) {
		t.Fatalf("snapshot: %v", fr)
	}
	x.feed.Set(alice2)
	x.feed.Gone(presence.Conn{JID: alice.JID, Since: since.Add(time.Minute)})
	if fr := s.next(); fr["event"] != "change" || fr["id"] != "102" || !strings.Contains(fr["data"], alice2.JID) {
		t.Fatalf("change: %v", fr)
	}
	if fr := s.next(); fr["id"] != "103" || !strings.Contains(fr["data"], `"status":"offline"`) || !strings.Contains(fr["data"], `"since":"2026-11-21T09:01:00Z"`) {
		t.Fatalf("offline: %v", fr)
	}
	x.feed.SetPhase(feed.Init)
	if fr := s.next(); fr["event"] != "service" || fr["data"] != `{"service":"init"}` || fr["id"] != "" {
		t.Fatalf("service: %v", fr)
	}
	s.resp.Body.Close()

	// Resume: the phase now, then the changes after 102, and the phase,
	// exactly.
	s = x.events("102")
	s.next() // retry
	if fr := s.next(); fr["event"] != "service" || fr["data"] != `{"service":"init"}` {
		t.Fatalf("resumed at 102, first: %v", fr)
	}
	if fr := s.next(); fr["id"] != "103" {
		t.Fatalf("resumed at 102: %v", fr)
	}
	if fr := s.next(); fr["event"] != "service" {
		t.Fatalf("resumed at 102, then: %v", fr)
	}
	if testutil.ToFloat64(x.m.HTTPResumes) != 1 {
		t.Error("resume not counted")
	}
	s.resp.Body.Close()
	// An id the feed no longer holds, from the future, or unreadable: a snapshot.
	for _, id := range []string{"5", "99999", "abc", "-1", "1e3"} {
		s = x.events(id)
		s.next()
		if fr := s.next(); fr["event"] != "snapshot" || fr["id"] != "103" {
			t.Errorf("Last-Event-ID %q: %v", id, fr)
		}
		s.resp.Body.Close()
	}
	// Shutdown ends the stream.
	s = x.events("")
	s.next()
	s.next()
	x.api.Close()
	if _, err := io.ReadAll(s.resp.Body); err != nil {
		t.Fatalf("after Close: %v", err)
	}
}

func TestAPIHeartbeat(t *testing.T) {
	x := newAPIFixture(t, func(c *APIConfig) { c.Heartbeat = 20 * time.Millisecond })
	s := x.events("")
	s.next()
	s.next()
	if fr := s.next(); fr["comment"] != ": keepalive" {
		t.Fatalf("want a keepalive comment, got %v", fr)
	}
}

func TestAPIMaxStreams(t *testing.T) {
	x := newAPIFixture(t, nil) // MaxStreams 2
	a, b := x.events(""), x.events("")
	a.next()
	b.next()
	r := x.get("/api/v1/events", "Authorization", "Bearer "+testToken)
	msg := body(t, r)
	if r.StatusCode != 503 || r.Header.Get("Retry-After") == "" || !strings.Contains(msg, "max_streams = 2") {
		t.Fatalf("third stream: %d %v %s", r.StatusCode, r.Header, msg)
	}
	if testutil.ToFloat64(x.m.HTTPRefused) != 1 || testutil.ToFloat64(x.m.HTTPStreams) != 2 {
		t.Error("refused or open streams not counted")
	}
	a.resp.Body.Close()
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(x.m.HTTPStreams) != 1 {
		x.feed.Set(presence.Conn{JID: "x@example.org/r", Show: presence.Online, Priority: int(time.Now().UnixNano() % 100)})
		if time.Now().After(deadline) {
			t.Fatal("the closed stream's slot was not given back")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c := x.events("")
	c.next()
}

// TestAPIStalledClient: a client that stops reading is cut off after the
// write timeout; the feed, and the other streams, go on meanwhile.
func TestAPIStalledClient(t *testing.T) {
	x := newAPIFixture(t, func(c *APIConfig) { c.WriteTimeout = 200 * time.Millisecond })
	// A raw connection that sends the request and never reads.
	conn, err := net.Dial("tcp", x.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4096)
	}
	_, err = io.WriteString(conn, "GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+testToken+"\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	good := x.events("")
	good.next()
	good.next()
	text := strings.Repeat("x", 1000)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	seen := 0
	for i := 0; testutil.ToFloat64(x.m.HTTPClosed.WithLabelValues("stalled")) == 0; i++ {
		if ctx.Err() != nil {
			t.Fatal("the stalled stream was never closed")
		}
		x.feed.Set(presence.Conn{JID: "x@example.org/r", Show: presence.Online, Text: text + strconv.Itoa(i)})
		if fr := good.next(); fr["event"] == "change" {
			seen++
		}
	}
	if seen == 0 {
		t.Fatal("the reading client got nothing")
	}
	if n := testutil.ToFloat64(x.m.HTTPStreams); n != 1 {
		t.Errorf("%v streams open after the stalled one was closed, want 1", n)
	}
}

// TestAPIShutdownSendsTheLast: as the service stops, a stream is sent what
// the feed has not woken it for yet (its last changes and init), then ends.
func TestAPIShutdownSendsTheLast(t *testing.T) {
	f := feed.New(feed.Config{Coalesce: time.Hour, Start: 1}) // never wakes by itself
	m := metrics.New("")
	st := &status.Tracker{}
	st.SetPhase(status.Online)
	f.SetPhase(feed.Online)
	tokens, _ := ParseTokens([]byte(testToken))
	api := NewAPI(APIConfig{Feed: f, Tokens: tokens, Domains: []string{"example.org"}, Log: zerolog.Nop()}, m, st)
	srv := httptest.NewServer(Handler(m, st, api))
	defer srv.Close()
	x := &apiFixture{t: t, feed: f, api: api, m: m, st: st, srv: srv}
	s := x.events("")
	s.next()                                           // retry
	s.next()                                           // snapshot
	f.Gone(presence.Conn{JID: "nobody@example.org/r"}) // unknown: no change
	f.Set(alice)
	f.SetPhase(feed.Init)
	api.Close()
	if fr := s.next(); fr["event"] != "change" {
		t.Fatalf("want the last change, got %v", fr)
	}
	if fr := s.next(); fr["data"] != `{"service":"init"}` {
		t.Fatalf("want init, got %v", fr)
	}
	if rest, err := io.ReadAll(s.r); err != nil || len(rest) != 0 {
		t.Fatalf("after the last: %q %v", rest, err)
	}
	if n := testutil.ToFloat64(m.HTTPClosed.WithLabelValues("shutdown")); n != 1 {
		t.Fatalf("closed{shutdown} %v", n)
	}
}

// TestAPIErrorsAreJSON: an error that quotes what the client sent (bytes
// that are not UTF-8, control characters) is still valid JSON.
func TestAPIErrorsAreJSON(t *testing.T) {
	x := newAPIFixture(t, nil)
	for _, path := range []string{"/api/v1/presence/a%00b@example.org", "/api/v1/presence/%FF%FE@example.org", "/api/v1/presence/a@b@c"} {
		r := x.get(path, "Authorization", "Bearer "+testToken)
		b := body(t, r)
		var e struct{ Error string }
		if r.StatusCode != 400 || json.Unmarshal([]byte(b), &e) != nil || e.Error == "" {
			t.Errorf("%s: %d %q is not a JSON error", path, r.StatusCode, b)
		}
	}
}
