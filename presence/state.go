package presence

import (
	"slices"
	"strings"
	"time"

	"github.com/pubpresence/pubpresence/internal/xmpp"
)

// Show is the availability of one connection as published.
type Show string

// The values of Show. Online is available presence without <show/>; Offline
// is only published on the live node, when a connection goes away.
const (
	Online  Show = "online"
	Chat    Show = "chat"
	Away    Show = "away"
	XA      Show = "xa"
	DND     Show = "dnd"
	Offline Show = "offline"
)

// Valid reports whether s is one of the six published values.
func (s Show) Valid() bool {
	switch s {
	case Online, Chat, Away, XA, DND, Offline:
		return true
	}
	return false
}

// Conn is the state of one user connection.
type Conn struct {
	JID      string    // full JID, normalised (JID.Full())
	Show     Show      // availability
	Text     string    // presence <status/> text, already truncated to MaxText
	Priority int       // −128…127
	IP       string    // "" when unknown
	Since    time.Time // UTC time of the last visible change
	Idle     time.Time // UTC time since which the user is idle (XEP-0319); zero when not idle or not told
}

// Bare returns the bare part of c.JID: everything before the first '/'.
func (c Conn) Bare() string { return xmpp.BareOf(c.JID) }

// SameState reports whether c and o are equal in JID, Show, Text, Priority,
// IP and Idle (the same instant); Since is ignored.
func (c Conn) SameState(o Conn) bool { return sameState(&c, &o) }

// sameState is SameState for the hot path (State.Set): with time.Equal it
// is too big to be inlined, and a call that copies two Conns costs more
// than the comparison.
func sameState(c, o *Conn) bool {
	return c.JID == o.JID && c.Show == o.Show && c.Text == o.Text &&
		c.Priority == o.Priority && c.IP == o.IP && c.Idle.Equal(o.Idle)
}

// entry is one stored connection and the sequence number of its last Set.
type entry struct {
	Conn
	seq uint64
}

// State holds the current connections. Not safe for concurrent use: one
// goroutine owns it. The zero value is not usable; call NewState.
type State struct {
	conns map[string]*entry   // by full JID
	users map[string][]*entry // by bare JID; the key shares its bytes with a stored JID
	seq   uint64
}

// NewState returns an empty State.
func NewState() *State {
	return &State{conns: make(map[string]*entry), users: make(map[string][]*entry)}
}

// Set stores c as the connection's state. It returns (c, true) when the
// connection is new or changed visibly; then c.Since is kept as given. If the
// stored conn has SameState, it returns (stored, false) and keeps the stored
// Since. Every Set records the current sequence number (see Seq) on the conn.
func (s *State) Set(c Conn) (Conn, bool) {
	s.seq++
	if e, ok := s.conns[c.JID]; ok {
		e.seq = s.seq
		if sameState(&e.Conn, &c) {
			return e.Conn, false
		}
		e.Conn = c
		return c, true
	}
	e := &entry{Conn: c, seq: s.seq}
	s.conns[c.JID] = e
	bare := c.Bare()
	s.users[bare] = append(s.users[bare], e)
	return c, true
}

// Remove drops the connection and returns it with Show=Offline, or false if
// it is unknown.
func (s *State) Remove(jid string) (Conn, bool) {
	s.seq++
	e, ok := s.conns[jid]
	if !ok {
		return Conn{}, false
	}
	delete(s.conns, jid)
	bare := e.Bare()
	list := s.users[bare]
	if i := slices.Index(list, e); i >= 0 {
		list = slices.Delete(list, i, i+1)
	}
	if len(list) == 0 {
		delete(s.users, bare)
	} else {
		s.users[bare] = list
	}
	c := e.Conn
	c.Show = Offline
	return c, true
}

// RemoveUser drops every connection of the bare JID and returns them with
// Show=Offline, sorted by JID.
func (s *State) RemoveUser(bare string) []Conn {
	s.seq++
	list, ok := s.users[bare]
	if !ok {
		return nil
	}
	delete(s.users, bare)
	out := make([]Conn, 0, len(list))
	for _, e := range list {
		delete(s.conns, e.JID)
		c := e.Conn
		c.Show = Offline
		out = append(out, c)
	}
	sortConns(out)
	return out
}

// Get returns the stored state of the connection.
func (s *State) Get(jid string) (Conn, bool) {
	if e, ok := s.conns[jid]; ok {
		return e.Conn, true
	}
	return Conn{}, false
}

// Len returns the number of connections.
func (s *State) Len() int { return len(s.conns) }

// Users returns the number of distinct bare JIDs.
func (s *State) Users() int { return len(s.users) }

// HasUser reports whether the bare JID has at least one connection.
func (s *State) HasUser(bare string) bool {
	_, ok := s.users[bare]
	return ok
}

// Snapshot returns every connection, sorted by JID.
func (s *State) Snapshot() []Conn {
	out := make([]Conn, 0, len(s.conns))
	for _, e := range s.conns {
		out = append(out, e.Conn)
	}
	sortConns(out)
	return out
}

// Seq returns a counter that grows by one on every Set, Remove and
// RemoveUser. A sync records Seq before it asks the server for the online
// sessions; connections touched after that are newer than the answer.
func (s *State) Seq() uint64 { return s.seq }

// Stale returns, sorted, the JIDs of connections not in online whose last Set
// was at or before seq.
func (s *State) Stale(online map[string]bool, seq uint64) []string {
	var out []string
	for jid, e := range s.conns {
		if e.seq <= seq && !online[jid] {
			out = append(out, jid)
		}
	}
	slices.Sort(out)
	return out
}

// SetSince sets the Since of a stored connection (used when the node already
// holds the same state). It does nothing for an unknown connection and does
// not change Seq.
func (s *State) SetSince(jid string, t time.Time) {
	if e, ok := s.conns[jid]; ok {
		e.Since = t
	}
}

// sortConns sorts conns by JID.
func sortConns(conns []Conn) {
	slices.SortFunc(conns, func(a, b Conn) int { return strings.Compare(a.JID, b.JID) })
}

// SetAfter reports whether the connection was Set after seq (a value of
// Seq): a change newer than an answer asked for at seq. An unknown
// connection was not.
func (s *State) SetAfter(jid string, seq uint64) bool {
	e, ok := s.conns[jid]
	return ok && e.seq > seq
}
