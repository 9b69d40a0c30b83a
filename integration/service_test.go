//go:build integration

package integration

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/internal/c2s"
	"github.com/pubpresence/pubpresence/internal/testserver"
	"github.com/pubpresence/pubpresence/nodes"
	"github.com/pubpresence/pubpresence/presence"
	"github.com/pubpresence/pubpresence/watch"
)

// startFunc starts a private server of one kind for a test.
type startFunc = func(testing.TB, ...testserver.Option) *testserver.Server

// servers are the XMPP servers every test body runs against.
var servers = []struct {
	name  string
	start startFunc
}{
	{"prosody", testserver.StartProsody},
	{"ejabberd", testserver.StartEjabberd},
}

// eachServer runs body once per server, each in its own subtest.
func eachServer(t *testing.T, body func(t *testing.T, start startFunc)) {
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) { body(t, s.start) })
	}
}

// eachWay runs body once per server and way presence reaches the service
// (docs/tracking.md): "roster" (users subscribe to the component: online
// subscribes them) and "privileged" (the server grants privileged
// presence, XEP-0356; rosters stay empty; on ejabberd with its HTTP API).
func eachWay(t *testing.T, body func(t *testing.T, start startFunc)) {
	for _, s := range servers {
		t.Run(s.name+"/roster", func(t *testing.T) { body(t, s.start) })
		t.Run(s.name+"/privileged", func(t *testing.T) { body(t, privileged(s.start)) })
	}
}

// privileged wraps start so that the server grants privileged presence.
func privileged(start startFunc) startFunc {
	return func(tb testing.TB, opts ...testserver.Option) *testserver.Server {
		return start(tb, append(opts, testserver.WithPrivilege())...)
	}
}

// eventItem is one item of a pubsub event notification.
type eventItem struct {
	Node    string
	ID      string
	Retract bool
	Purge   bool // the node was purged (no ID)
	Payload []byte
}

// events reads pubsub notifications from cl's stanzas into a channel.
func events(t testing.TB, cl *c2s.Client) <-chan eventItem {
	ch := make(chan eventItem, 4096)
	go func() {
		for st := range cl.Stanzas() {
			if st.Name != "message" {
				continue
			}
			var m struct {
				Items []struct {
					Node  string `xml:"node,attr"`
					Items []struct {
						ID    string `xml:"id,attr"`
						Inner []byte `xml:",innerxml"`
					} `xml:"item"`
					Retracts []struct {
						ID string `xml:"id,attr"`
					} `xml:"retract"`
				} `xml:"event>items"`
				Purges []struct {
					Node string `xml:"node,attr"`
				} `xml:"event>purge"`
			}
			if err := xml.Unmarshal(append(append([]byte("<m>"), st.Inner...), "</m>"...), &m); err != nil {
				continue
			}
			for _, its := range m.Items {
				for _, it := range its.Items {
					ch <- eventItem{Node: its.Node, ID: it.ID, Payload: bytes.TrimSpace(it.Inner)}
				}
				for _, r := range its.Retracts {
					ch <- eventItem{Node: its.Node, ID: r.ID, Retract: true}
				}
			}
			for _, p := range m.Purges {
				ch <- eventItem{Node: p.Node, Purge: true}
			}
		}
		close(ch)
	}()
	return ch
}

// next waits for the next event that pred accepts, skipping others.
func next(t testing.TB, ch <-chan eventItem, what string, pred func(eventItem) bool) eventItem {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				t.Fatalf("stream ended waiting for %s", what)
			}
			if pred(e) {
				return e
			}
		case <-timeout:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func statusOf(e eventItem) string {
	s, _ := nodes.ParseStatus(e.Payload)
	return s
}

func userOf(t testing.TB, e eventItem) presence.Conn {
	t.Helper()
	c, err := nodes.ParseUser(e.Payload)
	if err != nil {
		t.Fatalf("event %s on %s: %v", e.ID, e.Node, err)
	}
	return c
}

func subscribe(t testing.TB, cl *c2s.Client, srv *testserver.Server, node string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := cl.Subscribe(ctx, srv.Pubsub, node); err != nil {
		t.Fatalf("subscribe %s: %v", node, err)
	}
}

// TestIntegrationLifecycle: a watcher following the protocol of docs/protocol.md sees
// init then online, and presence/actual equals the logged-in connections.
func TestIntegrationLifecycle(t *testing.T) {
	eachWay(t, func(t *testing.T, start startFunc) {
		srv := start(t)
		createUsers(t, srv, "alice", "bob")
		svc := startService(t, srv)
		waitUntil(t, "readyz", func() bool { return svc.Ready() == http.StatusOK })

		online(t, srv, "alice", "laptop")
		online(t, srv, "alice", "phone")
		online(t, srv, "bob", "desk")
		want := map[string]conn{
			"alice@localhost/laptop": {show: presence.Online, ip: "127.0.0.1"},
			"alice@localhost/phone":  {show: presence.Online, ip: "127.0.0.1"},
			"bob@localhost/desk":     {show: presence.Online, ip: "127.0.0.1"},
		}
		waitView(t, watcher(t, srv), want)

		// A restart of the service: a subscriber of the status node sees
		// init, then online; when online is published, actual is already true.
		svc.Stop()
		st := dial(t, srv, reader, "status")
		evs := events(t, st)
		subscribe(t, st, srv, testNodes.Status)
		// A clean stop says the nodes are no longer kept.
		if e := next(t, evs, "last status item on subscribe", func(e eventItem) bool { return e.Node == testNodes.Status }); statusOf(e) != "init" {
			t.Errorf("after a clean stop the status node says %q, want init", statusOf(e))
		}
		svc.Start()
		next(t, evs, "init", func(e eventItem) bool { return e.Node == testNodes.Status && statusOf(e) == "init" })
		next(t, evs, "online", func(e eventItem) bool { return e.Node == testNodes.Status && statusOf(e) == "online" })
		if got := actualItems(t, st, srv); !matches(got, want) {
			t.Fatalf("actual at online:\n%s", describe(got))
		}
		waitView(t, watcher(t, srv), want)
	})
}

// TestIntegrationPresenceChanges: login, changes, a second resource, clean
// logout and an abrupt close, as seen on live and on actual.
func TestIntegrationPresenceChanges(t *testing.T) {
	eachWay(t, func(t *testing.T, start startFunc) {
		srv := start(t)
		createUsers(t, srv, "alice")
		svc := startService(t, srv)
		waitUntil(t, "readyz", func() bool { return svc.Ready() == http.StatusOK })
		w := watcher(t, srv)
		lc := dial(t, srv, reader, "live")
		live := events(t, lc)
		subscribe(t, lc, srv, testNodes.Live)
		isLive := func(jid string, show presence.Show) func(eventItem) bool {
			return func(e eventItem) bool {
				if e.Node != testNodes.Live || e.Retract {
					return false
				}
				c, err := nodes.ParseUser(e.Payload)
				return err == nil && c.JID == jid && c.Show == show
			}
		}

		login := time.Now()
		laptop := online(t, srv, "alice", "laptop")
		e := next(t, live, "alice/laptop online on live", isLive("alice@localhost/laptop", presence.Online))
		t.Logf("WAY | %s | login | online on live %v after the login began", t.Name(), time.Since(login).Round(time.Millisecond))
		if c := userOf(t, e); c.IP != "127.0.0.1" || c.Since.IsZero() {
			t.Errorf("live event: ip %q since %v, want 127.0.0.1 and a time", c.IP, c.Since)
		}
		waitView(t, w, map[string]conn{"alice@localhost/laptop": {show: presence.Online, ip: "127.0.0.1"}})

		if err := laptop.Presence("away", "At lunch", 5); err != nil {
			t.Fatal(err)
		}
		next(t, live, "away on live", isLive("alice@localhost/laptop", presence.Away))
		waitView(t, w, map[string]conn{"alice@localhost/laptop": {show: presence.Away, text: "At lunch", prio: 5, ip: "127.0.0.1"}})

		phone := dial(t, srv, "alice", "phone")
		if err := phone.Presence("dnd", "", -1); err != nil {
			t.Fatal(err)
		}
		two := map[string]conn{
			"alice@localhost/laptop": {show: presence.Away, text: "At lunch", prio: 5, ip: "127.0.0.1"},
			"alice@localhost/phone":  {show: presence.DND, prio: -1, ip: "127.0.0.1"},
		}
		waitView(t, w, two)
		// actual follows live: its publish goes out right after the live one.
		waitUntil(t, "phone on actual", func() bool { return matches(actualItems(t, lc, srv), two) })

		// Clean logout.
		_ = phone.Close()
		next(t, live, "phone offline on live", isLive("alice@localhost/phone", presence.Offline))
		one := map[string]conn{"alice@localhost/laptop": two["alice@localhost/laptop"]}
		waitView(t, w, one)
		waitUntil(t, "phone retracted from actual", func() bool { return matches(actualItems(t, lc, srv), one) })

		// Abrupt TCP close: with privileged presence, ejabberd reports
		// nothing and the sessions poll (2 s here) finds it gone.
		aborted := time.Now()
		_ = laptop.Abort()
		next(t, live, "laptop offline on live", isLive("alice@localhost/laptop", presence.Offline))
		offline := time.Since(aborted)
		waitView(t, w, map[string]conn{})
		waitUntil(t, "laptop retracted from actual", func() bool { return len(actualItems(t, lc, srv)) == 0 })
		t.Logf("WAY | %s | abrupt close | offline on live after %v, actual empty after %v", t.Name(),
			offline.Round(time.Millisecond), time.Since(aborted).Round(time.Millisecond))
	})
}

// TestIntegrationServiceRestart: the service is killed, users come and go
// meanwhile, and after a restart the stale items are gone and the new ones
// are there before online is published.
func TestIntegrationServiceRestart(t *testing.T) {
	eachWay(t, func(t *testing.T, start startFunc) {
		srv := start(t)
		names := users("u", 8)
		createUsers(t, srv, names...)
		svc := startService(t, srv)
		waitUntil(t, "readyz", func() bool { return svc.Ready() == http.StatusOK })
		clients := map[string]*c2s.Client{}
		want := map[string]conn{}
		for _, n := range names {
			clients[n] = online(t, srv, n, "r1")
			want[n+"@localhost/r1"] = conn{show: presence.Online, ip: "127.0.0.1"}
		}
		w := watcher(t, srv)
		waitView(t, w, want)

		svc.Kill()
		for _, n := range names[:3] { // leave
			if n == names[0] {
				_ = clients[n].Close()
			} else {
				_ = clients[n].Abort()
			}
			delete(want, n+"@localhost/r1")
		}
		extra := dial(t, srv, names[3], "r2") // a new connection
		if err := extra.Presence("chat", "new", 2); err != nil {
			t.Fatal(err)
		}
		want[names[3]+"@localhost/r2"] = conn{show: presence.Chat, text: "new", prio: 2, ip: "127.0.0.1"}
		if err := clients[names[4]].Presence("xa", "", 0); err != nil { // a change
			t.Fatal(err)
		}
		want[names[4]+"@localhost/r1"] = conn{show: presence.XA, ip: "127.0.0.1"}

		st := dial(t, srv, reader, "status")
		evs := events(t, st)
		subscribe(t, st, srv, testNodes.Status)
		subscribe(t, st, srv, testNodes.Live)
		svc.Start()
		next(t, evs, "init", func(e eventItem) bool { return e.Node == testNodes.Status && statusOf(e) == "init" })
		next(t, evs, "online", func(e eventItem) bool { return e.Node == testNodes.Status && statusOf(e) == "online" })
		if got := actualItems(t, st, srv); !matches(got, want) {
			t.Fatalf("actual when online was published:\n%swant %v", describe(got), want)
		}
		// The live events of the start go out after online, in order, then
		// that of a change made now: only the connections that differ from
		// what the node held have one (a new one, a changed one), not those
		// found as the node held them.
		last := names[7] + "@localhost/r1"
		if err := clients[names[7]].Presence("away", "after the restart", 0); err != nil {
			t.Fatal(err)
		}
		want[last] = conn{show: presence.Away, text: "after the restart", ip: "127.0.0.1"}
		var live []string
		next(t, evs, "the live event of the change after online", func(e eventItem) bool {
			if e.Node != testNodes.Live {
				return false
			}
			if e.ID == last && userOf(t, e).Text == "after the restart" {
				return true
			}
			live = append(live, e.ID+" "+string(userOf(t, e).Show))
			return false
		})
		slices.Sort(live)
		if wantLive := []string{names[3] + "@localhost/r2 chat", names[4] + "@localhost/r1 xa"}; !slices.Equal(live, wantLive) {
			t.Errorf("live events of the restart: %q, want %q", live, wantLive)
		}
		waitView(t, w, want)
	})
}

// TestIntegrationServerRestart: the server restarts under the running
// service; the service reconnects and converges.
func TestIntegrationServerRestart(t *testing.T) {
	eachWay(t, func(t *testing.T, start startFunc) {
		srv := start(t)
		createUsers(t, srv, "alice", "bob", "carol")
		svc := startService(t, srv)
		waitUntil(t, "readyz", func() bool { return svc.Ready() == http.StatusOK })
		online(t, srv, "alice", "r")
		online(t, srv, "bob", "r")
		w := watcher(t, srv)
		waitView(t, w, map[string]conn{
			"alice@localhost/r": {show: presence.Online, ip: "127.0.0.1"},
			"bob@localhost/r":   {show: presence.Online, ip: "127.0.0.1"},
		})

		if err := srv.Restart(); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "a reconnect", func() bool {
			return svc.Metric(t, "pubpresence_reconnects_total") >= 1
		})
		// bob comes back while the component may still be away: his
		// presence bounces, and the resync's probe must find him.
		b := dial(t, srv, "bob", "r2")
		if err := b.Presence("away", "back", 0); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "readyz after reconnect", func() bool { return svc.Ready() == http.StatusOK })
		online(t, srv, "carol", "r")
		w2 := watcher(t, srv)
		want := map[string]conn{
			"carol@localhost/r": {show: presence.Online, ip: "127.0.0.1"},
			"bob@localhost/r2":  {show: presence.Away, text: "back", ip: "127.0.0.1"},
		}
		waitView(t, w2, want)
		if got := actualItems(t, dial(t, srv, reader, "check"), srv); !matches(got, want) {
			t.Fatalf("actual after server restart:\n%s", describe(got))
		}
	})
}

// TestIntegrationMalformedPresence: a priority out of range, an unknown
// show, a 64 KiB status and children in a foreign namespace are counted and
// repaired, or refused by the server before they reach us (ejabberd refuses
// what its codec cannot read); the service keeps serving on the same stream.
func TestIntegrationMalformedPresence(t *testing.T) {
	eachWay(t, func(t *testing.T, start startFunc) {
		srv := start(t)
		createUsers(t, srv, "mallory", "alice")
		svc := startService(t, srv)
		waitUntil(t, "readyz", func() bool { return svc.Ready() == http.StatusOK })
		w := watcher(t, srv)
		m := online(t, srv, "mallory", "x")
		waitView(t, w, map[string]conn{"mallory@localhost/x": {show: presence.Online}})

		huge := strings.Repeat("x", 64<<10)
		cases := []struct {
			name, stanza string
			want         conn
			reason       string // counted as malformed; "" for none
			mustPass     bool   // valid XMPP: every server passes it on
		}{
			{"priority out of range", "<presence><priority>999</priority><status>c1</status></presence>",
				conn{show: presence.Online, text: "c1", prio: 127}, "priority", false},
			{"unknown show", "<presence><show>bogus</show><status>c2</status></presence>",
				conn{show: presence.Online, text: "c2"}, "show", false},
			{"huge status", "<presence><show>away</show><status>" + huge + "</status></presence>",
				conn{show: presence.Away, text: huge[:presence.MaxText]}, "text_too_long", true},
			{"foreign namespace", "<presence><status>c4</status><x xmlns='urn:example'><status>nested</status><priority>9</priority></x></presence>",
				conn{show: presence.Online, text: "c4"}, "", true},
		}
		passed := 0
		for _, c := range cases {
			if err := m.Send(c.stanza); err != nil {
				t.Fatal(err)
			}
			if refusedBy(t, m, w, map[string]conn{"mallory@localhost/x": c.want}) {
				if c.mustPass || srv.Kind == testserver.Prosody {
					t.Errorf("%s: %s refused it", c.name, srv.Kind)
				}
				t.Logf("%s: refused by %s before it reached the service", c.name, srv.Kind)
				continue
			}
			passed++
			if c.reason != "" {
				if v := svc.Metric(t, fmt.Sprintf("pubpresence_malformed_total{reason=%q}", c.reason)); v < 1 {
					t.Errorf("%s: malformed %s counted %v times, want ≥ 1", c.name, c.reason, v)
				}
			}
		}
		t.Logf("%s passed on %d of %d malformed presences", srv.Kind, passed, len(cases))

		// Deeply nested foreign payload: kept as data, never a reason to stop.
		deep := strings.Repeat("<x xmlns='urn:example'>", 500) + strings.Repeat("</x>", 500)
		if err := m.Send("<presence><status>deep</status>" + deep + "</presence>"); err != nil {
			t.Fatal(err)
		}
		if refusedBy(t, m, w, map[string]conn{"mallory@localhost/x": {show: presence.Online, text: "deep"}}) {
			t.Logf("deep nesting: refused by %s before it reached the service", srv.Kind)
		}
		// A flood from one user: every event is taken, nothing is dropped,
		// and the last one wins.
		before := svc.Metric(t, `pubpresence_presence_events_total{type="available"}`)
		const flood = 500
		for i := range flood {
			if err := m.Presence("", fmt.Sprintf("flood %d", i), 0); err != nil {
				t.Fatal(err)
			}
		}
		waitView(t, w, map[string]conn{"mallory@localhost/x": {show: presence.Online, text: fmt.Sprintf("flood %d", flood-1)}})
		got := svc.Metric(t, `pubpresence_presence_events_total{type="available"}`) - before
		t.Logf("%s: a flood of %d presences from one user: %v events counted, %v live events dropped",
			srv.Kind, flood, got, svc.Metric(t, "pubpresence_live_dropped_total"))
		if got < flood {
			t.Errorf("%v of %d flooded presences counted", got, flood)
		}
		// Still serving others, on the same stream.
		online(t, srv, "alice", "r")
		waitView(t, w, map[string]conn{
			"mallory@localhost/x": {show: presence.Online, text: fmt.Sprintf("flood %d", flood-1)},
			"alice@localhost/r":   {show: presence.Online, ip: "127.0.0.1"},
		})
		if v := svc.Metric(t, "pubpresence_reconnects_total"); v != 0 {
			t.Errorf("%v reconnects: bad input must not end the stream", v)
		}
	})
}

// refusedBy waits until the watcher shows want (false), or cl receives a
// presence error from its server (true): the server refused what cl sent.
func refusedBy(t testing.TB, cl *c2s.Client, f *watch.Follower, want map[string]conn) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	refused := make(chan struct{})
	go func() {
		for {
			select {
			case st, ok := <-cl.Stanzas():
				if !ok {
					return
				}
				if st.Name == "presence" && st.Type == "error" {
					close(refused)
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	shown := make(chan error, 1)
	go func() {
		_, _, err := f.WaitFor(ctx, func(st string, conns []presence.Conn) bool {
			return st == "online" && matches(conns, want)
		})
		shown <- err
	}()
	select {
	case <-refused:
		cancel()
		<-shown
		return true
	case err := <-shown:
		cancel()
		if err != nil {
			t.Fatalf("neither shown nor refused: %v; want %v", err, want)
		}
		return false
	}
}
