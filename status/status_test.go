package status

import (
	"testing"

	"github.com/pubpresence/pubpresence/nodes"
)

func TestStatePresenceAndItem(t *testing.T) {
	for _, tc := range []struct {
		s          State
		show, text string
	}{
		{Init, "dnd", "initialising"},
		{Online, "", ""},
	} {
		show, text := tc.s.Presence()
		if show != tc.show || text != tc.text {
			t.Errorf("%s: presence (%q, %q), want (%q, %q)", tc.s, show, text, tc.show, tc.text)
		}
		got, err := nodes.ParseStatus(tc.s.Item())
		if err != nil || got != string(tc.s) {
			t.Errorf("%s: item reads back as %q, %v", tc.s, got, err)
		}
	}
	want := "<x xmlns='jabber:x:data' type='result'><field var='pubpresence#status'><value>online</value></field></x>"
	if got := string(Online.Item()); got != want {
		t.Errorf("online item %s, want the seed's form %s", got, want)
	}
}

func TestTracker(t *testing.T) {
	var tr Tracker
	if tr.Ready() || tr.Connected() || tr.State() != Init {
		t.Fatal("zero Tracker must be disconnected, in init")
	}
	tr.SetConnected(true)
	if tr.Ready() {
		t.Error("connected but init: not ready")
	}
	tr.Set(Online)
	if !tr.Ready() || tr.State() != Online {
		t.Error("connected and online: ready")
	}
	tr.SetConnected(false)
	if tr.Ready() || tr.State() != Init {
		t.Error("a lost stream puts the state back to init")
	}
}
