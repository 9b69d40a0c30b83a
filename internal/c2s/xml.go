package c2s

import (
	"encoding/xml"
)

// unmarshalInner fills v, as xml.Unmarshal would from an element, from the
// inner XML of one: stream features, a stanza's content. It is for the
// small elements of the cold paths.
func unmarshalInner(inner []byte, v any) error {
	b := make([]byte, 0, len(inner)+7)
	b = append(b, "<x>"...)
	b = append(b, inner...)
	b = append(b, "</x>"...)
	return xml.Unmarshal(b, v)
}

// features are the stream features (RFC 6120 §4.3.2) the client uses.
type features struct {
	StartTLS *struct {
		Required *struct{} `xml:"required"`
	} `xml:"urn:ietf:params:xml:ns:xmpp-tls starttls"`
	Mechanisms      []string `xml:"urn:ietf:params:xml:ns:xmpp-sasl mechanisms>mechanism"`
	ChannelBindings []struct {
		Type string `xml:"type,attr"`
	} `xml:"urn:xmpp:sasl-cb:0 sasl-channel-binding>channel-binding"`
	Bind    *struct{} `xml:"urn:ietf:params:xml:ns:xmpp-bind bind"`
	Session *struct {
		Optional *struct{} `xml:"optional"`
	} `xml:"urn:ietf:params:xml:ns:xmpp-session session"`
}

// child is an element of a fragment read with unmarshalInner: its name and
// the character data directly inside it.
type child struct {
	XMLName xml.Name
	Text    string `xml:",chardata"`
}

// children are the elements at the top of a fragment.
type children struct {
	All []child `xml:",any"`
}
