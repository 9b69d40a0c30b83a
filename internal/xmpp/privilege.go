package xmpp

// TEMPORARY stub: replaced by the parse branch's privilege.go at merge.

// Privilege is what a <privilege/> message grants (XEP-0356).
type Privilege struct {
	NS       string
	Roster   string
	Message  string
	Presence string
	IQ       bool
}

// ParsePrivilege finds a <privilege/> element among a message's children.
func ParsePrivilege(inner []byte) (Privilege, bool) { return Privilege{}, false }

// PresenceGranted reports whether Presence is managed_entity or roster.
func (p Privilege) PresenceGranted() bool {
	return p.Presence == "managed_entity" || p.Presence == "roster"
}
