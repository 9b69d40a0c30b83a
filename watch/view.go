// Package watch follows the pubpresence nodes as a client should
// (docs/protocol.md, "How a client follows it"): View is the pure client-side state, Follower
// drives a c2s session through the init/online protocol to keep a View
// true. HTTPFollower keeps a View true from the service's HTTP event
// stream instead (SSEReader), with the same statuses, snapshots and
// events.
package watch

import (
	"sort"

	"github.com/pubpresence/pubpresence/presence"
)

// Service states published on the status node.
const (
	StatusInit   = "init"
	StatusOnline = "online"
)

// Event is one change seen on presence/live: the item id (the full JID) and
// the connection it describes. Conn.Show is presence.Offline when the
// connection went away (a live "offline" item or a retract on
// presence/actual).
type Event struct {
	ID   string
	Conn presence.Conn
}

// View is the client-side state: the connections as the nodes say, and the
// service status. The zero value is empty and ready to use. It is not safe
// for concurrent use.
type View struct {
	status string
	conns  map[string]presence.Conn // by item id (the full JID)
}

// Status returns the last status seen on the status node: "" before any,
// then "init" or "online" (or whatever else the service published).
func (v *View) Status() string { return v.status }

// Len returns the number of connections in the view.
func (v *View) Len() int { return len(v.conns) }

// Conns returns the connections, sorted by JID.
func (v *View) Conns() []presence.Conn {
	out := make([]presence.Conn, 0, len(v.conns))
	for _, c := range v.conns {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].JID < out[j].JID })
	return out
}

// Conn returns the connection with item id (full JID) id.
func (v *View) Conn(id string) (presence.Conn, bool) {
	c, ok := v.conns[id]
	return c, ok
}

// SetStatus applies a status item. It reports whether the status changed.
func (v *View) SetStatus(s string) bool {
	if v.status == s {
		return false
	}
	v.status = s
	return true
}

// Load replaces every connection with a snapshot of presence/actual (the
// items' events, oldest first; a later item for the same id wins). Offline
// entries are left out. It reports whether the view changed.
func (v *View) Load(snapshot []Event) bool {
	next := make(map[string]presence.Conn, len(snapshot))
	for _, ev := range snapshot {
		id := key(ev)
		if id == "" {
			continue
		}
		if ev.Conn.Show == presence.Offline {
			delete(next, id)
			continue
		}
		next[id] = ev.Conn
	}
	changed := len(next) != len(v.conns)
	if !changed {
		for id, c := range next {
			if old, ok := v.conns[id]; !ok || !sameConn(old, c) {
				changed = true
				break
			}
		}
	}
	v.conns = next
	return changed
}

// Apply applies one live event: an offline connection is removed, any
// other is added or replaced. It reports whether the view changed.
func (v *View) Apply(ev Event) bool {
	id := key(ev)
	if id == "" {
		return false
	}
	if ev.Conn.Show == presence.Offline {
		return v.Retract(id)
	}
	if old, ok := v.conns[id]; ok && sameConn(old, ev.Conn) {
		return false
	}
	if v.conns == nil {
		v.conns = make(map[string]presence.Conn)
	}
	v.conns[id] = ev.Conn
	return true
}

// Retract removes the connection with item id id (a retract notification
// on presence/actual). It reports whether the view changed.
func (v *View) Retract(id string) bool {
	if _, ok := v.conns[id]; !ok {
		return false
	}
	delete(v.conns, id)
	return true
}

// Clear removes every connection (presence/actual was purged or deleted).
// It reports whether the view changed.
func (v *View) Clear() bool {
	if len(v.conns) == 0 {
		return false
	}
	v.conns = nil
	return true
}

// key is the map key of an event: its item id, or the connection's JID
// when the id is missing.
func key(ev Event) string {
	if ev.ID != "" {
		return ev.ID
	}
	return ev.Conn.JID
}

// sameConn reports whether a and b hold the same item: the same state
// (idle included) and the same since.
func sameConn(a, b presence.Conn) bool {
	return a.SameState(b) && a.Since.Equal(b.Since)
}
