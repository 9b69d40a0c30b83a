package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pubpresence/pubpresence/internal/feed"
	"github.com/pubpresence/pubpresence/metrics"
	"github.com/pubpresence/pubpresence/presence"
	"github.com/pubpresence/pubpresence/status"
	"github.com/pubpresence/pubpresence/watch"
	"github.com/pubpresence/pubpresence/web"
)

const httpToken = "dGVzdC10b2tlbi1vZi13YXRjaC1odHRw"

// writeFile writes content to a new file in dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestParseWatchHTTP(t *testing.T) {
	dir := t.TempDir()
	tokens := writeFile(t, dir, "tokens", "# readers\nwatch "+httpToken+"\nother second-token-aaaaaaaaaa\n")
	badTokens := writeFile(t, dir, "bad", "a b "+httpToken+"\n")
	caFile := writeFile(t, dir, "ca.pem", string(testCAPEM(t)))
	for _, tc := range []struct {
		name  string
		args  []string
		want  func(*watchOptions) string
		error string
	}{
		{name: "defaults", args: []string{"--http", "http://127.0.0.1:9273/", "--token-file", tokens},
			want: func(o *watchOptions) string {
				switch {
				case o.httpURL != "http://127.0.0.1:9273":
					return "URL " + o.httpURL
				case o.token != httpToken || o.tokenFile != tokens:
					return "token"
				case o.format != "table" || o.once || o.timeout != 10*time.Second || o.tls != nil:
					return "format, once, timeout or TLS"
				}
				return ""
			}},
		{name: "everything", args: []string{"--http", "https://example.org/pp", "--token-file", tokens, "--format", "json",
			"--once", "--timeout", "3s", "--ca", caFile},
			want: func(o *watchOptions) string {
				switch {
				case o.httpURL != "https://example.org/pp":
					return "URL " + o.httpURL
				case o.format != "json" || !o.once || o.timeout != 3*time.Second:
					return "format, once or timeout"
				case o.tls == nil || o.tls.RootCAs == nil:
					return "TLS"
				}
				return ""
			}},
		{name: "no token file", args: []string{"--http", "http://127.0.0.1:9273"}, error: "--http needs --token-file"},
		{name: "token file alone", args: []string{"--token-file", tokens, "--jid", "m@x", "--password", "p"}, error: "--token-file goes with --http"},
		{name: "empty URL", args: []string{"--http", "", "--token-file", tokens}, error: "--http"},
		{name: "no scheme", args: []string{"--http", "127.0.0.1:9273", "--token-file", tokens}, error: "--http"},
		{name: "ftp", args: []string{"--http", "ftp://example.org", "--token-file", tokens}, error: "want http://host[:port][/prefix]"},
		{name: "credentials", args: []string{"--http", "http://u:p@example.org", "--token-file", tokens}, error: "no credentials in the URL"},
		{name: "query", args: []string{"--http", "http://example.org/?token=x", "--token-file", tokens}, error: "no query"},
		{name: "missing token file", args: []string{"--http", "http://x", "--token-file", filepath.Join(dir, "none")}, error: "--token-file: open"},
		{name: "bad token file", args: []string{"--http", "http://x", "--token-file", badTokens}, error: "--token-file: " + badTokens + ": line 1:"},
		{name: "ca with http", args: []string{"--http", "http://x", "--token-file", tokens, "--ca", caFile}, error: "--ca verifies an https service"},
		{name: "bad format", args: []string{"--http", "http://x", "--token-file", tokens, "--format", "xml"}, error: "want table or json"},
		{name: "jid", args: []string{"--http", "http://x", "--token-file", tokens, "--jid", "m@x"}, error: "--jid is for following the nodes over XMPP"},
		{name: "password", args: []string{"--http", "http://x", "--token-file", tokens, "--password", "p"}, error: "--password is for"},
		{name: "server", args: []string{"--http", "http://x", "--token-file", tokens, "--server", "h:1"}, error: "--server is for"},
		{name: "plain", args: []string{"--http", "http://x", "--token-file", tokens, "--plain"}, error: "--plain is for"},
		{name: "node", args: []string{"--http", "http://x", "--token-file", tokens, "--live", "l"}, error: "--live is for"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			o, err := parseWatch(tc.args, &stderr, func(string) string { return "envpw" })
			if tc.error != "" {
				var ue *usageError
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.error) {
					t.Fatalf("error %v, want a usage error with %q", err, tc.error)
				}
				if strings.Contains(err.Error(), httpToken) {
					t.Errorf("the error shows the token: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if what := tc.want(o); what != "" {
				t.Errorf("wrong %s: %+v", what, *o)
			}
		})
	}
}

func TestStreamFormats(t *testing.T) {
	now := t0.Add(90 * time.Second)
	var b bytes.Buffer
	table := tableFormat{loc: time.UTC}
	table.down(&b, now, "connect: connection refused", 500*time.Millisecond, false)
	table.down(&b, now, "the service closed the stream", 10*time.Second, true)
	table.up(&b, now)
	want := `09:01:30 stream down (connect: connection refused); retrying in 500ms
09:01:30 stream down (the service closed the stream); retrying in 10s, keeping the last state
09:01:30 stream back
`
	if got := b.String(); got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
	b.Reset()
	jsonFormat{}.down(&b, now, "503 Service Unavailable: standby", 1500*time.Millisecond, true)
	jsonFormat{}.up(&b, now)
	want = `{"event":"reconnecting","time":"2026-11-21T09:01:30Z","error":"503 Service Unavailable: standby","retry_in":1.5}
{"event":"reconnected","time":"2026-11-21T09:01:30Z"}
`
	if got := b.String(); got != want {
		t.Errorf("json:\n%s\nwant:\n%s", got, want)
	}
}

// TestWatchPrinterReconnect: a line when the stream goes down and one when
// it is back, none for retries for the same reason, and the state printed
// anew when a fresh snapshot follows.
func TestWatchPrinterReconnect(t *testing.T) {
	p, out := newTestPrinter(false)
	p.connected() // the first connection: nothing
	p.status(watch.StatusOnline)
	p.snapshot([]presence.Conn{alice})
	expect(t, out, "state alice@x/laptop online", "online 1")

	p.retry("EOF", time.Second)
	p.retry("EOF", 2*time.Second)
	p.retry("connection refused", 4*time.Second)
	p.retry("connection refused", 8*time.Second)
	p.connected()
	p.connected()
	expect(t, out, "reconnecting", "reconnecting", "reconnected")

	// Resumed: the changes follow.
	event(p, bob)
	expect(t, out, "available bob@x/desk away")

	// Not resumed: the fresh snapshot is printed, even when it is the same.
	p.retry("EOF", time.Second)
	p.connected()
	p.status(watch.StatusOnline)
	p.snapshot([]presence.Conn{alice, bob})
	expect(t, out, "reconnecting", "reconnected", "state alice@x/laptop online", "state bob@x/desk away", "online 2")
}

// apiServer is the service's HTTP face as serve builds it.
type apiServer struct {
	feed *feed.Feed
	st   *status.Tracker
	srv  *httptest.Server
}

func newAPIServer(t *testing.T) *apiServer {
	t.Helper()
	m := metrics.New("test")
	s := &apiServer{feed: feed.New(feed.Config{WithIP: true}), st: &status.Tracker{}}
	tokens, err := web.ParseTokens([]byte("watch " + httpToken + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	api := web.NewAPI(web.APIConfig{Feed: s.feed, Tokens: tokens, Domains: []string{"x"}, Log: zerolog.Nop()}, m, s.st)
	s.srv = httptest.NewServer(web.Handler(m, s.st, api))
	t.Cleanup(func() { api.Close(); s.srv.Close(); s.feed.Close() })
	return s
}

// lineWriter hands the lines written to it to a channel.
type lineWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines chan string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		line, err := w.buf.ReadString('\n')
		if err != nil {
			w.buf.WriteString(line)
			return len(p), nil
		}
		w.lines <- strings.TrimSuffix(line, "\n")
	}
}

// next returns the event (and jid) of the next JSON line.
func (w *lineWriter) next(t *testing.T) string {
	t.Helper()
	select {
	case line := <-w.lines:
		var m struct{ Event, JID, Show, Status, Error string }
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		return strings.Join(strings.Fields(strings.Join([]string{m.Event, m.JID, m.Show, m.Status}, " ")), " ")
	case <-time.After(10 * time.Second):
		t.Fatal("no line")
		return ""
	}
}

func TestWatchHTTP(t *testing.T) {
	s := newAPIServer(t)
	s.feed.Set(alice)
	s.feed.SetPhase(feed.Online)
	dir := t.TempDir()
	tokens := writeFile(t, dir, "tokens", "# the token of watch\nwatch "+httpToken+"\n")

	// --once: the state, then exit 0.
	var stdout, stderr bytes.Buffer
	if code := run([]string{"watch", "--http", s.srv.URL, "--token-file", tokens, "--once"}, &stdout, &stderr); code != 0 {
		t.Fatalf("--once: exit %d; stderr:\n%s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	if len(lines) != 3 || !strings.HasSuffix(lines[0], " online: 1 connection") || !strings.HasPrefix(lines[1], "JID ") ||
		!strings.HasPrefix(strings.Join(strings.Fields(lines[2]), " "), "alice@x/laptop online 5 - 127.0.0.1 ") {
		t.Errorf("--once output:\n%s", stdout.String())
	}
	if want := "pubpresence watch: following " + s.srv.URL + "/api/v1/events with the token of " + tokens + "\n"; stderr.String() != want {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}

	// Following, in JSON: the state, the changes, a cut stream.
	o, err := parseWatch([]string{"--http", s.srv.URL + "/", "--token-file", tokens, "--format", "json"}, &stderr, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	out := &lineWriter{lines: make(chan string, 100)}
	ctx, cancel := context.WithCancel(t.Context())
	ran := make(chan error, 1)
	go func() { ran <- runWatch(ctx, o, out, io.Discard) }()
	for _, want := range []string{"state alice@x/laptop online", "online"} {
		if got := out.next(t); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	s.feed.Set(bob)
	if got := out.next(t); got != "available bob@x/desk away" {
		t.Fatalf("got %q", got)
	}
	s.srv.CloseClientConnections()
	if got := out.next(t); got != "reconnecting" {
		t.Fatalf("got %q", got)
	}
	if got := out.next(t); got != "reconnected" {
		t.Fatalf("got %q", got)
	}
	gone := bob
	gone.Show = presence.Offline
	s.feed.Gone(gone)
	if got := out.next(t); got != "offline bob@x/desk offline" {
		t.Fatalf("got %q", got)
	}
	s.feed.SetPhase(feed.Init)
	if got := out.next(t); got != "status init" {
		t.Fatalf("got %q", got)
	}
	cancel()
	if err := <-ran; err != nil {
		t.Errorf("runWatch after the end of ctx: %v", err)
	}
}

func TestWatchHTTPErrors(t *testing.T) {
	s := newAPIServer(t)
	off := httptest.NewServer(web.Handler(metrics.New("test"), &status.Tracker{}, nil))
	t.Cleanup(off.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	tokens := writeFile(t, dir, "tokens", "watch "+httpToken+"\n")
	const wrongToken = "d3JvbmctdG9rZW4tZm9yLXRoZS10ZXN0"
	wrong := writeFile(t, dir, "wrong", wrongToken+"\n")
	ts := httptest.NewUnstartedServer(http.NotFoundHandler())
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake the unknown CA fails
	ts.StartTLS()
	t.Cleanup(ts.Close)
	ca := writeFile(t, dir, "ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})))

	for _, tc := range []struct {
		name   string
		args   []string
		stderr []string
	}{
		{"wrong token", []string{"--http", s.srv.URL, "--token-file", wrong},
			[]string{"pubpresence watch: " + s.srv.URL + " refused the token of --token-file " + wrong + " (401 Unauthorized)", "http.tokens_file"}},
		{"API off", []string{"--http", off.URL, "--token-file", tokens},
			[]string{"404 Not Found: the HTTP API is off on this service (http.tokens_file)"}},
		{"refused", []string{"--http", "http://" + closed, "--token-file", tokens},
			[]string{"pubpresence watch: connect to " + closed + ": ", "refused"}},
		{"unknown CA", []string{"--http", ts.URL, "--token-file", tokens},
			[]string{"not signed by a known CA: give its CA with --ca"}},
		{"with the CA", []string{"--http", ts.URL, "--token-file", tokens, "--ca", ca},
			[]string{"404 Not Found: the HTTP API is off on this service"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(append([]string{"watch"}, tc.args...), &stdout, &stderr); code != 1 {
				t.Errorf("exit %d, want 1; stderr:\n%s", code, stderr.String())
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout: %q", stdout.String())
			}
			for _, want := range tc.stderr {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
				}
			}
			if strings.Contains(stderr.String(), httpToken) || strings.Contains(stderr.String(), wrongToken) {
				t.Errorf("a token is printed:\n%s", stderr.String())
			}
			if n := strings.Count(stderr.String(), "\n"); n != 1 {
				t.Errorf("want one line on stderr:\n%s", stderr.String())
			}
		})
	}
}

// The usage documents --http.
func TestWatchUsageHTTP(t *testing.T) {
	var stderr bytes.Buffer
	run([]string{"watch", "-h"}, io.Discard, &stderr)
	sc := bufio.NewScanner(&stderr)
	found := map[string]bool{}
	for sc.Scan() {
		for _, s := range []string{"--http URL --token-file FILE", "-token-file", `{"event":"reconnecting"`, "stream back"} {
			if strings.Contains(sc.Text(), s) {
				found[s] = true
			}
		}
	}
	if len(found) != 4 {
		t.Errorf("the usage lacks some of --http: found %v", found)
	}
}
