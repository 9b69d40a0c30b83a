package presence

import "slices"

// Plan is what makes a node equal to the wanted state.
type Plan struct {
	Publish   []Conn   // new or changed, sorted by JID
	Retract   []string // item ids in have but not in want, sorted
	Unchanged []Conn   // in both with SameState: the have version (its Since is the published one)
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
	var p Plan
	for i, w := range want {
		if wanted[w.JID] != i {
			continue // a later duplicate wins
		}
		if j, ok := held[w.JID]; ok && have[j].SameState(w) {
			p.Unchanged = append(p.Unchanged, have[j])
		} else {
			p.Publish = append(p.Publish, w)
		}
	}
	for id := range held {
		if _, ok := wanted[id]; !ok {
			p.Retract = append(p.Retract, id)
		}
	}
	sortConns(p.Publish)
	sortConns(p.Unchanged)
	slices.Sort(p.Retract)
	return p
}
