package pubsub

import (
	"context"
	"testing"
)

func TestRetractRequest(t *testing.T) {
	if got, want := string(RetractRequest(nil, "n'1", "a@b/c")),
		"<pubsub xmlns='http://jabber.org/protocol/pubsub'><retract node='n&#39;1' notify='true'><item id='a@b/c'/></retract></pubsub>"; got != want {
		t.Errorf("retract:\n got %s\nwant %s", got, want)
	}
}

func TestPurgeRequest(t *testing.T) {
	if got, want := string(PurgeRequest(nil, "n'1")),
		"<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><purge node='n&#39;1'/></pubsub>"; got != want {
		t.Errorf("purge:\n got %s\nwant %s", got, want)
	}
}

func TestTitle(t *testing.T) {
	for _, tc := range []struct {
		answer, want string
	}{
		{"<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='n'><x xmlns='jabber:x:data' type='form'>" +
			"<field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#node_config</value></field>" +
			"<field var='pubsub#title' type='text-single'><value>pubpresence: online connections</value></field></x></configure></pubsub>",
			"pubpresence: online connections"},
		{"<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='n'><x xmlns='jabber:x:data' type='form'>" +
			"<field var='pubsub#title' type='text-single'/></x></configure></pubsub>", ""},
		{"<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='n'/></pubsub>", ""},
	} {
		got, err := Title(context.Background(), answerWith(tc.answer), "pubsub.localhost", "n")
		if err != nil || got != tc.want {
			t.Errorf("Title = %q, %v; want %q", got, err, tc.want)
		}
	}
}

// answerWith answers every request with one canned answer.
type answerWith string

func (a answerWith) IQ(context.Context, string, string, []byte) ([]byte, error) {
	return []byte(a), nil
}
