package watch

import (
	"context"
	"sort"
	"strings"
	"testing"

	"github.com/pubpresence/pubpresence/internal/c2s"
	"github.com/pubpresence/pubpresence/nodes"
	"github.com/pubpresence/pubpresence/presence"
	"github.com/pubpresence/pubpresence/pubsub"
)

// Notifications as the servers deliver them (captured from Prosody 0.12
// and ejabberd 23.01): the inner XML of the <message/>.
var notificationSeeds = []string{
	`<event xmlns='http://jabber.org/protocol/pubsub#event'><items node='presence/live'><item id='alice@localhost/laptop'>` +
		`<user xmlns='urn:pubpresence:0' status='away' name='alice@localhost' fulljid='alice@localhost/laptop' ip='127.0.0.1' priority='5' since='2026-11-21T09:00:00Z'><text>At lunch</text></user></item></items></event>`,
	`<event xmlns="http://jabber.org/protocol/pubsub#event"><items node="presence/live"><item id="alice@localhost/home">` +
		`<user xmlns="urn:pubpresence:0" status="offline" name="alice@localhost" fulljid="alice@localhost/home" priority="0"/></item></items></event>`,
	`<event xmlns='http://jabber.org/protocol/pubsub#event'><items node='presence/live'><item id='alice@localhost/laptop'>` +
		`<user xmlns='http://jabber.org/protocol/pubsub' status='online' ip='127.0.0.1' name='alice@localhost' fulljid='alice@localhost/laptop'/></item></items></event>`,
	`<event xmlns='http://jabber.org/protocol/pubsub#event'><items node='presence/actual'><retract id='alice@localhost/desk'/></items></event>`,
	`<event xmlns="http://jabber.org/protocol/pubsub#event"><items node="presence/status"><item id="current"><x xmlns="jabber:x:data" type="result">` +
		`<field var="FORM_TYPE" type="hidden"><value>urn:xmpp:pubpresence:status</value></field><field var="pubpresence#status"><value>init</value></field></x></item></items></event>` +
		`<delay xmlns="urn:xmpp:delay" stamp="2026-11-21T09:04:24.870Z" from="pubsub.localhost"/>`,
	`<event xmlns='http://jabber.org/protocol/pubsub#event'><items node='presence/status'><item id='current'>` +
		`<x xmlns='jabber:x:data' type='result'><field var='pubpresence#status'><value>online</value></field></x></item><retract id='current'/></items></event>`,
	`<event xmlns='http://jabber.org/protocol/pubsub#event'><purge node='presence/actual'/></event>`,
	`<event xmlns='http://jabber.org/protocol/pubsub#event'><delete node='presence/status'/></event>`,
	`<event xmlns='http://jabber.org/protocol/pubsub#event'><items node='presence/live'><item id='A@LocalHost/r'>` +
		`<user xmlns='urn:pubpresence:0' status='dnd' fulljid='A@LocalHost/r' priority='300'/></item><item/><item id='x'><user status='chat' fulljid='x@y/z'/></item></items></event>`,
	`<body>hello</body>`,
}

// snapshotSeeds are items results of presence/actual as the servers send
// them: the inner XML of the <iq/>.
var snapshotSeeds = []string{
	`<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='presence/actual'>` +
		`<item id='alice@localhost/laptop'><user xmlns='urn:pubpresence:0' status='away' name='alice@localhost' fulljid='alice@localhost/laptop' ip='127.0.0.1' priority='5' since='2026-11-21T09:00:00Z'><text>At lunch</text></user></item>` +
		`<item id='bob@localhost/phone'><user xmlns='urn:pubpresence:0' status='online' name='bob@localhost' fulljid='bob@localhost/phone' priority='0'/></item></items></pubsub>`,
	`<pubsub xmlns="http://jabber.org/protocol/pubsub"><items node="presence/actual">` +
		`<item id="alice@localhost/home"><user xmlns="urn:pubpresence:0" status="online" ip="127.0.0.1" name="alice@localhost" fulljid="alice@localhost/home"/></item>` +
		`</items><set xmlns="http://jabber.org/protocol/rsm"><count>2</count><first index="1">1763715864873002</first></set></pubsub>`,
	`<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='presence/actual'/></pubsub>`,
	`<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='presence/actual'>` +
		`<item id='a@b/c'><user xmlns='urn:pubpresence:0' status='online' fulljid='a@b/c'/></item>` +
		`<item id='a@b/c'><user xmlns='urn:pubpresence:0' status='offline' fulljid='a@b/c'/></item>` +
		`<item><user status='xa' fulljid='D@E/f'/></item><item id='g@h/i'/></items></pubsub>`,
}

// FuzzFollowerInput feeds arbitrary server data through what the Follower
// does with it, read both as the inner XML of a pubsub notification
// (checkNotification) and as that of an items result of presence/actual
// (checkSnapshot). One target for the two keeps CI short; both carry
// <items><item><user/></item></items>, so each learns from the other's
// inputs.
func FuzzFollowerInput(f *testing.F) {
	for _, s := range notificationSeeds {
		f.Add([]byte(s))
	}
	for _, s := range snapshotSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, inner []byte) {
		checkNotification(t, inner)
		checkSnapshot(t, inner)
	})
}

// checkNotification runs a notification through what Run does with it: the
// status is read as statusOf does, <user/> items as parseUser does, and the
// events are applied to a View. Nothing panics, and the View stays
// consistent with the events applied to it.
func checkNotification(t *testing.T, inner []byte) {
	t.Helper()
	ev, ok := c2s.Stanza{Name: "message", Type: "headline", From: service, Inner: inner}.Event()
	if !ok {
		return
	}
	// As the status node.
	s, ok := statusOf(ev)
	switch {
	case ev.Purge || ev.Delete:
		if !ok || s != "" {
			t.Fatalf("purge/delete gave status %q, %v", s, ok)
		}
	case ok:
		if s != strings.TrimSpace(s) {
			t.Fatalf("status %q not trimmed", s)
		}
	default:
		for _, it := range ev.Items {
			if _, err := nodes.ParseStatus(it.Payload); it.Retract || err == nil {
				t.Fatalf("status unread, yet item %+v can be read", it)
			}
		}
	}
	// As the live and actual nodes.
	var v View
	for _, it := range ev.Items {
		if it.Retract {
			v.Retract(it.ID)
			if _, has := v.Conn(it.ID); has {
				t.Fatalf("%q still there after its retract", it.ID)
			}
			continue
		}
		e, ok := parseUser(it.Item)
		if !ok {
			continue
		}
		checkEvent(t, it.Item, e)
		v.Apply(e)
		c, has := v.Conn(e.ID)
		if e.Conn.Show == presence.Offline && has || e.Conn.Show != presence.Offline && (!has || !sameConn(c, e.Conn)) {
			t.Fatalf("after applying %+v the view holds %+v, %v", e, c, has)
		}
		if v.Apply(e) {
			t.Fatalf("applying %+v twice changed the view", e)
		}
	}
	checkView(t, &v)
	if ev.Purge || ev.Delete {
		v.Clear()
		if v.Len() != 0 || len(v.Conns()) != 0 {
			t.Fatal("view not empty after Clear")
		}
	}
}

// itemsSession answers every items request with the items of one answer.
type itemsSession struct {
	items []pubsub.Item
}

func (s *itemsSession) Stanzas() <-chan c2s.Stanza                        { return nil }
func (s *itemsSession) Subscribe(context.Context, string, string) error   { return nil }
func (s *itemsSession) Unsubscribe(context.Context, string, string) error { return nil }
func (s *itemsSession) Err() error                                        { return nil }
func (s *itemsSession) Items(context.Context, string, string) ([]pubsub.Item, error) {
	return s.items, nil
}

// checkSnapshot runs an items result of presence/actual through fetch and
// View.Load: nothing panics, every item that reads is in the snapshot, and
// the view holds exactly the last state of each id.
func checkSnapshot(t *testing.T, inner []byte) {
	t.Helper()
	items, err := pubsub.ParseItems(inner)
	if err != nil {
		return
	}
	snap, err := newFollower(&itemsSession{items: items}, service, names).fetch(context.Background())
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	want := map[string]presence.Conn{}
	n := 0
	for _, it := range items {
		e, ok := parseUser(it)
		if !ok {
			continue
		}
		if n >= len(snap) || snap[n] != e {
			t.Fatalf("snapshot %+v lacks item %+v as %+v", snap, it, e)
		}
		n++
		checkEvent(t, it, e)
		if e.Conn.Show == presence.Offline {
			delete(want, e.ID)
		} else {
			want[e.ID] = e.Conn
		}
	}
	if n != len(snap) {
		t.Fatalf("snapshot has %d events, %d items read", len(snap), n)
	}
	var v View
	v.Load(snap)
	checkView(t, &v)
	if v.Len() != len(want) {
		t.Fatalf("view holds %d connections, want %d", v.Len(), len(want))
	}
	for id, c := range want {
		if got, ok := v.Conn(id); !ok || !sameConn(got, c) {
			t.Fatalf("view[%q] = %+v, %v; want %+v", id, got, ok, c)
		}
	}
	if v.Load(snap) {
		t.Fatal("loading the same snapshot twice changed the view")
	}
}

// checkEvent checks an event parseUser read from it.
func checkEvent(t *testing.T, it pubsub.Item, e Event) {
	t.Helper()
	if e.ID == "" || it.ID != "" && e.ID != it.ID {
		t.Fatalf("item id %q gave event id %q", it.ID, e.ID)
	}
	if !e.Conn.Show.Valid() {
		t.Fatalf("show %q", e.Conn.Show)
	}
	if j, err := presence.ParseJID(e.Conn.JID); err != nil || j.Full() != e.Conn.JID || j.Resource == "" {
		t.Fatalf("JID %q not a normalised full JID: %v", e.Conn.JID, err)
	}
}

// checkView checks the invariants of every View.
func checkView(t *testing.T, v *View) {
	t.Helper()
	conns := v.Conns()
	if len(conns) != v.Len() {
		t.Fatalf("Conns has %d, Len says %d", len(conns), v.Len())
	}
	if !sort.SliceIsSorted(conns, func(i, j int) bool { return conns[i].JID < conns[j].JID }) {
		t.Fatalf("Conns not sorted: %+v", conns)
	}
	for _, c := range conns {
		if c.Show == presence.Offline {
			t.Fatalf("offline connection %+v in the view", c)
		}
	}
}
