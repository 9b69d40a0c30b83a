package presence

import "github.com/pubpresence/pubpresence/internal/xmpp"

// JID is a parsed, normalised Jabber ID (see xmpp.ParseJID).
type JID = xmpp.JID

// ParseJID parses and normalises s as xmpp.ParseJID does; a JID that cannot
// be used fails with a *MalformedError whose Reason is "jid", wrapping the
// *xmpp.JIDError.
func ParseJID(s string) (JID, error) {
	j, err := xmpp.ParseJID(s)
	if err != nil {
		return JID{}, &MalformedError{Reason: "jid", Err: err}
	}
	return j, nil
}
