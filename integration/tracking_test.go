//go:build integration

package integration

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/internal/testserver"
	"github.com/pubpresence/pubpresence/nodes"
	"github.com/pubpresence/pubpresence/presence"
)

// The ways presence reaches the service (docs/tracking.md), beyond the
// bodies eachWay runs in both.

// TestIntegrationPrivilegedBeforeStart: users online before the service
// starts, with empty rosters. Prosody sends their presence after the
// handshake, with <delay/> stamps that become since; ejabberd sends none:
// with its HTTP API the service learns them; without it, they are listed
// but unknown (counted, never published with an invented show), except a
// user with the component in the roster, who answers the probe.
func TestIntegrationPrivilegedBeforeStart(t *testing.T) {
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) {
			srv := s.start(t, testserver.WithPrivilege(), testserver.WithHost("other.localhost"))
			createUsers(t, srv, "alice", "bob", "carol")
			// A user of a host the service does not serve: Prosody's burst
			// after the handshake has her too; she is ignored.
			if err := srv.CreateUsersOn("other.localhost", []string{"olga"}, password); err != nil {
				t.Fatal(err)
			}
			o := dialAt(t, srv.C2SAddr, "olga@other.localhost", "x")
			if err := o.Presence("", "olga on other.localhost", 0); err != nil {
				t.Fatal(err)
			}
			a := dial(t, srv, "alice", "home")
			if err := a.Presence("away", "lunch break", 5); err != nil {
				t.Fatal(err)
			}
			b := dial(t, srv, "bob", "phone")
			if err := b.Presence("xa", "", -1); err != nil {
				t.Fatal(err)
			}
			dial(t, srv, "carol", "quiet")      // no presence: never published
			time.Sleep(1100 * time.Millisecond) // the stamps have whole seconds
			started := time.Now().UTC()
			svc := startService(t, srv)
			waitUntil(t, "readyz", func() bool { return svc.Ready() == http.StatusOK })
			want := map[string]conn{
				"alice@localhost/home": {show: presence.Away, text: "lunch break", prio: 5, ip: "127.0.0.1"},
				"bob@localhost/phone":  {show: presence.XA, prio: -1, ip: "127.0.0.1"},
			}
			w := watcher(t, srv)
			waitView(t, w, want)
			if srv.Kind == testserver.Prosody {
				for _, c := range actualItems(t, dial(t, srv, reader, "check"), srv) {
					if !c.Since.Before(started) {
						t.Errorf("%s: since %v, want the <delay/> stamp, before the service started (%v)", c.JID, c.Since, started)
					}
				}
			}
			if n := svc.Metric(t, "pubpresence_sessions_unknown"); n != 0 {
				t.Errorf("sessions unknown = %v, want 0", n)
			}
			if srv.Kind != testserver.Ejabberd {
				return
			}

			// Without the HTTP API: listed, unknown, not published; the
			// user with a roster subscription answers the probe.
			if err := b.ApproveAndSubscribe(srv.Component); err != nil {
				t.Fatal(err)
			}
			if err := b.Presence("dnd", "subscribed", 1); err != nil {
				t.Fatal(err)
			}
			waitView(t, w, map[string]conn{
				"alice@localhost/home": want["alice@localhost/home"],
				"bob@localhost/phone":  {show: presence.DND, text: "subscribed", prio: 1, ip: "127.0.0.1"},
			})
			svc.Stop()
			blind := startService(t, srv, func(o *svcOptions) { o.apiURL = "" })
			waitUntil(t, "readyz without the API", func() bool { return blind.Ready() == http.StatusOK })
			waitView(t, w, map[string]conn{"bob@localhost/phone": {show: presence.DND, text: "subscribed", prio: 1, ip: "127.0.0.1"}})
			// alice, carol and the watcher's session: ejabberd's session
			// list cannot tell a session that sent no presence from one
			// whose presence the service never heard.
			waitUntil(t, "alice, carol and the watcher counted unknown", func() bool { return blind.Metric(t, "pubpresence_sessions_unknown") == 3 })
			if !blind.Logged("sessions online whose presence the server never told") {
				t.Error("the log does not say that some sessions' presence is unknown")
			}
			// Her next change makes her known.
			if err := a.Presence("chat", "back", 5); err != nil {
				t.Fatal(err)
			}
			waitView(t, w, map[string]conn{
				"alice@localhost/home": {show: presence.Chat, text: "back", prio: 5, ip: "127.0.0.1"},
				"bob@localhost/phone":  {show: presence.DND, text: "subscribed", prio: 1, ip: "127.0.0.1"},
			})
		})
	}
}

// TestIntegrationPrivilegeAndRoster: a user who has the component in the
// roster while the server also grants privileged presence: both servers
// send every presence twice; each real change is one live event.
func TestIntegrationPrivilegeAndRoster(t *testing.T) {
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) {
			srv := s.start(t, testserver.WithPrivilege())
			createUsers(t, srv, "frank")
			svc := startService(t, srv)
			waitUntil(t, "readyz", func() bool { return svc.Ready() == http.StatusOK })
			lc := dial(t, srv, reader, "live")
			live := events(t, lc)
			subscribe(t, lc, srv, testNodes.Live)
			f := dial(t, srv, "frank", "pc")
			if err := f.ApproveAndSubscribe(srv.Component); err != nil {
				t.Fatal(err)
			}
			steps := []struct {
				show presence.Show
				do   func() error
			}{
				{presence.Online, func() error { return f.Presence("", "", 0) }},
				{presence.Away, func() error { return f.Presence("away", "dup test", 1) }},
				{presence.DND, func() error { return f.Presence("dnd", "", 1) }},
				{presence.Offline, f.Close},
			}
			for _, st := range steps {
				if err := st.do(); err != nil {
					t.Fatal(err)
				}
				e := next(t, live, "frank "+string(st.show), func(e eventItem) bool { return e.Node == testNodes.Live })
				if c := userOf(t, e); c.JID != "frank@localhost/pc" || c.Show != st.show {
					t.Fatalf("live event %s %s, want frank@localhost/pc %s (a duplicate?)", c.JID, c.Show, st.show)
				}
			}
			// Nothing else comes: no second copy of the last change.
			select {
			case e := <-live:
				if e.Node == testNodes.Live {
					t.Errorf("a further live event: %s %s", e.ID, userOf(t, e).Show)
				}
			case <-time.After(2 * time.Second):
			}
			if n := svc.Metric(t, `pubpresence_presence_events_total{type="available"}`); n < 6 {
				t.Logf("available presences received: %v (each change twice expected)", n)
			}
		})
	}
}

// TestIntegrationPrivilegeMisconfigured: Prosody with privileged_entities
// in the Component section grants nothing and says nothing. With tracking
// mode privileged the service says so, in the log with the likely causes
// and on /readyz; in auto mode it tracks the roster way.
func TestIntegrationPrivilegeMisconfigured(t *testing.T) {
	srv := testserver.StartProsody(t, testserver.WithPrivilegeMisconfigured())
	createUsers(t, srv, "alice")
	svc := startService(t, srv, func(o *svcOptions) { o.mode = "privileged" })
	waitUntil(t, "readyz to name the missing grant", func() bool {
		code, body := svc.get("/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "privileged presence not granted")
	})
	if !svc.Logged("privileged_entities") || !svc.Logged("not in the Component section") {
		t.Errorf("the error does not name the likely causes:\n%s", svc.LogTail(20))
	}
	if svc.Logged(`"message":"online"`) {
		t.Error("online without the grant it requires")
	}
	svc.Stop()

	auto := startService(t, srv, func(o *svcOptions) { o.mode = "auto" })
	waitUntil(t, "readyz in auto mode", func() bool { return auto.Ready() == http.StatusOK })
	if !auto.Logged("tracking users who have the component in their roster") {
		t.Errorf("auto mode does not say it tracks the roster way:\n%s", auto.LogTail(20))
	}
	online(t, srv, "alice", "r") // subscribes: the server grants nothing
	waitView(t, watcher(t, srv), map[string]conn{"alice@localhost/r": {show: presence.Online, ip: "127.0.0.1"}})
}

// TestIntegrationExclude: an excluded user is never on live or actual and
// never named in the log, whichever way presence comes, and whether online
// before the start or after.
func TestIntegrationExclude(t *testing.T) {
	eachWay(t, func(t *testing.T, start startFunc) {
		srv := start(t)
		createUsers(t, srv, "secretagent", "bob")
		early := online(t, srv, "secretagent", "early")
		svc := startService(t, srv, func(o *svcOptions) { o.exclude = []string{"SecretAgent@localhost"} })
		waitUntil(t, "readyz", func() bool { return svc.Ready() == http.StatusOK })
		lc := dial(t, srv, reader, "live")
		live := events(t, lc)
		subscribe(t, lc, srv, testNodes.Live)
		online(t, srv, "secretagent", "late")
		if err := early.Presence("away", "hidden", 0); err != nil {
			t.Fatal(err)
		}
		online(t, srv, "bob", "r")
		w := watcher(t, srv)
		waitView(t, w, map[string]conn{"bob@localhost/r": {show: presence.Online, ip: "127.0.0.1"}})
		e := next(t, live, "bob on live", func(e eventItem) bool { return e.Node == testNodes.Live })
		if c := userOf(t, e); c.JID != "bob@localhost/r" {
			t.Errorf("first live event is %s, want bob's", c.JID)
		}
		if svc.Logged("secretagent") {
			t.Errorf("the log names the excluded user")
		}
		if n := svc.Metric(t, "pubpresence_excluded_total"); n < 1 {
			t.Errorf("excluded = %v, want at least 1", n)
		}

		// Excluding bob on SIGHUP retracts him at once, with no live event.
		svc.Rewrite(`exclude = ["SecretAgent@localhost"]`, `exclude = ["SecretAgent@localhost", "*@localhost"]`)
		svc.Hup()
		waitUntil(t, "bob retracted", func() bool { return len(actualItems(t, lc, srv)) == 0 })
		select {
		case e := <-live:
			if e.Node == testNodes.Live {
				t.Errorf("a live event for an excluded user: %s %s", e.ID, userOf(t, e).Show)
			}
		case <-time.After(time.Second):
		}
	})
}

// TestIntegrationIdle: XEP-0319 <idle since/> in a presence becomes the
// item's idle, on live and actual; a presence without it clears it.
func TestIntegrationIdle(t *testing.T) {
	eachServer(t, func(t *testing.T, start startFunc) {
		srv := start(t, testserver.WithPrivilege())
		createUsers(t, srv, "ida")
		svc := startService(t, srv)
		waitUntil(t, "readyz", func() bool { return svc.Ready() == http.StatusOK })
		lc := dial(t, srv, reader, "live")
		live := events(t, lc)
		subscribe(t, lc, srv, testNodes.Live)
		cl := dial(t, srv, "ida", "desk")
		if err := cl.Send("<presence><show>away</show><idle xmlns='urn:xmpp:idle:1' since='2026-11-21T08:55:00.123+01:00'/></presence>"); err != nil {
			t.Fatal(err)
		}
		e := next(t, live, "ida idle", func(e eventItem) bool { return e.Node == testNodes.Live })
		want := time.Date(2026, 11, 21, 7, 55, 0, 0, time.UTC)
		if c := userOf(t, e); !c.Idle.Equal(want) || c.Show != presence.Away {
			t.Errorf("live: %s idle %v, want away idle %v", c.Show, c.Idle, want)
		}
		if !strings.Contains(string(e.Payload), "idle='2026-11-21T07:55:00Z'") {
			t.Errorf("live payload %s lacks idle='2026-11-21T07:55:00Z'", e.Payload)
		}
		waitUntil(t, "idle on actual", func() bool {
			items := actualItems(t, lc, srv)
			return len(items) == 1 && items[0].Idle.Equal(want)
		})
		if err := cl.Presence("", "", 0); err != nil {
			t.Fatal(err)
		}
		e = next(t, live, "ida back", func(e eventItem) bool { return e.Node == testNodes.Live })
		if c := userOf(t, e); !c.Idle.IsZero() || c.Show != presence.Online {
			t.Errorf("live: %s idle %v, want online without idle", c.Show, c.Idle)
		}
		_ = nodes.NSUser
	})
}

// TestIntegrationGrantLost: ejabberd drops the privilege of every
// connection with the component's name when any of them closes — here a
// bare connection that authenticates and leaves at once, as a half-open
// connection of an earlier stream would when ejabberd drops it. Either the
// service sees the grant meant for that connection, or its sessions poll
// finds presence the push never brought; either way it connects again to
// be granted, and the truth holds.
func TestIntegrationGrantLost(t *testing.T) {
	srv := testserver.StartEjabberd(t, testserver.WithPrivilege())
	createUsers(t, srv, "alice")
	svc := startService(t, srv)
	waitUntil(t, "readyz", func() bool { return svc.Ready() == http.StatusOK })
	a := online(t, srv, "alice", "r")
	w := watcher(t, srv)
	waitView(t, w, map[string]conn{"alice@localhost/r": {show: presence.Online, ip: "127.0.0.1"}})

	_ = dialComponent(t, srv).Close()
	closed := time.Now()
	shows := []string{"away", "dnd", "xa", "chat"}
	for i := 0; !svc.Logged("reconnecting to be granted privileged presence again"); i++ {
		if time.Since(closed) > wait {
			t.Fatalf("the lost grant went unnoticed:\n%s", svc.LogTail(30))
		}
		if err := a.Presence(shows[i%len(shows)], "", 0); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	noticed := time.Since(closed)
	waitUntil(t, "readyz after the regrant", func() bool { return svc.Ready() == http.StatusOK })
	t.Logf("ejabberd: the lost grant noticed %v after the other connection closed (poll 2s), online again after %v",
		noticed.Round(time.Millisecond), time.Since(closed).Round(time.Millisecond))
	// The push is back: a change is on live before the next poll could
	// bring it.
	lc := dial(t, srv, reader, "live")
	live := events(t, lc)
	subscribe(t, lc, srv, testNodes.Live)
	time.Sleep(500 * time.Millisecond)
	changed := time.Now()
	if err := a.Presence("away", "pushed again", 3); err != nil {
		t.Fatal(err)
	}
	e := next(t, live, "the change on live", func(e eventItem) bool { return e.Node == testNodes.Live })
	if c := userOf(t, e); c.Text != "pushed again" {
		t.Errorf("live event %s %q", c.Show, c.Text)
	}
	if took := time.Since(changed); took > time.Second {
		t.Logf("the change took %v to reach live: by the poll, not the push?", took.Round(time.Millisecond))
	}
	waitView(t, w, map[string]conn{"alice@localhost/r": {show: presence.Away, text: "pushed again", prio: 3, ip: "127.0.0.1"}})
}
