//go:build integration

package ejabberdapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/internal/c2s"
	"github.com/pubpresence/pubpresence/internal/load"
	"github.com/pubpresence/pubpresence/internal/testserver"
)

const password = "pw"

// login logs local@Domain in on addr with the resource res and drops what
// the session receives; the session is closed when the test ends.
func login(t testing.TB, s *testserver.Server, addr, jid, res string) *c2s.Client {
	t.Helper()
	cl, err := c2s.Dial(context.Background(), c2s.Config{Addr: addr, JID: jid, Password: password, Resource: res})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range cl.Stanzas() {
		}
	}()
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// rawBody returns the body of a plain POST of {} to the command, as the
// server sent it.
func rawBody(t *testing.T, apiURL string) string {
	t.Helper()
	resp, err := http.Post(apiURL+"/"+CommandConnectedUsersInfo, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestIntegrationConnectedUsersInfo logs users in with every presence state
// and checks what ConnectedUsersInfo makes of ejabberd's answer (the raw
// answer is logged with -v: docs/ejabberd.md quotes it).
func TestIntegrationConnectedUsersInfo(t *testing.T) {
	s := testserver.StartEjabberd(t)
	ctx := context.Background()
	c := &Client{URL: s.APIURL}

	got, err := c.ConnectedUsersInfo(ctx)
	if err != nil || len(got) != 0 {
		t.Fatalf("no one online: ConnectedUsersInfo = %v, %v; want no sessions", got, err)
	}
	t.Logf("no session: %s", rawBody(t, s.APIURL))

	users := []string{"silent", "plain", "chat", "away", "xa", "dnd", "negative", "text", "gone", "six", "mixed"}
	if err := s.CreateUsers(users, password); err != nil {
		t.Fatal(err)
	}
	const text = "Grüße, 日本\nsecond line <&>"
	want := map[string]Session{
		"silent@localhost/desk":     {Show: "", Priority: -1},
		"plain@localhost/desk":      {Show: "online"},
		"chat@localhost/desk":       {Show: "chat", Text: "chatty", Priority: 1},
		"away@localhost/desk":       {Show: "away", Text: "lunch", Priority: 2},
		"xa@localhost/desk":         {Show: "xa", Text: "holiday", Priority: 3},
		"dnd@localhost/desk":        {Show: "dnd", Text: "meeting", Priority: 4},
		"negative@localhost/desk":   {Show: "online", Priority: -5},
		"text@localhost/desk":       {Show: "away", Text: text, Priority: 0},
		"gone@localhost/desk":       {Show: "", Priority: -1},
		"mixed@localhost/MiXed Res": {Show: "online"},
	}
	login(t, s, s.C2SAddr, "silent@localhost", "desk")
	if err := login(t, s, s.C2SAddr, "plain@localhost", "desk").Presence("", "", 0); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"chat", "away", "xa", "dnd"} {
		w := want[u+"@localhost/desk"]
		if err := login(t, s, s.C2SAddr, u+"@localhost", "desk").Presence(u, w.Text, w.Priority); err != nil {
			t.Fatal(err)
		}
	}
	if err := login(t, s, s.C2SAddr, "negative@localhost", "desk").Presence("", "", -5); err != nil {
		t.Fatal(err)
	}
	if err := login(t, s, s.C2SAddr, "text@localhost", "desk").Presence("away", text, 0); err != nil {
		t.Fatal(err)
	}
	gone := login(t, s, s.C2SAddr, "gone@localhost", "desk")
	if err := gone.Presence("dnd", "before", 3); err != nil {
		t.Fatal(err)
	}
	if err := login(t, s, s.C2SAddr, "MiXeD@LocalHost", "MiXed Res").Presence("", "", 0); err != nil {
		t.Fatal(err)
	}
	if s.C2SAddr6 != "" {
		want["six@localhost/desk"] = Session{Show: "online", Text: "over IPv6"}
		if err := login(t, s, s.C2SAddr6, "six@localhost", "desk").Presence("", "over IPv6", 0); err != nil {
			t.Fatal(err)
		}
	} else {
		t.Log("no IPv6 loopback: the ::1 session is not measured")
	}
	// gone's dnd must be applied before its unavailable, and the
	// unavailable before the check: wait for each.
	waitFor(t, c, "gone@localhost/desk", func(s Session) bool { return s.Show == "dnd" })
	if err := gone.Send("<presence type='unavailable'><status>gone for now</status></presence>"); err != nil {
		t.Fatal(err)
	}

	var sessions []Session
	deadline := time.Now().Add(5 * time.Second)
	for {
		sessions, err = c.ConnectedUsersInfo(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if mismatch := compare(sessions, want); mismatch == "" {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("after 5 s: %s\nsessions: %+v", mismatch, sessions)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, ss := range sessions {
		wantIP := "127.0.0.1"
		if strings.HasPrefix(ss.JID, "six@") {
			wantIP = "::1"
		}
		if ss.IP != wantIP {
			t.Errorf("%s: IP %q, want %q", ss.JID, ss.IP, wantIP)
		}
	}
	t.Logf("the states: %s", rawBody(t, s.APIURL))
}

// compare returns what differs between sessions and want (IPs aside), or "".
func compare(sessions []Session, want map[string]Session) string {
	if len(sessions) != len(want) {
		return fmt.Sprintf("got %d sessions, want %d", len(sessions), len(want))
	}
	for _, s := range sessions {
		w, ok := want[s.JID]
		if !ok {
			return "unexpected session " + s.JID
		}
		w.JID, w.IP = s.JID, s.IP
		if s != w {
			return fmt.Sprintf("session %s: got %+v, want %+v", s.JID, s, w)
		}
	}
	return ""
}

func waitFor(t *testing.T, c *Client, jid string, ok func(Session) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		sessions, err := c.ConnectedUsersInfo(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range sessions {
			if s.JID == jid && ok(s) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not in the wanted state after 5 s: %+v", jid, sessions)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestIntegrationErrors: what the caller sees when ejabberd refuses, and
// that credentials in the URL are sent as basic auth and never shown.
func TestIntegrationErrors(t *testing.T) {
	s := testserver.StartEjabberd(t)
	if err := s.CreateUsers([]string{"admin"}, "right-pw"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	u, err := url.Parse(s.APIURL)
	if err != nil {
		t.Fatal(err)
	}

	// Right credentials: ejabberd checks them, and api_permissions (by IP)
	// still lets the call through.
	u.User = url.UserPassword("admin@localhost", "right-pw")
	if _, err := (&Client{URL: u.String()}).ConnectedUsersInfo(ctx); err != nil {
		t.Errorf("with the right credentials: %v", err)
	}
	// With the JID's @ unescaped, as an operator may write it.
	raw := "http://admin@localhost:right-pw@" + u.Host + u.Path
	if _, err := (&Client{URL: raw}).ConnectedUsersInfo(ctx); err != nil {
		t.Errorf("with the right credentials, @ unescaped: %v", err)
	}
	// A wrong password gets 401: proof that the credentials are sent.
	raw = "http://admin@localhost:wrong-pw-123@" + u.Host + u.Path
	_, err = (&Client{URL: raw}).ConnectedUsersInfo(ctx)
	var he *HTTPError
	if !errors.As(err, &he) || he.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong password: %v, want a 401 *HTTPError", err)
	}
	if strings.Contains(err.Error(), "wrong-pw-123") || !strings.Contains(err.Error(), "xxxxx@"+u.Host) {
		t.Errorf("wrong password: the error shows the password or not the redacted URL: %v", err)
	}
	t.Logf("401: %v", err)

	// A command api_permissions does not allow: 403.
	c := &Client{URL: s.APIURL}
	_, err = c.call(ctx, "connected_users_number")
	if !errors.As(err, &he) || he.StatusCode != http.StatusForbidden || he.Code != 32 ||
		!strings.Contains(he.Message, "does not have the right") {
		t.Errorf("forbidden command: %v, want 403 with ejabberd's message and code 32", err)
	}
	t.Logf("403: %v", err)

	// A path mod_http_api is not on: 404 and an XHTML page.
	_, err = (&Client{URL: strings.TrimSuffix(s.APIURL, "/api") + "/nothing"}).ConnectedUsersInfo(ctx)
	if !errors.As(err, &he) || he.StatusCode != http.StatusNotFound {
		t.Errorf("wrong path: %v, want 404", err)
	}
	t.Logf("404: %v", err)

	// Nothing listening.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://admin:secret-pw@" + l.Addr().String() + "/api"
	l.Close()
	_, err = (&Client{URL: closed}).ConnectedUsersInfo(ctx)
	if err == nil || !strings.Contains(err.Error(), "connection refused") ||
		!strings.Contains(err.Error(), l.Addr().String()) || strings.Contains(err.Error(), "secret-pw") {
		t.Errorf("closed port: %v, want connection refused naming the address, not the password", err)
	}
	t.Logf("refused: %v", err)
}

// BenchmarkIntegrationConnectedUsersInfo times one call with 0, 100 and
// 1000 sessions online (plain available presence with a status text).
func BenchmarkIntegrationConnectedUsersInfo(b *testing.B) {
	s := testserver.StartEjabberd(b)
	c := &Client{URL: s.APIURL}
	online := 0
	for _, n := range []int{0, 100, 1000} {
		if n > online {
			users := load.Names("u", n)[online:]
			if err := s.CreateUsers(users, password); err != nil {
				b.Fatal(err)
			}
			f, err := load.Login(context.Background(), load.FleetConfig{Addr: s.C2SAddr, Domain: s.Domain,
				Password: password, Users: users})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(f.Close)
			if err := f.Available("benchmark"); err != nil {
				b.Fatal(err)
			}
			online = n
		}
		// Wait until every presence is applied.
		deadline := time.Now().Add(30 * time.Second)
		for {
			sessions, err := c.ConnectedUsersInfo(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			avail := 0
			for _, s := range sessions {
				if s.Show != "" {
					avail++
				}
			}
			if avail == n {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d sessions available after 30 s", avail, n)
			}
			time.Sleep(50 * time.Millisecond)
		}
		b.Run(fmt.Sprintf("%d-sessions", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := c.ConnectedUsersInfo(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
