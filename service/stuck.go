package service

import (
	"time"
)

// Stuck items: ejabberd 23.01 can keep, for good, an item of the actual
// node that was published while an owner deleted the node. Every fetch
// lists it, every retract is answered item-not-found, and no request
// removes it (docs/ejabberd.md, "A node deleted while items are published
// to it"). The queue counts such a retract as done (nodes.Result.Absent),
// so the service would retract the item at every resync and count a fix
// each time, saying nothing else. It notes each such answer (evAbsent);
// an id that a later fetch of the node still lists is stuck: the converge
// warns of it, once per session, and counts it in
// pubpresence_actual_stuck_items instead of the resync's fixes. It is
// still retracted at each resync, in case the server lets it go.

// maxAbsent bounds the item-not-found answers noted between two resyncs
// (a deleted node answers every retract so).
const maxAbsent = 4096

// evAbsent: the server answered a retract of id on the actual node with
// item-not-found, at at.
type evAbsent struct {
	id string
	at time.Time
}

// noteAbsent records an item-not-found answer to a retract.
func (ss *session) noteAbsent(ev evAbsent) {
	if ss.absent == nil {
		ss.absent = make(map[string]time.Time)
	}
	if len(ss.absent) < maxAbsent {
		ss.absent[ev.id] = ev.at
	}
}

// stuckItems returns how many of the ids a converge retracts are stuck:
// their retract was answered item-not-found before the node was read
// (asked), and the read listed them all the same. It warns of those not
// known stuck before in this session, sets the gauge, and forgets the
// answers it judged: the retracts the converge queues bring their own.
// An answer that came after the read was asked waits for the next one (a
// start's early retracts are answered after its prefetch).
func (ss *session) stuckItems(retract []string, asked time.Time) int {
	var stuck map[string]bool
	var fresh []string
	for _, id := range retract {
		if at, ok := ss.absent[id]; ok && at.Before(asked) {
			if stuck == nil {
				stuck = make(map[string]bool)
			}
			stuck[id] = true
			if !ss.stuck[id] {
				fresh = append(fresh, id)
			}
		}
	}
	for id, at := range ss.absent {
		if at.Before(asked) {
			delete(ss.absent, id)
		}
	}
	// One no longer stuck (gone after all) is warned of again should it
	// come back.
	ss.stuck = stuck
	ss.svc.metrics.StuckItems.Set(float64(len(stuck)))
	if len(fresh) > 0 {
		ss.svc.log.Warn().Str("node", ss.svc.cfg().Nodes.Actual).Int("items", len(fresh)).Strs("ids", fresh[:min(len(fresh), 10)]).
			Str("hint", "see docs/ejabberd.md, \"A node deleted while items are published to it\"; stop pubpresence before deleting its nodes").
			Msg("the server lists items on the actual node that it answers item-not-found to retracting: it keeps them, and no request removes them")
	}
	return len(stuck)
}
