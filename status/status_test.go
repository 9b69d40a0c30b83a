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
		{StateInit, "dnd", "initialising"},
		{StateOnline, "", ""},
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
	if got := string(StateOnline.Item()); got != want {
		t.Errorf("online item %s, want the protocol's form %s", got, want)
	}
}

func TestTracker(t *testing.T) {
	var tr Tracker
	if tr.Ready() || tr.Phase() != Connecting || tr.Phase().Connected() || tr.State() != StateInit {
		t.Fatal("zero Tracker must be connecting, in init")
	}
	for _, p := range []Phase{Nodes, Discovering, Converging} {
		tr.SetPhase(p)
		if tr.Ready() || tr.State() != StateInit || !p.Connected() {
			t.Errorf("%s: connected, init, not ready", p)
		}
	}
	tr.SetPhase(Online)
	if !tr.Ready() || tr.State() != StateOnline {
		t.Error("online: ready")
	}
	tr.SetFailing(true)
	if tr.Ready() {
		t.Error("online but failing: not ready")
	}
	tr.SetFailing(false)
	for _, p := range []Phase{Connecting, Standby} {
		tr.SetPhase(p)
		if tr.Ready() || tr.State() != StateInit || p.Connected() {
			t.Errorf("%s: not connected, init, not ready", p)
		}
	}
}

func TestPhaseNames(t *testing.T) {
	seen := map[string]bool{}
	for _, p := range Phases {
		if n := p.String(); n == "unknown" || seen[n] {
			t.Errorf("phase %d named %q", p, n)
		}
		seen[p.String()] = true
	}
	if Phase(len(Phases)).String() != "unknown" {
		t.Error("a phase past the last must be unknown")
	}
}

func TestTrackerStreams(t *testing.T) {
	var tr Tracker
	if up, down := tr.Streams(); up != nil || down != nil || tr.StreamsSummary() != "" {
		t.Fatal("zero Tracker: no streams")
	}
	tr.SetAddresses([]string{"a:1"})
	tr.SetStreamUp(0, true)
	if s := tr.StreamsSummary(); s != "" {
		t.Errorf("one stream: summary %q, want none", s)
	}
	tr.SetAddresses([]string{"a:1", "b:2", "c:3"})
	tr.SetStreamUp(0, true)
	tr.SetStreamUp(2, true)
	tr.SetStreamUp(64, true) // out of range: ignored
	up, down := tr.Streams()
	if len(up) != 2 || up[0] != "a:1" || up[1] != "c:3" || len(down) != 1 || down[0] != "b:2" {
		t.Errorf("Streams = %q, %q", up, down)
	}
	if s := tr.StreamsSummary(); s != "2 of 3 streams up; down: b:2" {
		t.Errorf("summary %q", s)
	}
	tr.SetStreamUp(1, true)
	if s := tr.StreamsSummary(); s != "3 of 3 streams up" {
		t.Errorf("summary %q", s)
	}
}
