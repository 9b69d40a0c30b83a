//go:build integration

package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/nodes"
	"github.com/pubpresence/pubpresence/presence"
	"github.com/pubpresence/pubpresence/watch"
)

// The HTTP face against the nodes: a client of the event stream, written
// here from docs/http.md (not the product's own watch), must hold what the
// snapshot says and what a reader of the nodes holds, through changes,
// drops, and restarts of the service and the server.

// apiGet GETs path from the service's API with token ("" for none).
func apiGet(t testing.TB, svc *service, path, token string, header ...string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+svc.http+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, nil, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// apiSnapshot is GET /api/v1/presence.
type apiSnapshot struct {
	Service     string            `json:"service"`
	Partial     bool              `json:"partial"`
	Seq         uint64            `json:"seq"`
	Connections []json.RawMessage `json:"connections"`
}

func (s apiSnapshot) conns(t testing.TB) map[string]presence.Conn {
	t.Helper()
	m := make(map[string]presence.Conn, len(s.Connections))
	for _, raw := range s.Connections {
		c, err := nodes.ParseJSON(raw)
		if err != nil {
			t.Fatalf("snapshot connection %s: %v", raw, err)
		}
		m[c.JID] = c
	}
	return m
}

func snapshotOf(t testing.TB, svc *service) (apiSnapshot, bool) {
	t.Helper()
	code, _, b := apiGet(t, svc, "/api/v1/presence", svc.token)
	if code != 200 {
		return apiSnapshot{}, false
	}
	var s apiSnapshot
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("snapshot %s: %v", b, err)
	}
	return s, true
}

// sseClient follows /api/v1/events: it applies snapshot and change events
// to its map, as docs/http.md tells a client to, and checks that change
// ids go up by one.
type sseClient struct {
	t   testing.TB
	svc *service

	mu      sync.Mutex
	conns   map[string]presence.Conn
	service string
	last    uint64
	snaps   int
	changes int
	err     error
	body    io.Closer
	done    chan struct{}
}

// follow opens the stream, with Last-Event-ID last when resume.
func follow(t testing.TB, svc *service, last uint64, resume bool) *sseClient {
	t.Helper()
	c := &sseClient{t: t, svc: svc, conns: map[string]presence.Conn{}, last: last}
	c.open(resume)
	return c
}

func (c *sseClient) open(resume bool) {
	c.t.Helper()
	req, err := http.NewRequest("GET", "http://"+c.svc.http+"/api/v1/events", nil)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.svc.token)
	if resume {
		req.Header.Set("Last-Event-ID", strconv.FormatUint(c.last, 10))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("events: %v", err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		c.t.Fatalf("events: %d %s", resp.StatusCode, b)
	}
	c.mu.Lock()
	c.body, c.done, c.err = resp.Body, make(chan struct{}), nil
	done := c.done
	c.mu.Unlock()
	go func() {
		defer close(done)
		err := c.read(bufio.NewReaderSize(resp.Body, 1<<16))
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
	}()
	c.t.Cleanup(func() { resp.Body.Close(); <-done })
}

// drop closes the stream, as a network failure would.
func (c *sseClient) drop() {
	c.mu.Lock()
	body, done := c.body, c.done
	c.mu.Unlock()
	body.Close()
	<-done
}

// ended reports whether the stream has ended.
func (c *sseClient) ended() bool {
	c.mu.Lock()
	done := c.done
	c.mu.Unlock()
	select {
	case <-done:
		return true
	default:
		return false
	}
}

func (c *sseClient) read(r *bufio.Reader) error {
	var id, event, data string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		line = strings.TrimSuffix(line, "\n")
		if line != "" {
			if strings.HasPrefix(line, ":") {
				continue
			}
			k, v, _ := strings.Cut(line, ":")
			v = strings.TrimPrefix(v, " ")
			switch k {
			case "id":
				id = v
			case "event":
				event = v
			case "data":
				data = v
			}
			continue
		}
		if event != "" {
			if err := c.apply(id, event, data); err != nil {
				return err
			}
		}
		id, event, data = "", "", ""
	}
}

func (c *sseClient) apply(id, event, data string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var seq uint64
	if id != "" {
		n, err := strconv.ParseUint(id, 10, 64)
		if err != nil {
			return fmt.Errorf("id %q", id)
		}
		seq = n
	}
	switch event {
	case "snapshot":
		var s apiSnapshot
		if err := json.Unmarshal([]byte(data), &s); err != nil {
			return err
		}
		if s.Seq != seq {
			return fmt.Errorf("snapshot seq %d, id %d", s.Seq, seq)
		}
		c.conns = s.conns(c.t)
		c.service, c.last = s.Service, seq
		c.snaps++
	case "change":
		if seq != c.last+1 {
			return fmt.Errorf("change %d after %d: lost or repeated", seq, c.last)
		}
		conn, err := nodes.ParseJSON([]byte(data))
		if err != nil {
			return err
		}
		if conn.Show == presence.Offline {
			if _, ok := c.conns[conn.JID]; !ok {
				return fmt.Errorf("offline for %s, not held", conn.JID)
			}
			delete(c.conns, conn.JID)
		} else {
			c.conns[conn.JID] = conn
		}
		c.last = seq
		c.changes++
	case "service":
		var s struct{ Service string }
		if err := json.Unmarshal([]byte(data), &s); err != nil {
			return err
		}
		c.service = s.Service
	default:
		return fmt.Errorf("event %q", event)
	}
	return nil
}

// state returns what the client holds.
func (c *sseClient) state() (string, uint64, map[string]presence.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[string]presence.Conn, len(c.conns))
	for k, v := range c.conns {
		m[k] = v
	}
	return c.service, c.last, m, c.err
}

// sameConns compares two views of the connections: state, and since too
// when withSince.
func sameConns(a, b map[string]presence.Conn, withSince bool) string {
	if len(a) != len(b) {
		return fmt.Sprintf("%d connections vs %d", len(a), len(b))
	}
	for jid, x := range a {
		y, ok := b[jid]
		if !ok {
			return jid + " missing"
		}
		if !x.SameState(y) || (withSince && !x.Since.Equal(y.Since)) {
			return fmt.Sprintf("%s: %+v vs %+v", jid, x, y)
		}
	}
	return ""
}

// agree waits until the snapshot, the stream's client and the watcher of
// the nodes hold want (the watcher may be nil), online; since is compared
// between the snapshot and the stream, which share their source.
func agree(t testing.TB, svc *service, c *sseClient, w *watch.Follower, want map[string]conn) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		why := ""
		snap, ok := snapshotOf(t, svc)
		service, last, held, err := c.state()
		switch {
		case err != nil && !c.ended():
			why = "stream: " + err.Error()
		case !ok:
			why = "no snapshot"
		case snap.Service != "online" || service != "online":
			why = fmt.Sprintf("service: snapshot %s, stream %s", snap.Service, service)
		case last != snap.Seq:
			why = fmt.Sprintf("stream at %d, snapshot at %d", last, snap.Seq)
		default:
			sc := snap.conns(t)
			var list []presence.Conn
			for _, x := range sc {
				list = append(list, x)
			}
			if !matches(list, want) {
				why = "snapshot:\n" + describe(list)
			} else if d := sameConns(sc, held, true); d != "" {
				why = "stream vs snapshot: " + d
			} else if w != nil {
				st, conns := w.Snapshot()
				if d := sameConns(sc, byJID(conns), false); st != "online" || d != "" {
					why = "nodes (" + st + ") vs snapshot: " + d
				}
			}
		}
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the HTTP face and the nodes disagree: %s", why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestIntegrationHTTP: the snapshot, per-user answers and the event stream
// against a reader of the nodes while users come, change and go (clean
// and abrupt), through a dropped stream (resumed without loss or
// duplicate), a service restart and a server restart; a client that never
// reads meanwhile slows nothing.
func TestIntegrationHTTP(t *testing.T) {
	eachServer(t, func(t *testing.T, start startFunc) {
		srv := start(t)
		createUsers(t, srv, "alice", "bob", "carol")
		svc := startService(t, srv)
		waitUntil(t, "readyz", func() bool { return svc.Ready() == http.StatusOK })
		w := watcher(t, srv)
		stalledClient(t, svc) // never reads, for the whole test; closed at its end
		c := follow(t, svc, 0, false)
		agree(t, svc, c, w, map[string]conn{})

		a1 := online(t, srv, "alice", "r1")
		b1 := online(t, srv, "bob", "r1")
		if err := b1.Presence("away", "at lunch", 3); err != nil {
			t.Fatal(err)
		}
		a2 := online(t, srv, "alice", "r2")
		want := map[string]conn{
			"alice@localhost/r1": {show: presence.Online, ip: "127.0.0.1"},
			"alice@localhost/r2": {show: presence.Online, ip: "127.0.0.1"},
			"bob@localhost/r1":   {show: presence.Away, text: "at lunch", prio: 3, ip: "127.0.0.1"},
		}
		agree(t, svc, c, w, want)
		if err := a1.Presence("dnd", "busy", 1); err != nil {
			t.Fatal(err)
		}
		want["alice@localhost/r1"] = conn{show: presence.DND, text: "busy", prio: 1, ip: "127.0.0.1"}
		agree(t, svc, c, w, want)

		// One user: the most available connection gives the status.
		code, _, b := apiGet(t, svc, "/api/v1/presence/Alice@localhost", svc.token)
		var u struct {
			Name, Status string
			Connections  []json.RawMessage
		}
		if err := json.Unmarshal(b, &u); err != nil || code != 200 || u.Name != "alice@localhost" || u.Status != "online" || len(u.Connections) != 2 {
			t.Fatalf("alice: %d %s", code, b)
		}
		if code, _, b = apiGet(t, svc, "/api/v1/presence/carol@localhost", svc.token); code != 200 || !strings.Contains(string(b), `"status":"offline"`) {
			t.Fatalf("carol: %d %s", code, b)
		}

		// Clean logout and abrupt close.
		if err := b1.Close(); err != nil {
			t.Fatal(err)
		}
		delete(want, "bob@localhost/r1")
		_ = a2.Abort()
		delete(want, "alice@localhost/r2")
		agree(t, svc, c, w, want)

		// The stream drops; meanwhile things change; the client comes back
		// with its Last-Event-ID and gets exactly what it missed.
		c.drop()
		_, last, _, _ := c.state()
		snapsBefore := c.snaps
		online(t, srv, "carol", "r1")
		if err := a1.Presence("", "back", 1); err != nil {
			t.Fatal(err)
		}
		want["carol@localhost/r1"] = conn{show: presence.Online, ip: "127.0.0.1"}
		want["alice@localhost/r1"] = conn{show: presence.Online, text: "back", prio: 1, ip: "127.0.0.1"}
		waitUntil(t, "the changes after the drop", func() bool {
			s, ok := snapshotOf(t, svc)
			return ok && s.Seq >= last+2
		})
		c.open(true)
		agree(t, svc, c, w, want)
		if c.snaps != snapsBefore {
			t.Fatalf("the resumed stream sent a snapshot (Last-Event-ID %d)", last)
		}
		if n := svc.Metric(t, "pubpresence_http_stream_resumes_total"); n < 1 {
			t.Fatalf("resumes_total %v", n)
		}

		// The service restarts: the stream ends; the client comes back
		// with its Last-Event-ID, which the new process does not hold: a
		// snapshot, then the truth.
		svc.Stop()
		waitUntil(t, "the stream to end with the service", c.ended)
		svc.Start()
		waitUntil(t, "readyz after restart", func() bool { return svc.Ready() == http.StatusOK })
		snapsBefore = c.snaps
		c.open(true)
		agree(t, svc, c, w, want)
		if c.snaps != snapsBefore+1 {
			t.Fatalf("after the service restart: %d snapshots, want one", c.snaps-snapsBefore)
		}
		stalled := stalledClient(t, svc) // the first one went with the service

		// The server restarts: every user is cut; the stream stays, tells
		// init, and ends equal to the nodes.
		if err := srv.Restart(); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "a reconnect", func() bool { return svc.Metric(t, "pubpresence_reconnects_total") >= 1 })
		waitUntil(t, "readyz after the server restart", func() bool { return svc.Ready() == http.StatusOK })
		online(t, srv, "bob", "r9")
		w2 := watcher(t, srv)
		agree(t, svc, c, w2, map[string]conn{"bob@localhost/r9": {show: presence.Online, ip: "127.0.0.1"}})
		if c.ended() {
			t.Fatal("the stream ended with the server's restart")
		}
		if n := svc.Metric(t, "pubpresence_http_streams"); n < 2 {
			t.Fatalf("%v streams open, want the client's and the stalled one", n)
		}
		stalled.Close()
		t.Logf("the stream's client: %d snapshots, %d changes, at seq %d", c.snaps, c.changes, c.last)
	})
}

// stalledClient opens an event stream that never reads.
func stalledClient(t testing.TB, svc *service) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", svc.http)
	if err != nil {
		t.Fatal(err)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4096)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := fmt.Fprintf(conn, "GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", svc.token); err != nil {
		t.Fatal(err)
	}
	return conn
}

// TestIntegrationHTTPAccess: 401s (counted, the token never logged),
// max_streams, the page's headers, the API off without tokens, and the
// tokens file read again on SIGHUP.
func TestIntegrationHTTPAccess(t *testing.T) {
	eachServer(t, func(t *testing.T, start startFunc) {
		srv := start(t)
		createUsers(t, srv)
		svc := startService(t, srv, func(o *svcOptions) { o.maxStreams = 2 })
		waitUntil(t, "readyz", func() bool { return svc.Ready() == http.StatusOK })
		for _, tc := range []struct{ token, challenge string }{
			{"", `Bearer realm="pubpresence"`},
			{"wrong-token-0123456789", `Bearer realm="pubpresence", error="invalid_token"`},
		} {
			code, h, _ := apiGet(t, svc, "/api/v1/presence", tc.token)
			if code != 401 || h.Get("WWW-Authenticate") != tc.challenge {
				t.Fatalf("token %q: %d %v", tc.token, code, h)
			}
		}
		if n := svc.Metric(t, `pubpresence_http_unauthorized_total{reason="invalid"}`) + svc.Metric(t, `pubpresence_http_unauthorized_total{reason="missing"}`); n != 2 {
			t.Fatalf("unauthorized_total %v, want 2", n)
		}
		if code, h, b := apiGet(t, svc, "/", ""); code != 200 || !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'none'") || !strings.Contains(string(b), "<html") {
			t.Fatalf("page: %d %v", code, h)
		}

		a, b := follow(t, svc, 0, false), follow(t, svc, 0, false)
		code, h, body := apiGet(t, svc, "/api/v1/events", svc.token)
		if code != 503 || h.Get("Retry-After") == "" || !strings.Contains(string(body), "max_streams = 2") {
			t.Fatalf("a third stream: %d %v %s", code, h, body)
		}
		a.drop()
		waitUntil(t, "the slot back", func() bool { return svc.Metric(t, "pubpresence_http_streams") == 1 })
		follow(t, svc, 0, false)
		_ = b

		// A new token file on SIGHUP: the old token stops working.
		old := svc.token
		svc.token = randomToken(t)
		if err := os.WriteFile(svc.tokens, []byte("ops "+svc.token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		svc.Hup()
		waitUntil(t, "the new token", func() bool {
			code, _, _ := apiGet(t, svc, "/api/v1/presence", svc.token)
			return code == 200
		})
		if code, _, _ := apiGet(t, svc, "/api/v1/presence", old); code != 401 {
			t.Fatalf("the revoked token: %d", code)
		}
		if svc.Logged(old) || svc.Logged(svc.token) {
			t.Fatal("a token is in the log")
		}

		// Without tokens_file the API and the page are off. (This one
		// connects nowhere: a second connection of the component would
		// make the first a standby.)
		off := startService(t, srv, func(o *svcOptions) { o.noAPI = true; o.address = freePort(t) })
		waitUntil(t, "the second service's listener", func() bool {
			code, _, _ := apiGet(t, off, "/healthz", "")
			return code == 200
		})
		for _, p := range []string{"/", "/api/v1/presence", "/api/v1/events"} {
			if code, _, _ := apiGet(t, off, p, "x"); code != 404 {
				t.Fatalf("%s without tokens_file: %d", p, code)
			}
		}
	})
}
