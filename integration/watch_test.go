//go:build integration

package integration

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/component"
	"github.com/pubpresence/pubpresence/internal/c2s"
	"github.com/pubpresence/pubpresence/internal/testserver"
	"github.com/pubpresence/pubpresence/nodes"
	"github.com/pubpresence/pubpresence/presence"
	"github.com/pubpresence/pubpresence/pubsub"
	"github.com/pubpresence/pubpresence/watch"
)

// fakeService plays the pubpresence component by hand on the three nodes.
type fakeService struct {
	t    *testing.T
	s    *testserver.Server
	comp *component.Conn
}

func (f *fakeService) iq(ns, payload string) []byte {
	f.t.Helper()
	return f.request("set", ns, payload)
}

func (f *fakeService) request(typ, ns, payload string) []byte {
	f.t.Helper()
	inner, err := f.comp.IQ(context.Background(), typ, f.s.Pubsub, []byte("<pubsub xmlns='"+ns+"'>"+payload+"</pubsub>"))
	if err != nil {
		f.t.Fatalf("service: %s: %v", payload, err)
	}
	return inner
}

func (f *fakeService) create(node string, fields map[string]string) {
	form := "<configure><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>" +
		"<value>http://jabber.org/protocol/pubsub#node_config</value></field>"
	for k, v := range fields {
		form += "<field var='" + k + "'><value>" + v + "</value></field>"
	}
	f.iq(pubsub.NS, "<create node='"+node+"'/>"+form+"</x></configure>")
}

func (f *fakeService) status(s string) {
	f.iq(pubsub.NS, "<publish node='presence/status'><item id='current'>"+string(nodes.AppendStatus(nil, s))+"</item></publish>")
}

func (f *fakeService) publish(node, jid string, show presence.Show) {
	c := presence.Conn{JID: jid, Show: show, Priority: 1, IP: "127.0.0.1", Since: time.Now().UTC().Truncate(time.Second)}
	f.iq(pubsub.NS, "<publish node='"+node+"'><item id='"+jid+"'>"+string(nodes.AppendUser(nil, c, true))+"</item></publish>")
}

func (f *fakeService) retract(jid string) {
	f.iq(pubsub.NS, "<retract node='presence/actual' notify='true'><item id='"+jid+"'/></retract>")
}

// change publishes a change the way the service does: live, then actual.
func (f *fakeService) change(jid string, show presence.Show) {
	f.publish("presence/live", jid, show)
	if show == presence.Offline {
		f.retract(jid)
	} else {
		f.publish("presence/actual", jid, show)
	}
}

func connsAre(status string, want ...string) func(string, []presence.Conn) bool {
	return func(s string, conns []presence.Conn) bool {
		got := []string{}
		for _, c := range conns {
			got = append(got, c.JID+"="+string(c.Show))
		}
		if want == nil {
			want = []string{}
		}
		return s == status && reflect.DeepEqual(got, want)
	}
}

func TestIntegrationFollower(t *testing.T) {
	eachServer(t, func(t *testing.T, start startFunc) {
		s := start(t)
		if err := s.CreateUsers([]string{"watcher"}, "pw"); err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		comp, err := component.Dial(ctx, component.Config{Address: s.ComponentAddr, Name: s.Component, Secret: s.Secret})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { comp.Close() })
		svc := &fakeService{t: t, s: s, comp: comp}
		svc.create("presence/live", map[string]string{"pubsub#access_model": "open", "pubsub#persist_items": "0"})
		svc.create("presence/actual", map[string]string{"pubsub#access_model": "open", "pubsub#max_items": "max"})
		svc.create("presence/status", map[string]string{"pubsub#access_model": "open", "pubsub#max_items": "1",
			"pubsub#send_last_published_item": "on_sub"})
		svc.status(watch.StatusInit)
		svc.publish("presence/actual", "stale@localhost/old", presence.Online)

		cl, err := c2s.Dial(ctx, c2s.Config{Addr: s.C2SAddr, JID: "watcher@" + s.Domain, Password: "pw", Resource: "w"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		f := watch.NewFollower(cl, s.Pubsub, watch.DefaultNodes())
		runCtx, stop := context.WithCancel(ctx)
		ran := make(chan error, 1)
		go func() { ran <- f.Run(runCtx) }()
		t.Cleanup(stop)

		wait := func(what string, cond func(string, []presence.Conn) bool) {
			t.Helper()
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			if st, conns, err := f.WaitFor(wctx, cond); err != nil {
				t.Fatalf("%s: view is %q %+v: %v", what, st, conns, err)
			}
		}
		wait("init from on_sub", connsAre(watch.StatusInit))

		// Initialisation: live changes are discarded, actual is made true.
		svc.change("a@localhost/1", presence.Away)
		svc.change("b@localhost/1", presence.Online)
		svc.retract("stale@localhost/old")
		svc.status(watch.StatusOnline)
		wait("the snapshot", connsAre(watch.StatusOnline, "a@localhost/1=away", "b@localhost/1=online"))

		svc.change("c@localhost/1", presence.DND)
		svc.change("a@localhost/1", presence.Chat)
		svc.change("b@localhost/1", presence.Offline)
		wait("live changes", connsAre(watch.StatusOnline, "a@localhost/1=chat", "c@localhost/1=dnd"))
		svc.retract("c@localhost/1") // a ghost removed by reconciliation: retract only
		wait("a retract on actual", connsAre(watch.StatusOnline, "a@localhost/1=chat"))

		// A service restart: init, a new truth, online.
		svc.status(watch.StatusInit)
		wait("init again", connsAre(watch.StatusInit, "a@localhost/1=chat"))
		svc.change("a@localhost/1", presence.Offline)
		svc.publish("presence/actual", "d@localhost/1", presence.XA)
		svc.status(watch.StatusOnline)
		wait("the new snapshot", connsAre(watch.StatusOnline, "d@localhost/1=xa"))

		// The service's live events may go out ahead of its writes to
		// actual: a follower that comes between the two has neither the
		// event (before its subscription) nor the item (after its fetch)
		// until the item's notification, which it applies.
		svc.publish("presence/live", "late@localhost/1", presence.Away)
		cl2, err := c2s.Dial(ctx, c2s.Config{Addr: s.C2SAddr, JID: "watcher@" + s.Domain, Password: "pw", Resource: "w2"})
		if err != nil {
			t.Fatal(err)
		}
		f2 := watch.NewFollower(cl2, s.Pubsub, watch.DefaultNodes())
		ran2 := make(chan error, 1)
		go func() { ran2 <- f2.Run(runCtx) }()
		t.Cleanup(func() { cl2.Close(); <-ran2 })
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if st, conns, err := f2.WaitFor(wctx, connsAre(watch.StatusOnline, "d@localhost/1=xa")); err != nil {
			t.Fatalf("a second follower's snapshot: view is %q %+v: %v", st, conns, err)
		}
		svc.publish("presence/actual", "late@localhost/1", presence.Away)
		if st, conns, err := f2.WaitFor(wctx, connsAre(watch.StatusOnline, "d@localhost/1=xa", "late@localhost/1=away")); err != nil {
			t.Fatalf("the item written after the snapshot: view is %q %+v: %v", st, conns, err)
		}
		cancel()
		wait("the first follower, with the same item", connsAre(watch.StatusOnline, "d@localhost/1=xa", "late@localhost/1=away"))

		subscribed := func(node string) bool {
			inner := svc.request("get", pubsub.NSOwner, "<subscriptions node='"+node+"'/>")
			return strings.Contains(string(inner), "jid='"+cl.JID()+"'") || strings.Contains(string(inner), `jid="`+cl.JID()+`"`)
		}
		nodes := []string{"presence/live", "presence/actual", "presence/status"}
		for _, node := range nodes {
			if !subscribed(node) {
				t.Errorf("%s: %s is not subscribed", node, cl.JID())
			}
		}
		stop()
		if err := <-ran; err != context.Canceled {
			t.Fatalf("Run = %v, want context.Canceled", err)
		}
		// Run unsubscribed on its way out.
		for _, node := range nodes {
			if subscribed(node) {
				t.Errorf("%s: %s is still subscribed after Run", node, cl.JID())
			}
		}
	})
}
