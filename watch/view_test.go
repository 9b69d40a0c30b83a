package watch

import (
	"reflect"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/presence"
)

func conn(jid string, show presence.Show) presence.Conn {
	return presence.Conn{JID: jid, Show: show, Since: time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)}
}

func ev(jid string, show presence.Show) Event { return Event{ID: jid, Conn: conn(jid, show)} }

func jids(cs []presence.Conn) []string {
	out := []string{}
	for _, c := range cs {
		out = append(out, c.JID+"="+string(c.Show))
	}
	return out
}

func TestViewSteps(t *testing.T) {
	type step struct {
		name    string
		do      func(v *View) bool
		changed bool
		want    []string
	}
	away := ev("b@x/1", presence.Away)
	away.Conn.Text = "lunch"
	idle := ev("b@x/1", presence.Away)
	idle.Conn.Idle = time.Date(2026, 11, 21, 8, 55, 0, 0, time.UTC)
	tests := []struct {
		name  string
		steps []step
	}{
		{"live events on an empty view", []step{
			{"add", func(v *View) bool { return v.Apply(ev("b@x/1", presence.Online)) }, true, []string{"b@x/1=online"}},
			{"add second, sorted", func(v *View) bool { return v.Apply(ev("a@x/1", presence.DND)) }, true, []string{"a@x/1=dnd", "b@x/1=online"}},
			{"same again", func(v *View) bool { return v.Apply(ev("b@x/1", presence.Online)) }, false, []string{"a@x/1=dnd", "b@x/1=online"}},
			{"replace", func(v *View) bool { return v.Apply(away) }, true, []string{"a@x/1=dnd", "b@x/1=away"}},
			{"text only changes", func(v *View) bool { return v.Apply(ev("b@x/1", presence.Away)) }, true, []string{"a@x/1=dnd", "b@x/1=away"}},
			{"idle only changes", func(v *View) bool { return v.Apply(idle) }, true, []string{"a@x/1=dnd", "b@x/1=away"}},
			{"idle again", func(v *View) bool { return v.Apply(idle) }, false, []string{"a@x/1=dnd", "b@x/1=away"}},
			{"idle ends", func(v *View) bool { return v.Apply(ev("b@x/1", presence.Away)) }, true, []string{"a@x/1=dnd", "b@x/1=away"}},
			{"offline removes", func(v *View) bool { return v.Apply(ev("a@x/1", presence.Offline)) }, true, []string{"b@x/1=away"}},
			{"offline of unknown", func(v *View) bool { return v.Apply(ev("z@x/1", presence.Offline)) }, false, []string{"b@x/1=away"}},
			{"no id and no jid", func(v *View) bool { return v.Apply(Event{}) }, false, []string{"b@x/1=away"}},
		}},
		{"snapshot then retracts", []step{
			{"load", func(v *View) bool {
				return v.Load([]Event{ev("c@x/1", presence.XA), ev("a@x/1", presence.Chat), ev("c@x/1", presence.Away), ev("d@x/1", presence.Offline)})
			}, true, []string{"a@x/1=chat", "c@x/1=away"}},
			{"same load", func(v *View) bool {
				return v.Load([]Event{ev("a@x/1", presence.Chat), ev("c@x/1", presence.Away)})
			}, false, []string{"a@x/1=chat", "c@x/1=away"}},
			{"retract", func(v *View) bool { return v.Retract("a@x/1") }, true, []string{"c@x/1=away"}},
			{"retract unknown", func(v *View) bool { return v.Retract("a@x/1") }, false, []string{"c@x/1=away"}},
			{"load replaces", func(v *View) bool { return v.Load([]Event{ev("e@x/1", presence.Online)}) }, true, []string{"e@x/1=online"}},
			{"clear", func(v *View) bool { return v.Clear() }, true, []string{}},
			{"clear empty", func(v *View) bool { return v.Clear() }, false, []string{}},
		}},
		{"id falls back to the JID", []step{
			{"add without id", func(v *View) bool { return v.Apply(Event{Conn: conn("a@x/1", presence.Online)}) }, true, []string{"a@x/1=online"}},
			{"retract by jid", func(v *View) bool { return v.Retract("a@x/1") }, true, []string{}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v View
			for _, s := range tt.steps {
				if got := s.do(&v); got != s.changed {
					t.Errorf("%s: changed = %v, want %v", s.name, got, s.changed)
				}
				if got := jids(v.Conns()); !reflect.DeepEqual(got, s.want) {
					t.Errorf("%s: conns = %v, want %v", s.name, got, s.want)
				}
				if v.Len() != len(s.want) {
					t.Errorf("%s: Len = %d, want %d", s.name, v.Len(), len(s.want))
				}
			}
		})
	}
}

func TestViewStatus(t *testing.T) {
	var v View
	if v.Status() != "" {
		t.Fatalf("zero view status %q", v.Status())
	}
	for _, s := range []struct {
		status  string
		changed bool
	}{{StatusInit, true}, {StatusInit, false}, {StatusOnline, true}, {"", true}} {
		if got := v.SetStatus(s.status); got != s.changed || v.Status() != s.status {
			t.Errorf("SetStatus(%q) = %v, status %q", s.status, got, v.Status())
		}
	}
}

func TestViewConnKeepsFields(t *testing.T) {
	var v View
	c := presence.Conn{JID: "a@x/r", Show: presence.Away, Text: "t", Priority: -3, IP: "127.0.0.1", Since: time.Unix(100, 0).UTC(), Idle: time.Unix(50, 0).UTC()}
	v.Apply(Event{ID: c.JID, Conn: c})
	got, ok := v.Conn("a@x/r")
	if !ok || got != c {
		t.Fatalf("Conn = %+v %v, want %+v", got, ok, c)
	}
}
