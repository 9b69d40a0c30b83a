package pubsub

import (
	"context"
	"errors"
	"testing"
)

func TestParseEvent(t *testing.T) {
	inner := []byte(`<event xmlns='http://jabber.org/protocol/pubsub#event'><items node='presence/actual'>` +
		`<item id='a@b/c'><user xmlns='urn:pubpresence:0' status='away'/></item><retract id='a@b/d'/></items></event>`)
	ev, ok := ParseEvent(inner)
	if !ok || ev.Node != "presence/actual" || len(ev.Items) != 2 {
		t.Fatalf("event = %+v %v", ev, ok)
	}
	if ev.Items[0].ID != "a@b/c" || ev.Items[0].Retract || string(ev.Items[0].Payload) != `<user xmlns='urn:pubpresence:0' status='away'/>` {
		t.Errorf("item 0 = %+v", ev.Items[0])
	}
	if ev.Items[1].ID != "a@b/d" || !ev.Items[1].Retract {
		t.Errorf("item 1 = %+v", ev.Items[1])
	}
	for inner, want := range map[string]Event{
		`<event xmlns='http://jabber.org/protocol/pubsub#event'><purge node='n'/></event>`:  {Node: "n", Purge: true},
		`<event xmlns='http://jabber.org/protocol/pubsub#event'><delete node='n'/></event>`: {Node: "n", Delete: true},
	} {
		got, ok := ParseEvent([]byte(inner))
		if !ok || got.Node != want.Node || got.Purge != want.Purge || got.Delete != want.Delete {
			t.Errorf("%s: %+v %v", inner, got, ok)
		}
	}
	for _, bad := range []string{
		"<body>hi</body>",
		"<event xmlns='other'><items node='n'/></event>",
		string(inner) + "<delay", // not well-formed after the event
	} {
		if ev, ok := ParseEvent([]byte(bad)); ok {
			t.Errorf("ParseEvent accepted %s: %+v", bad, ev)
		}
	}
}

func TestParseItems(t *testing.T) {
	items, err := ParseItems([]byte(`<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='n'>` +
		`<item id='1'><x xmlns='jabber:x:data' type='result'/></item><item id='2'/></items></pubsub>`))
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 2 || items[0].ID != "1" || string(items[0].Payload) != `<x xmlns='jabber:x:data' type='result'/>` ||
		items[1].ID != "2" || items[1].Payload != nil {
		t.Fatalf("items = %+v", items)
	}
	if _, err := ParseItems([]byte("<query xmlns='x'/>")); err == nil {
		t.Error("ParseItems accepted an answer without pubsub")
	}
	for _, empty := range []string{"", " \n", "<!-- none -->"} {
		if items, err := ParseItems([]byte(empty)); err != nil || len(items) != 0 {
			t.Errorf("empty result %q: %v, %v; want no items", empty, items, err)
		}
	}
}

// TestSubscriberRequests checks the requests a subscriber sends, byte for
// byte, and how Subscribe reads the state the service answers with.
func TestSubscriberRequests(t *testing.T) {
	if got, want := string(SubscribeRequest([]byte("keep"), "n'1", "a&b@c/<d>")),
		"keep<pubsub xmlns='http://jabber.org/protocol/pubsub'><subscribe node='n&#39;1' jid='a&amp;b@c/&lt;d&gt;'/></pubsub>"; got != want {
		t.Errorf("subscribe:\n got %s\nwant %s", got, want)
	}
	if got, want := string(UnsubscribeRequest(nil, "n", "a@b/c")),
		"<pubsub xmlns='http://jabber.org/protocol/pubsub'><unsubscribe node='n' jid='a@b/c'/></pubsub>"; got != want {
		t.Errorf("unsubscribe:\n got %s\nwant %s", got, want)
	}
	if got, want := string(ItemsRequest(nil, "a\"b")),
		"<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='a&#34;b'/></pubsub>"; got != want {
		t.Errorf("items:\n got %s\nwant %s", got, want)
	}
	for _, tc := range []struct {
		answer string
		ok     bool
	}{
		{"", true},
		{"<pubsub xmlns='http://jabber.org/protocol/pubsub'><subscription node='n' jid='a@b/c' subscription='subscribed'/></pubsub>", true},
		{"<pubsub xmlns='http://jabber.org/protocol/pubsub'><subscription node='n' jid='a@b/c'/></pubsub>", true},
		{"<pubsub xmlns='http://jabber.org/protocol/pubsub'><subscription node='n' jid='a@b/c' subscription='pending'/></pubsub>", false},
		{"<pubsub xmlns='http://jabber.org/protocol/pubsub'><subscription subscription='unconfigured'/><subscription subscription='subscribed'/></pubsub>", false},
		{"<pubsub xmlns='other'><subscription subscription='pending'/></pubsub>", true},
		{"<pubsub xmlns='http://jabber.org/protocol/pubsub'><subscription subscription='pending'/>", true}, // unreadable: not said
	} {
		err := Subscribe(context.Background(), answerWith(tc.answer), "pubsub.localhost", "n", "a@b/c")
		if (err == nil) != tc.ok {
			t.Errorf("answer %s: Subscribe = %v", tc.answer, err)
		}
	}
	refused := errors.New("refused")
	if err := Subscribe(context.Background(), errorIQ{refused}, "pubsub.localhost", "n", "a@b/c"); !errors.Is(err, refused) {
		t.Errorf("Subscribe = %v, want it to wrap %v", err, refused)
	}
	if err := Unsubscribe(context.Background(), errorIQ{refused}, "pubsub.localhost", "n", "a@b/c"); !errors.Is(err, refused) {
		t.Errorf("Unsubscribe = %v, want it to wrap %v", err, refused)
	}
}

// errorIQ fails every request with err.
type errorIQ struct{ err error }

func (e errorIQ) IQ(context.Context, string, string, []byte) ([]byte, error) { return nil, e.err }
