package presence

import "slices"

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
	held := make(map[string]int, len(have))
	for i, h := range have {
		held[h.JID] = i
	}
	wanted := make(map[string]int, len(want))
	for i, w := range want {
		wanted[w.JID] = i
	}
	// Each wanted connection is unchanged or published: one array holds
	// both, the unchanged from the front and the published from the back
	// (a million connections grown by append cost a tenth of a start).
	both := make([]Conn, len(want))
	u, pub := 0, len(both)
	for i, w := range want {
		if wanted[w.JID] != i {
			continue // a later duplicate wins
		}
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
	if pub < len(both) {
		p.Publish = both[pub:]
	}
	for id := range held {
		if _, ok := wanted[id]; !ok {
			p.Retract = append(p.Retract, id)
		}
	}
	sortConns(p.Publish)
	slices.Sort(p.Retract)
	return p
}
