//go:build integration

package integration

import (
	"context"
	"encoding/xml"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/internal/c2s"
	"github.com/pubpresence/pubpresence/internal/testserver"
	"github.com/pubpresence/pubpresence/presence"
	"github.com/pubpresence/pubpresence/pubsub"
)

// componentPresence waits for a presence from the component of type typ ("" for
// available) and returns its show.
func componentPresence(t testing.TB, cl *c2s.Client, from, typ string) (show, status string) {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case st, ok := <-cl.Stanzas():
			if !ok {
				t.Fatalf("stream ended waiting for presence %q from %s", typ, from)
			}
			if st.Name == "presence" && st.Type == typ && strings.SplitN(st.From, "/", 2)[0] == from {
				show, status, _ := st.PresenceDetails()
				return show, status
			}
		case <-timeout:
			t.Fatalf("timed out waiting for presence %q from %s", typ, from)
		}
	}
}

// refused waits until cl learns that from refused its subscription request:
// an unsubscribed presence (Prosody), or only the roster push that clears
// the pending request (ejabberd 23.01 applies the unsubscribed to the
// roster but does not deliver the stanza, unlike RFC 6121 §3.2.3).
func refused(t testing.TB, cl *c2s.Client, from string) {
	t.Helper()
	timeout := time.After(wait)
	asked := false
	for {
		select {
		case st, ok := <-cl.Stanzas():
			if !ok {
				t.Fatalf("stream ended waiting for %s to refuse the subscription", from)
			}
			if st.Name == "presence" && st.Type == "unsubscribed" && strings.SplitN(st.From, "/", 2)[0] == from {
				return
			}
			if st.Name != "iq" || st.Type != "set" {
				continue
			}
			var push struct {
				Items []struct {
					JID          string `xml:"jid,attr"`
					Subscription string `xml:"subscription,attr"`
					Ask          string `xml:"ask,attr"`
				} `xml:"query>item"`
			}
			if xml.Unmarshal(st.Raw, &push) != nil {
				continue
			}
			for _, it := range push.Items {
				if it.JID != from {
					continue
				}
				if it.Ask == "subscribe" {
					asked = true
				} else if asked && (it.Subscription == "none" || it.Subscription == "") {
					return
				}
			}
		case <-timeout:
			t.Fatalf("timed out waiting for %s to refuse the subscription", from)
		}
	}
}

// TestIntegrationWrongSecret: a wrong secret is logged clearly and retried
// with backoff; the process does not exit and is not ready.
func TestIntegrationWrongSecret(t *testing.T) {
	eachServer(t, func(t *testing.T, start startFunc) {
		srv := start(t)
		svc := startService(t, srv, func(o *svcOptions) { o.secret = "wrong" })
		waitUntil(t, "http up", func() bool { return svc.Ready() != 0 })
		waitUntil(t, "two refused attempts", func() bool {
			return svc.Metric(t, "pubpresence_reconnects_total") >= 2
		})
		if !svc.Logged("refused the component secret") {
			t.Errorf("no clear log line about the secret:\n%s", svc.LogTail(10))
		}
		if svc.Logged("wrong") {
			t.Errorf("the secret appears in the log")
		}
		if !svc.Running() || svc.Ready() != http.StatusServiceUnavailable {
			t.Errorf("running %v, readyz %d: want running and 503", svc.Running(), svc.Ready())
		}
	})
}

// TestIntegrationNoAdminRights: without admin rights the service stays in
// init with a clear error, answers probes with dnd, keeps its stream, and
// does not crash.
func TestIntegrationNoAdminRights(t *testing.T) {
	eachServer(t, func(t *testing.T, start startFunc) {
		srv := start(t, testserver.WithoutAdmin())
		createUsers(t, srv, "alice")
		svc := startService(t, srv)
		waitUntil(t, "the error logged", func() bool { return svc.Logged("initial sync failed") })
		if !svc.Logged("admin rights") {
			t.Errorf("no hint about admin rights:\n%s", svc.LogTail(10))
		}
		cl := dial(t, srv, "alice", "r")
		if err := cl.Send("<presence type='probe' to='" + srv.Component + "'/>"); err != nil {
			t.Fatal(err)
		}
		if show, _ := componentPresence(t, cl, srv.Component, ""); show != "dnd" {
			t.Errorf("probe answered with show %q while in init, want dnd", show)
		}
		if code := svc.Ready(); code != http.StatusServiceUnavailable {
			t.Errorf("readyz %d, want 503", code)
		}
		if !svc.Running() || svc.Metric(t, "pubpresence_connected") != 1 || svc.Metric(t, "pubpresence_reconnects_total") != 0 {
			t.Errorf("want one stream kept up and the process running")
		}
	})
}

// TestIntegrationProbeAndUnsubscribe: probes are answered with plain
// available once online; a user who cancels the component's subscription
// (unsubscribed) or their own (unsubscribe) is no longer tracked and their
// items are retracted. (Prosody drops the component's answer in kind, as
// RFC 6121 says of an unsubscribed for a subscription that is gone.)
func TestIntegrationProbeAndUnsubscribe(t *testing.T) {
	eachServer(t, func(t *testing.T, start startFunc) {
		srv := start(t)
		createUsers(t, srv, "alice", "bob", "carol")
		svc := startService(t, srv)
		waitUntil(t, "readyz", func() bool { return svc.Ready() == http.StatusOK })
		w := watcher(t, srv)
		a := online(t, srv, "alice", "r1")
		b := online(t, srv, "bob", "r1")
		online(t, srv, "carol", "r1")
		want := map[string]conn{
			"alice@localhost/r1": {show: presence.Online, ip: "127.0.0.1"},
			"bob@localhost/r1":   {show: presence.Online, ip: "127.0.0.1"},
			"carol@localhost/r1": {show: presence.Online, ip: "127.0.0.1"},
		}
		waitView(t, w, want)
		if err := a.Send("<presence type='probe' to='" + srv.Component + "'/>"); err != nil {
			t.Fatal(err)
		}
		if show, _ := componentPresence(t, a, srv.Component, ""); show != "" {
			t.Errorf("probe answered with show %q when online, want plain available", show)
		}
		if err := a.Send("<presence type='unsubscribed' to='" + srv.Component + "'/>"); err != nil {
			t.Fatal(err)
		}
		delete(want, "alice@localhost/r1")
		waitView(t, w, want)
		if err := b.Send("<presence type='unsubscribe' to='" + srv.Component + "'/>"); err != nil {
			t.Fatal(err)
		}
		delete(want, "bob@localhost/r1")
		waitView(t, w, want)
		if v := svc.Metric(t, `pubpresence_presence_events_total{type="unsubscribed"}`); v != 1 {
			t.Errorf("unsubscribed counted %v times, want 1", v)
		}
	})
}

// TestIntegrationAccessModel: with the default whitelist only readers may
// read the nodes; with open anyone may.
func TestIntegrationAccessModel(t *testing.T) {
	eachServer(t, func(t *testing.T, start startFunc) {
		for _, model := range []string{"whitelist", "open"} {
			t.Run(model, func(t *testing.T) {
				srv := start(t)
				createUsers(t, srv, "eve")
				if model == "whitelist" {
					// eve was a reader once: the service must take her
					// membership away, since she is not one now.
					formerMember(t, srv, "eve@"+srv.Domain, testNodes.Actual, testNodes.Live)
				}
				svc := startService(t, srv, func(o *svcOptions) { o.accessModel = model })
				waitUntil(t, "readyz", func() bool { return svc.Ready() == http.StatusOK })
				eve := dial(t, srv, "eve", "r")
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				defer cancel()
				_, fetchErr := eve.Items(ctx, srv.Pubsub, testNodes.Actual)
				subErr := eve.Subscribe(ctx, srv.Pubsub, testNodes.Live)
				if _, err := dial(t, srv, reader, "r").Items(ctx, srv.Pubsub, testNodes.Actual); err != nil {
					t.Errorf("the reader cannot fetch: %v", err)
				}
				if model == "whitelist" {
					if fetchErr == nil || subErr == nil {
						t.Errorf("a non-reader could read a whitelist node: fetch %v, subscribe %v", fetchErr, subErr)
					}
					return
				}
				if fetchErr != nil || subErr != nil {
					t.Errorf("open node refused a user: fetch %v, subscribe %v", fetchErr, subErr)
				}
			})
		}
	})
}

// TestIntegrationIPv6: a connection over IPv6 is published with its ::1
// address.
func TestIntegrationIPv6(t *testing.T) {
	eachServer(t, func(t *testing.T, start startFunc) {
		srv := start(t)
		if srv.C2SAddr6 == "" {
			t.Skip("no IPv6 loopback on this machine")
		}
		createUsers(t, srv, "alice")
		svc := startService(t, srv)
		waitUntil(t, "readyz", func() bool { return svc.Ready() == http.StatusOK })
		w := watcher(t, srv)
		cl := dialAt(t, srv.C2SAddr6, "alice@"+srv.Domain, "v6")
		if err := cl.ApproveAndSubscribe(srv.Component); err != nil {
			t.Fatal(err)
		}
		if err := cl.Presence("", "", 0); err != nil {
			t.Fatal(err)
		}
		waitView(t, w, map[string]conn{"alice@localhost/v6": {show: presence.Online, ip: "::1"}})

		// The same after a restart, from the admin command's answer.
		svc.Stop()
		svc.Start()
		waitUntil(t, "readyz", func() bool { return svc.Ready() == http.StatusOK })
		waitView(t, watcher(t, srv), map[string]conn{"alice@localhost/v6": {show: presence.Online, ip: "::1"}})
	})
}

// TestIntegrationNoIP: with publish_ip = false no user address appears
// anywhere: not in the items of either node, not in the log (at debug).
// The user connects over IPv6, so its address (::1) differs from every
// address in the service's own config.
func TestIntegrationNoIP(t *testing.T) {
	eachServer(t, func(t *testing.T, start startFunc) {
		srv := start(t)
		if srv.C2SAddr6 == "" {
			t.Skip("no IPv6 loopback on this machine")
		}
		createUsers(t, srv, "alice")
		svc := startService(t, srv, func(o *svcOptions) { o.noIP = true })
		waitUntil(t, "readyz", func() bool { return svc.Ready() == http.StatusOK })
		rd := dial(t, srv, reader, "live")
		subscribe(t, rd, srv, testNodes.Live)
		evs := events(t, rd)
		cl := dialAt(t, srv.C2SAddr6, "alice@"+srv.Domain, "v6")
		if err := cl.ApproveAndSubscribe(srv.Component); err != nil {
			t.Fatal(err)
		}
		if err := cl.Presence("away", "", 0); err != nil {
			t.Fatal(err)
		}
		e := next(t, evs, "alice's live event", func(e eventItem) bool { return e.Node == testNodes.Live })
		// A restart reads the sessions (with their addresses) from the server.
		svc.Stop()
		svc.Start()
		waitUntil(t, "readyz", func() bool { return svc.Ready() == http.StatusOK })
		items := actualItems(t, rd, srv)
		if len(items) != 1 || items[0].IP != "" || strings.Contains(string(e.Payload), "ip=") {
			t.Errorf("an address was published: actual %s, live %s", describe(items), e.Payload)
		}
		if svc.Logged("::1") {
			t.Errorf("the log holds the user's address ::1")
		}
	})
}

// TestIntegrationItemLimit: more connections than the server keeps items
// on the actual node is reported clearly.
func TestIntegrationItemLimit(t *testing.T) {
	eachServer(t, func(t *testing.T, start startFunc) {
		srv := start(t, testserver.WithMaxItems(2))
		createUsers(t, srv, "a", "b", "c")
		svc := startService(t, srv)
		waitUntil(t, "readyz", func() bool { return svc.Ready() == http.StatusOK })
		for _, u := range []string{"a", "b", "c"} {
			online(t, srv, u, "r")
		}
		waitUntil(t, "the limit reported", func() bool { return svc.Logged("raise pubsub_max_items") })
	})
}

// TestIntegrationSharedRoster: with the component in every roster through
// the server's shared roster (docs/prosody.md), users are tracked without
// ever subscribing: one online before the service starts (found by the
// resync's probe), one after. Prosody only: ejabberd keeps its shared roster
// groups in its database, and the harness does not set them up.
func TestIntegrationSharedRoster(t *testing.T) {
	srv := testserver.StartProsody(t, testserver.WithSharedRoster())
	createUsers(t, srv, "alice", "bob")
	a := dial(t, srv, "alice", "early")
	if err := a.Presence("away", "before", 3); err != nil {
		t.Fatal(err)
	}
	svc := startService(t, srv)
	waitUntil(t, "readyz", func() bool { return svc.Ready() == http.StatusOK })
	w := watcher(t, srv)
	waitView(t, w, map[string]conn{"alice@localhost/early": {show: presence.Away, text: "before", prio: 3, ip: "127.0.0.1"}})
	b := dial(t, srv, "bob", "late")
	if err := b.Presence("", "", 0); err != nil {
		t.Fatal(err)
	}
	waitView(t, w, map[string]conn{
		"alice@localhost/early": {show: presence.Away, text: "before", prio: 3, ip: "127.0.0.1"},
		"bob@localhost/late":    {show: presence.Online, ip: "127.0.0.1"},
	})
	_ = b.Close()
	waitView(t, w, map[string]conn{"alice@localhost/early": {show: presence.Away, text: "before", prio: 3, ip: "127.0.0.1"}})
}

// formerMember creates the nodes as the component would, with a whitelist,
// and makes jid a member of each, before the service runs.
func formerMember(t testing.TB, srv *testserver.Server, jid string, nodeNames ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c := dialComponent(t, srv)
	defer c.Close() // before the service starts
	for _, n := range nodeNames {
		if _, err := pubsub.Ensure(ctx, c, srv.Pubsub, pubsub.NodeConfig{Node: n, Persist: true, MaxItems: "1", SendLast: "never", AccessModel: "whitelist"}); err != nil {
			t.Fatal(err)
		}
		if err := pubsub.SetAffiliations(ctx, c, srv.Pubsub, n, map[string]string{jid: "member"}); err != nil {
			t.Fatal(err)
		}
	}
}
