package xmpp

import (
	"bytes"
	"encoding/xml"
)

// Privilege is what a <privilege/> message grants (XEP-0356).
type Privilege struct {
	NS       string // urn:xmpp:privilege:1 (ejabberd 23.01) or urn:xmpp:privilege:2 (Prosody's mod_privilege)
	Roster   string // perm type for access='roster': "none", "get", "set", "both"; "" when not listed
	Message  string // access='message': "none", "outgoing"
	Presence string // access='presence': "none", "managed_entity", "roster"
	IQ       bool   // an access='iq' perm is listed (namespaces not parsed)
}

// ParsePrivilege finds a <privilege/> element of either namespace among the
// children of a message (inner is the message's inner XML) and returns its perms.
//
// Only a direct child counts, the first of either namespace; of its
// <perm/> children (in its namespace), the first for each access counts,
// and a type is kept as sent, unknown values included. It reports false
// when there is no such element, or when the XML up to its end does not
// parse.
func ParsePrivilege(inner []byte) (Privilege, bool) {
	d := xml.NewDecoder(bytes.NewReader(inner))
	for {
		tok, err := d.Token()
		if err != nil {
			return Privilege{}, false
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if se.Name.Local != "privilege" || se.Name.Space != NSPrivilege1 && se.Name.Space != NSPrivilege2 {
			if d.Skip() != nil {
				return Privilege{}, false
			}
			continue
		}
		p := Privilege{NS: se.Name.Space}
		if !p.readPerms(d) {
			return Privilege{}, false
		}
		return p, true
	}
}

// readPerms reads the children of the <privilege/> just opened up to its end.
// It reports false when the XML does not parse.
func (p *Privilege) readPerms(d *xml.Decoder) bool {
	var roster, message, presence bool // seen
	for {
		tok, err := d.Token()
		if err != nil {
			return false
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return true
		case xml.StartElement:
			if t.Name.Local == "perm" && t.Name.Space == p.NS {
				typ := attr(t, "type")
				switch attr(t, "access") {
				case "roster":
					if !roster {
						roster, p.Roster = true, typ
					}
				case "message":
					if !message {
						message, p.Message = true, typ
					}
				case "presence":
					if !presence {
						presence, p.Presence = true, typ
					}
				case "iq":
					p.IQ = true
				}
			}
			if d.Skip() != nil { // an iq perm's <namespace/> children, or anything else
				return false
			}
		}
	}
}

// PresenceGranted reports whether Presence is managed_entity or roster.
func (p Privilege) PresenceGranted() bool {
	return p.Presence == "managed_entity" || p.Presence == "roster"
}
