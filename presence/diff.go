package presence

import (
	"iter"
	"slices"
)

// Plan is what makes a node equal to the wanted state.
type Plan struct {
	Publish   []Conn   // new or changed, sorted by JID
	Retract   []string // item ids in have but not in want, sorted
	Unchanged []Conn   // in both with SameState: the have version (its Since is the published one), in no order
}

// Diff compares what a node holds (have, whose JIDs are the item ids,
// possibly with duplicate ids: the last one counts) with want (where a
// duplicate JID also counts once, the last one).
func Diff(have, want []Conn) Plan {
	wanted := make(map[string]int, len(want))
	for i, w := range want {
		wanted[w.JID] = i
	}
	return diff(have, len(wanted), func(yield func(Conn) bool) {
		for i, w := range want {
			if wanted[w.JID] == i && !yield(w) { // a later duplicate wins
				return
			}
		}
	}, func(id string) bool {
		_, ok := wanted[id]
		return ok
	})
}

// Diff is Diff(have, s.Snapshot()) without a copy of every connection, a
// map of them, or their sort: a start's converge of a million
// connections, where each of those is a hundred megabytes.
func (s *State) Diff(have []Conn) Plan {
	return diff(have, len(s.conns), func(yield func(Conn) bool) {
		for _, e := range s.conns {
			if !yield(e.Conn) {
				return
			}
		}
	}, func(id string) bool {
		_, ok := s.conns[id]
		return ok
	})
}

// diff compares have with the n connections of want, each JID once;
// wanted tells whether an id is one of them.
func diff(have []Conn, n int, want iter.Seq[Conn], wanted func(id string) bool) Plan {
	held := make(map[string]int, len(have))
	for i, h := range have {
		held[h.JID] = i
	}
	// Each wanted connection is unchanged or published: one array holds
	// both, the unchanged from the front and the published from the back
	// (a million connections grown by append cost a tenth of a start).
	both := make([]Conn, n)
	u, pub := 0, n
	for w := range want {
		if j, ok := held[w.JID]; ok && have[j].SameState(w) {
			both[u] = have[j]
			u++
		} else {
			pub--
			both[pub] = w
		}
	}
	var p Plan
	if u > 0 {
		p.Unchanged = both[:u:u]
	}
	if pub < n {
		p.Publish = both[pub:]
	}
	for id := range held {
		if !wanted(id) {
			p.Retract = append(p.Retract, id)
		}
	}
	sortConns(p.Publish)
	slices.Sort(p.Retract)
	return p
}
