//go:build integration

package integration

import (
	"context"
	"net/http"
	"testing"

	"github.com/pubpresence/pubpresence/component"
	"github.com/pubpresence/pubpresence/internal/testserver"
	"github.com/pubpresence/pubpresence/nodes"
	"github.com/pubpresence/pubpresence/presence"
	"github.com/pubpresence/pubpresence/pubsub"
)

// TestIntegrationForeignDomain: a subscribe from a domain the service does
// not serve is refused, and that user is never tracked.
func TestIntegrationForeignDomain(t *testing.T) {
	eachServer(t, func(t *testing.T, start startFunc) {
		const other = "other.localhost"
		srv := start(t, testserver.WithHost(other))
		createUsers(t, srv, "alice")
		if err := srv.CreateUsersOn(other, []string{"mallory"}, password); err != nil {
			t.Fatal(err)
		}
		svc := startService(t, srv)
		waitUntil(t, "readyz", func() bool { return svc.Ready() == http.StatusOK })
		w := watcher(t, srv)

		m := dialAt(t, srv.C2SAddr, "mallory@"+other, "r")
		// A client that has fetched its roster, as real ones do: Prosody
		// delivers subscription answers only to those.
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if _, err := m.IQ(ctx, "get", "", []byte("<query xmlns='jabber:iq:roster'/>")); err != nil {
			t.Fatal(err)
		}
		if err := m.ApproveAndSubscribe(srv.Component); err != nil {
			t.Fatal(err)
		}
		refused(t, m, srv.Component)
		if err := m.Presence("chat", "let me in", 0); err != nil {
			t.Fatal(err)
		}
		// A served user after the foreign one: once she is seen, the
		// foreign presence has been handled too.
		online(t, srv, "alice", "r")
		waitView(t, w, map[string]conn{"alice@localhost/r": {show: presence.Online, ip: "127.0.0.1"}})
		if v := svc.Metric(t, `pubpresence_malformed_total{reason="foreign"}`); v < 1 {
			t.Errorf("foreign presence counted %v times, want ≥ 1", v)
		}
	})
}

// TestIntegrationReconcile: the periodic reconciliation removes an item
// nobody is behind (a ghost) and restores one that went missing, without
// leaving online.
func TestIntegrationReconcile(t *testing.T) {
	eachServer(t, func(t *testing.T, start startFunc) {
		srv := start(t)
		createUsers(t, srv, "alice")
		// Another admin of the server will tamper with the node. Prosody
		// lets a global admin publish and retract anywhere; ejabberd wants
		// an affiliation (a publisher may retract only its own items), which
		// the operator gives before the service starts: the service leaves
		// owners and publishers alone.
		haddr, name, secret := srv.Harness()
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		owner := dialComponent(t, srv)
		if _, err := pubsub.Ensure(ctx, owner, srv.Pubsub, pubsub.NodeConfig{Node: testNodes.Actual, Persist: true, MaxItems: "max", SendLast: "never", AccessModel: "whitelist"}); err != nil {
			t.Fatal(err)
		}
		if err := pubsub.SetAffiliations(ctx, owner, srv.Pubsub, testNodes.Actual, map[string]string{name: "owner"}); err != nil {
			t.Fatal(err)
		}
		owner.Close()
		svc := startService(t, srv, func(o *svcOptions) { o.reconcile = "1s" })
		waitUntil(t, "readyz", func() bool { return svc.Ready() == http.StatusOK })
		online(t, srv, "alice", "r")
		alice := map[string]conn{"alice@localhost/r": {show: presence.Online, ip: "127.0.0.1"}}
		waitView(t, watcher(t, srv), alice)

		admin, err := component.Dial(ctx, component.Config{Address: haddr, Name: name, Secret: secret})
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close()
		ghost := presence.Conn{JID: "ghost@localhost/gone", Show: presence.Away}
		if err := pubsub.Publish(ctx, admin, srv.Pubsub, testNodes.Actual, ghost.JID, nodes.AppendUser(nil, ghost, true)); err != nil {
			t.Fatal(err)
		}
		if err := pubsub.Retract(ctx, admin, srv.Pubsub, testNodes.Actual, "alice@localhost/r"); err != nil {
			t.Fatal(err)
		}
		rd := dial(t, srv, reader, "check")
		if got := actualItems(t, rd, srv); len(got) != 1 || got[0].JID != ghost.JID {
			t.Fatalf("tampering did not take:\n%s", describe(got))
		}

		waitUntil(t, "reconciled", func() bool { return matches(actualItems(t, rd, srv), alice) })
		if v := svc.Metric(t, `pubpresence_reconcile_fixes_total{kind="item_retracted"}`); v < 1 {
			t.Errorf("%v stale items retracted counted, want ≥ 1", v)
		}
		if v := svc.Metric(t, `pubpresence_reconcile_fixes_total{kind="item_published"}`); v < 1 {
			t.Errorf("%v missing items published counted, want ≥ 1", v)
		}
		if svc.Ready() != http.StatusOK {
			t.Errorf("left online during reconciliation")
		}
	})
}
