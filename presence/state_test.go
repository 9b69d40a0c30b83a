package presence

import (
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var (
	t0 = time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	t1 = t0.Add(time.Minute)
)

func TestConnBare(t *testing.T) {
	for in, want := range map[string]string{
		"alice@example.org/laptop": "alice@example.org",
		"alice@example.org/a/b":    "alice@example.org",
		"alice@example.org":        "alice@example.org",
		"example.org/r":            "example.org",
		"":                         "",
	} {
		if got := (Conn{JID: in}).Bare(); got != want {
			t.Errorf("Conn{JID: %q}.Bare() = %q, want %q", in, got, want)
		}
	}
}

func TestConnSameState(t *testing.T) {
	base := Conn{JID: "a@b/r", Show: Away, Text: "x", Priority: 1, IP: "10.0.0.1", Since: t0}
	tests := []struct {
		name   string
		change func(*Conn)
		same   bool
	}{
		{"identical", func(*Conn) {}, true},
		{"since", func(c *Conn) { c.Since = t1 }, true},
		{"jid", func(c *Conn) { c.JID = "a@b/s" }, false},
		{"show", func(c *Conn) { c.Show = DND }, false},
		{"text", func(c *Conn) { c.Text = "y" }, false},
		{"priority", func(c *Conn) { c.Priority = 2 }, false},
		{"ip", func(c *Conn) { c.IP = "" }, false},
		{"idle from none", func(c *Conn) { c.Idle = t0 }, false},
	}
	for _, tt := range tests {
		o := base
		tt.change(&o)
		if got := base.SameState(o); got != tt.same {
			t.Errorf("%s: SameState = %v, want %v", tt.name, got, tt.same)
		}
	}
	// Idle compares as an instant: the same time in another zone is no change.
	idle := base
	idle.Idle = t0
	for _, tt := range []struct {
		name string
		to   time.Time
		same bool
	}{
		{"idle same", t0, true},
		{"idle same instant elsewhere", t0.In(time.FixedZone("CET", 3600)), true},
		{"idle later", t1, false},
		{"idle gone", time.Time{}, false},
	} {
		o := idle
		o.Idle = tt.to
		if got := idle.SameState(o); got != tt.same {
			t.Errorf("%s: SameState = %v, want %v", tt.name, got, tt.same)
		}
	}
}

func TestStateSet(t *testing.T) {
	s := NewState()
	a := Conn{JID: "alice@example.org/laptop", Show: Online, Since: t0}

	got, changed := s.Set(a)
	if !changed || got != a {
		t.Fatalf("Set new = %+v, %v; want %+v, true", got, changed, a)
	}
	if s.Seq() != 1 || s.Len() != 1 || s.Users() != 1 || !s.HasUser("alice@example.org") {
		t.Fatalf("after Set: seq %d len %d users %d", s.Seq(), s.Len(), s.Users())
	}

	// Same state later: not a change, the stored Since stays.
	again := a
	again.Since = t1
	got, changed = s.Set(again)
	if changed || got != a {
		t.Errorf("Set same = %+v, %v; want %+v, false", got, changed, a)
	}
	if c, _ := s.Get(a.JID); !c.Since.Equal(t0) {
		t.Errorf("stored Since = %v, want %v", c.Since, t0)
	}

	// A visible change keeps the given Since.
	away := a
	away.Show, away.Text, away.Since = Away, "lunch", t1
	got, changed = s.Set(away)
	if !changed || got != away {
		t.Errorf("Set changed = %+v, %v; want %+v, true", got, changed, away)
	}
	if c, ok := s.Get(a.JID); !ok || c != away {
		t.Errorf("Get = %+v, %v; want %+v", c, ok, away)
	}
	if s.Seq() != 3 {
		t.Errorf("Seq = %d, want 3", s.Seq())
	}

	// A second connection of the same user.
	s.Set(Conn{JID: "alice@example.org/phone", Show: DND})
	s.Set(Conn{JID: "bob@example.org/x", Show: XA})
	if s.Len() != 3 || s.Users() != 2 {
		t.Errorf("Len %d Users %d, want 3 2", s.Len(), s.Users())
	}
	if _, ok := s.Get("carol@example.org/x"); ok {
		t.Error("Get unknown: found")
	}
}

func TestStateRemove(t *testing.T) {
	s := NewState()
	s.Set(Conn{JID: "alice@example.org/laptop", Show: Away, Text: "t", Since: t0})
	s.Set(Conn{JID: "alice@example.org/phone", Show: Online})

	c, ok := s.Remove("alice@example.org/laptop")
	want := Conn{JID: "alice@example.org/laptop", Show: Offline, Text: "t", Since: t0}
	if !ok || c != want {
		t.Errorf("Remove = %+v, %v; want %+v, true", c, ok, want)
	}
	if !s.HasUser("alice@example.org") || s.Len() != 1 || s.Users() != 1 {
		t.Errorf("after first Remove: HasUser %v Len %d Users %d", s.HasUser("alice@example.org"), s.Len(), s.Users())
	}
	if _, ok := s.Remove("alice@example.org/laptop"); ok {
		t.Error("second Remove: found")
	}
	s.Remove("alice@example.org/phone")
	if s.HasUser("alice@example.org") || s.Len() != 0 || s.Users() != 0 {
		t.Errorf("after last Remove: HasUser %v Len %d Users %d", s.HasUser("alice@example.org"), s.Len(), s.Users())
	}
	if s.Seq() != 5 {
		t.Errorf("Seq = %d, want 5 (2 Set, 3 Remove)", s.Seq())
	}
}

func TestStateRemoveUser(t *testing.T) {
	s := NewState()
	for _, j := range []string{"alice@x/c", "bob@x/a", "alice@x/a", "alice@x/b", "alicea@x/a"} {
		s.Set(Conn{JID: j, Show: Chat})
	}
	got := s.RemoveUser("alice@x")
	want := []Conn{{JID: "alice@x/a", Show: Offline}, {JID: "alice@x/b", Show: Offline}, {JID: "alice@x/c", Show: Offline}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("RemoveUser = %+v, want %+v", got, want)
	}
	if s.HasUser("alice@x") || s.Len() != 2 || s.Users() != 2 {
		t.Errorf("after RemoveUser: HasUser %v Len %d Users %d", s.HasUser("alice@x"), s.Len(), s.Users())
	}
	if got := s.RemoveUser("alice@x"); len(got) != 0 {
		t.Errorf("RemoveUser again = %+v", got)
	}
	// Re-adding works after the user was dropped.
	s.Set(Conn{JID: "alice@x/a", Show: Chat})
	if !s.HasUser("alice@x") || s.Users() != 3 {
		t.Errorf("re-add: HasUser %v Users %d", s.HasUser("alice@x"), s.Users())
	}
}

func TestStateSnapshot(t *testing.T) {
	s := NewState()
	for _, j := range []string{"c@x/1", "a@x/2", "b@x/1", "a@x/1"} {
		s.Set(Conn{JID: j, Show: Online})
	}
	s.Remove("b@x/1")
	var jids []string
	for _, c := range s.Snapshot() {
		jids = append(jids, c.JID)
	}
	if want := []string{"a@x/1", "a@x/2", "c@x/1"}; !reflect.DeepEqual(jids, want) {
		t.Errorf("Snapshot JIDs = %v, want %v", jids, want)
	}
	if got := NewState().Snapshot(); len(got) != 0 {
		t.Errorf("empty Snapshot = %v", got)
	}
}

func TestStateStale(t *testing.T) {
	s := NewState()
	s.Set(Conn{JID: "a@x/1", Show: Online})
	s.Set(Conn{JID: "b@x/1", Show: Online})
	s.Set(Conn{JID: "c@x/1", Show: Online})
	s.Set(Conn{JID: "d@x/1", Show: Online})
	mark := s.Seq()
	// After the mark: d is touched again (unchanged), e is new.
	s.Set(Conn{JID: "d@x/1", Show: Online})
	s.Set(Conn{JID: "e@x/1", Show: Online})

	online := map[string]bool{"b@x/1": true}
	got := s.Stale(online, mark)
	if want := []string{"a@x/1", "c@x/1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Stale = %v, want %v", got, want)
	}
	if got := s.Stale(nil, 0); len(got) != 0 {
		t.Errorf("Stale(nil, 0) = %v, want none", got)
	}
	if got := s.Stale(nil, s.Seq()); len(got) != 5 {
		t.Errorf("Stale(nil, Seq()) = %v, want all 5", got)
	}
}

func TestStateSetSince(t *testing.T) {
	s := NewState()
	s.Set(Conn{JID: "a@x/1", Show: Online, Since: t1})
	seq := s.Seq()
	s.SetSince("a@x/1", t0)
	s.SetSince("unknown@x/1", t0)
	if c, _ := s.Get("a@x/1"); !c.Since.Equal(t0) {
		t.Errorf("Since = %v, want %v", c.Since, t0)
	}
	if s.Seq() != seq || s.Len() != 1 {
		t.Errorf("SetSince changed Seq (%d→%d) or Len (%d)", seq, s.Seq(), s.Len())
	}
	// A later unchanged Set returns the Since set here.
	if c, changed := s.Set(Conn{JID: "a@x/1", Show: Online, Since: t1}); changed || !c.Since.Equal(t0) {
		t.Errorf("Set = %+v, %v; want Since %v, false", c, changed, t0)
	}
}

func TestShowValid(t *testing.T) {
	for _, s := range []Show{Online, Chat, Away, XA, DND, Offline} {
		if !s.Valid() {
			t.Errorf("%q.Valid() = false", s)
		}
	}
	for _, s := range []Show{"", "Online", "available", "unavailable"} {
		if s.Valid() {
			t.Errorf("%q.Valid() = true", s)
		}
	}
}

func BenchmarkStateSet(b *testing.B) {
	const n = 1000
	conns := make([]Conn, n)
	for i := range conns {
		conns[i] = Conn{JID: "user" + strconv.Itoa(i/2) + "@example.org/res" + strconv.Itoa(i%2), Show: Online, Since: t0}
	}
	b.Run("changed", func(b *testing.B) {
		s := NewState()
		for _, c := range conns {
			s.Set(c)
		}
		shows := [2]Show{Away, Online}
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			c := conns[i%n]
			c.Show = shows[(i/n)%2]
			if _, changed := s.Set(c); !changed {
				b.Fatal("not changed")
			}
		}
	})
	b.Run("unchanged", func(b *testing.B) {
		s := NewState()
		for _, c := range conns {
			s.Set(c)
		}
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, changed := s.Set(conns[i%n]); changed {
				b.Fatal("changed")
			}
		}
	})
	b.Run("add_remove", func(b *testing.B) {
		s := NewState()
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			c := conns[i%n]
			s.Set(c)
			s.Remove(c.JID)
		}
	})
}

func TestStateMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 100 000 connections")
	}
	const n = 100000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s := NewState()
	for i := range n {
		// Two connections per user, with the strings a real one carries.
		s.Set(Conn{
			JID:  "user" + strconv.Itoa(i/2) + "@example.org/resource-" + strconv.Itoa(i%2) + "-abcdef",
			Show: Away, Text: "At lunch, back at " + strconv.Itoa(i%24), Priority: 5,
			IP: "203.0.113." + strconv.Itoa(i%256), Since: t0,
		})
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%.0f bytes per connection", per)
	if per > 1024 {
		t.Errorf("%.0f bytes per connection, want ≤ 1024", per)
	}
	runtime.KeepAlive(s)
}

func TestCleanTextAndSetAfter(t *testing.T) {
	if got := CleanText("  at lunch \xff "); got != "at lunch \uFFFD" {
		t.Errorf("CleanText = %q", got)
	}
	long := CleanText(strings.Repeat("é", MaxText))
	if len(long) > MaxText || !utf8.ValidString(long) {
		t.Errorf("CleanText of a long text: %d bytes, valid %v", len(long), utf8.ValidString(long))
	}
	s := NewState()
	s.Set(Conn{JID: "a@x/1", Show: Online})
	seq := s.Seq()
	if s.SetAfter("a@x/1", seq) || s.SetAfter("b@x/1", seq) {
		t.Error("SetAfter true before any later Set")
	}
	s.Set(Conn{JID: "a@x/1", Show: Online}) // unchanged, but set
	if !s.SetAfter("a@x/1", seq) {
		t.Error("SetAfter false after a later Set")
	}
}
