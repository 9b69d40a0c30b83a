package pubsub

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/pubpresence/pubpresence/internal/xmltext"
)

// FuzzSubscriberParsers feeds arbitrary input to what a subscriber reads:
// a notification (ParseEvent), an items result (ParseItems) and a
// subscribe result (Subscribe). One target for the three, as they share
// the shape <x><items node='…'><item/>…</items></x>. See checkEvent,
// checkItemsResult and checkSubscribe for what is asserted.
func FuzzSubscriberParsers(f *testing.F) {
	for _, s := range []string{
		"<event xmlns='http://jabber.org/protocol/pubsub#event'><items node='n'><item id='a'><u xmlns='x'/></item><retract id='b'/></items></event>",
		"<event xmlns='http://jabber.org/protocol/pubsub#event'><delete node='presence/status'/></event><delay xmlns='urn:xmpp:delay' stamp='2026-11-21T09:04:24.870Z'/>",
		"<event xmlns='http://jabber.org/protocol/pubsub#event'><items node='n'><item id='a'>t<!-- c --><u/><v/></item><item/></items></event>",
		"<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='n'><item id='a'/></items></pubsub>",
		"<pubsub xmlns='http://jabber.org/protocol/pubsub'><subscription node='n' jid='a@b/c' subscription='pending'/></pubsub>",
		"<pubsub xmlns='http://jabber.org/protocol/pubsub'><subscription node='n' jid='a@b/c' subscription='subscribed'/></pubsub>",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkEvent(t, b)
		checkItemsResult(t, b)
		checkSubscribe(t, b)
	})
}

// checkEvent: ParseEvent never panics and gives nothing when it fails; a
// payload is nil or one element, a retraction has none; and the event,
// written again, reads back the same.
func checkEvent(t *testing.T, b []byte) {
	t.Helper()
	ev, ok := ParseEvent(b)
	if !ok {
		if ev.Node != "" || ev.Items != nil || ev.Purge || ev.Delete {
			t.Fatalf("event %+v with ok false", ev)
		}
		return
	}
	if ev.Purge && ev.Delete || (ev.Purge || ev.Delete) && ev.Items != nil {
		t.Fatalf("event %+v is more than one thing", ev)
	}
	again := append([]byte(nil), "<event xmlns='"+NSEvent+"'>"...)
	switch {
	case ev.Purge:
		again = append(again, "<purge node='"...)
	case ev.Delete:
		again = append(again, "<delete node='"...)
	default:
		again = append(again, "<items node='"...)
	}
	again = xmltext.Append(again, ev.Node)
	again = append(again, "'>"...)
	for _, it := range ev.Items {
		checkID(t, it.ID)
		if it.Retract {
			if it.Payload != nil {
				t.Fatalf("retract with payload: %+v", it)
			}
			again = append(again, "<retract id='"...)
			again = xmltext.Append(again, it.ID)
			again = append(again, "'/>"...)
			continue
		}
		checkPayload(t, it.Payload)
		again = append(again, "<item id='"...)
		again = xmltext.Append(again, it.ID)
		again = append(again, "'>"...)
		again = append(again, it.Payload...)
		again = append(again, "</item>"...)
	}
	switch {
	case ev.Purge:
		again = append(again, "</purge></event>"...)
	case ev.Delete:
		again = append(again, "</delete></event>"...)
	default:
		again = append(again, "</items></event>"...)
	}
	back, ok := ParseEvent(again)
	if !ok || back.Node != ev.Node || back.Purge != ev.Purge || back.Delete != ev.Delete || len(back.Items) != len(ev.Items) {
		t.Fatalf("event %+v written back as %s reads as %+v, %v", ev, again, back, ok)
	}
	for i, it := range ev.Items {
		if b := back.Items[i]; b.ID != it.ID || b.Retract != it.Retract || !bytes.Equal(b.Payload, it.Payload) {
			t.Fatalf("item %d read back as %+v, want %+v", i, b, it)
		}
	}
}

// checkItemsResult: ParseItems never panics, fails with no items, and
// gives ids XML can carry and payloads of one element or none.
func checkItemsResult(t *testing.T, b []byte) {
	t.Helper()
	items, err := ParseItems(b)
	if err != nil {
		if items != nil {
			t.Fatalf("items %v with error %v", items, err)
		}
		return
	}
	for _, it := range items {
		checkID(t, it.ID)
		checkPayload(t, it.Payload)
	}
}

// checkSubscribe: Subscribe never panics, sends one request, and fails only
// for a state it names.
func checkSubscribe(t *testing.T, b []byte) {
	t.Helper()
	iq := &answerIQ{answer: b}
	err := Subscribe(context.Background(), iq, "pubsub.localhost", "presence/live", "alice@localhost/r")
	if len(iq.sets) != 1 || iq.gets != 0 {
		t.Fatalf("Subscribe sent %d sets, %d gets; want 1 set", len(iq.sets), iq.gets)
	}
	if err != nil && !strings.Contains(err.Error(), ": subscription is ") {
		t.Fatalf("Subscribe = %v", err)
	}
}

func checkID(t *testing.T, id string) {
	t.Helper()
	if !utf8.ValidString(id) {
		t.Fatalf("id %q is not UTF-8", id)
	}
}

// checkPayload fails unless p is nil or exactly one element.
func checkPayload(t *testing.T, p []byte) {
	t.Helper()
	if p == nil {
		return
	}
	if err := oneElement(p); err != nil {
		t.Fatalf("payload %q is not one element: %v", p, err)
	}
}

func oneElement(p []byte) error {
	d := xml.NewDecoder(bytes.NewReader(p))
	tok, err := d.Token()
	if err != nil {
		return err
	}
	if _, ok := tok.(xml.StartElement); !ok {
		return fmt.Errorf("begins with %T", tok)
	}
	if err := d.Skip(); err != nil {
		return err
	}
	if tok, err := d.Token(); err != io.EOF {
		return fmt.Errorf("%T after the element (%v)", tok, err)
	}
	return nil
}
