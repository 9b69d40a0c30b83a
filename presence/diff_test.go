package presence

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"testing"
)

func TestDiff(t *testing.T) {
	on := func(jid string) Conn { return Conn{JID: jid, Show: Online, Since: t1} }
	held := func(jid string) Conn { return Conn{JID: jid, Show: Online, Since: t0} }
	away := func(jid string) Conn { return Conn{JID: jid, Show: Away, Since: t1} }
	tests := []struct {
		name       string
		have, want []Conn
		plan       Plan
	}{
		{name: "empty"},
		{
			name: "all new",
			want: []Conn{on("b@x/1"), on("a@x/1")},
			plan: Plan{Publish: []Conn{on("a@x/1"), on("b@x/1")}},
		},
		{
			name: "all stale",
			have: []Conn{held("b@x/1"), held("a@x/1")},
			plan: Plan{Retract: []string{"a@x/1", "b@x/1"}},
		},
		{
			name: "mixed",
			have: []Conn{held("a@x/1"), held("b@x/1"), held("c@x/1")},
			want: []Conn{away("b@x/1"), on("a@x/1"), on("d@x/1")},
			plan: Plan{
				Publish:   []Conn{away("b@x/1"), on("d@x/1")},
				Retract:   []string{"c@x/1"},
				Unchanged: []Conn{held("a@x/1")},
			},
		},
		{
			name: "duplicate in have: the last counts",
			have: []Conn{held("a@x/1"), away("a@x/1")},
			want: []Conn{on("a@x/1")},
			plan: Plan{Publish: []Conn{on("a@x/1")}},
		},
		{
			name: "duplicate in have: the last counts, unchanged",
			have: []Conn{away("a@x/1"), held("a@x/1"), held("b@x/1"), held("b@x/1")},
			want: []Conn{on("a@x/1")},
			plan: Plan{Retract: []string{"b@x/1"}, Unchanged: []Conn{held("a@x/1")}},
		},
		{
			name: "duplicate in want: the last counts",
			want: []Conn{away("a@x/1"), on("a@x/1")},
			plan: Plan{Publish: []Conn{on("a@x/1")}},
		},
		{
			name: "item id differing in case is retracted",
			have: []Conn{held("Alice@x/1")},
			want: []Conn{on("alice@x/1")},
			plan: Plan{Publish: []Conn{on("alice@x/1")}, Retract: []string{"Alice@x/1"}},
		},
	}
	for _, tt := range tests {
		got := Diff(tt.have, tt.want)
		if !reflect.DeepEqual(got, tt.plan) {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.name, got, tt.plan)
		}
	}
}

// TestDiffAnyOrder: want in any order (State.All gives none) makes the
// same plan, Publish sorted; Unchanged and Publish share one array, and
// appending to one leaves the other as it was.
func TestDiffAnyOrder(t *testing.T) {
	have := []Conn{{JID: "a@x/1", Show: Online}, {JID: "b@x/1", Show: Online}, {JID: "c@x/1", Show: Away}, {JID: "z@x/1"}}
	want := []Conn{{JID: "a@x/1", Show: Online}, {JID: "b@x/1", Show: Online}, {JID: "c@x/1", Show: Online}, {JID: "d@x/1", Show: Online}, {JID: "e@x/1", Show: DND}}
	wantPub := []string{"c@x/1", "d@x/1", "e@x/1"}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		w := slices.Clone(want)
		rng.Shuffle(len(w), func(i, j int) { w[i], w[j] = w[j], w[i] })
		p := Diff(have, w)
		var pub, same []string
		for _, c := range p.Publish {
			pub = append(pub, c.JID)
		}
		for _, c := range p.Unchanged {
			same = append(same, c.JID)
		}
		slices.Sort(same)
		if !slices.Equal(pub, wantPub) || !slices.Equal(same, []string{"a@x/1", "b@x/1"}) || !slices.Equal(p.Retract, []string{"z@x/1"}) {
			t.Fatalf("Diff(%v): publish %v, unchanged %v, retract %v", w, pub, same, p.Retract)
		}
		_ = append(p.Unchanged, Conn{JID: "new"})
		if p.Publish[0].JID != "c@x/1" {
			t.Fatalf("appending to Unchanged overwrote Publish: %v", p.Publish)
		}
	}
}

// TestStateDiff: State.Diff makes the plan Diff makes with the state's
// snapshot.
func TestStateDiff(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	shows := []Show{Online, Away, DND}
	for range 20 {
		s := NewState()
		var have []Conn
		for i := range 200 {
			jid := "u" + strconv.Itoa(i) + "@x/r"
			c := Conn{JID: jid, Show: shows[rng.IntN(len(shows))]}
			if rng.IntN(3) > 0 {
				s.Set(c)
			}
			if rng.IntN(3) > 0 {
				h := c
				if rng.IntN(4) == 0 {
					h.Show = Offline // changed since
				}
				have = append(have, h)
			}
		}
		got, want := s.Diff(have), Diff(have, s.Snapshot())
		sortConns(got.Unchanged)
		sortConns(want.Unchanged)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("State.Diff:\n got %+v\nwant %+v", got, want)
		}
		if len(got.Publish)+len(got.Unchanged) != s.Len() {
			t.Fatalf("%d published + %d unchanged, %d connections", len(got.Publish), len(got.Unchanged), s.Len())
		}
	}
}
