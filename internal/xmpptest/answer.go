package xmpptest

import (
	"github.com/pubpresence/pubpresence/internal/xmltext"

	"bytes"

	"github.com/pubpresence/pubpresence/internal/xmpp"
)

// Stanzas and answers the tests write, and Handlers made of them.

// StreamError returns a <stream:error/> with condition cond and text, as
// written (escaped by the caller), the way Prosody writes it (RFC 6120
// §4.9).
func StreamError(cond, text string) string {
	return "<stream:error><" + cond + " xmlns='" + xmpp.NSStreams + "'/><text xmlns='" + xmpp.NSStreams +
		"' xml:lang='en'>" + text + "</text></stream:error>"
}

// IQAnswer returns the answer of type typ ("result" or "error") to the
// request req, from its addressee, with inner as its content.
func IQAnswer(req *Element, typ, inner string) string {
	return "<iq type='" + typ + "' id='" + xmltext.Escape(req.Attr("id")) + "' from='" + xmltext.Escape(req.Attr("to")) +
		"' to='" + xmltext.Escape(req.Attr("from")) + "'>" + inner + "</iq>"
}

// IsIQRequest reports whether e is an IQ get or set.
func (e *Element) IsIQRequest() bool {
	if !e.Is("iq") {
		return false
	}
	t := e.RawAttr("type")
	return string(t) == "get" || string(t) == "set"
}

// IsPing reports whether e is an XEP-0199 ping request.
func (e *Element) IsPing() bool {
	return e.IsIQRequest() && bytes.Contains(e.Inner, []byte(xmpp.NSPing))
}

// AnswerAll is a Handler that answers every IQ request at once with an
// empty result.
func AnswerAll(c *Conn, e *Element) bool {
	if !e.IsIQRequest() {
		return false
	}
	_ = c.Write(IQAnswer(e, "result", ""))
	return true
}

// AnswerPings is a Handler that answers pings with an empty result and
// leaves the rest queued.
func AnswerPings(c *Conn, e *Element) bool {
	if !e.IsPing() {
		return false
	}
	_ = c.Write(IQAnswer(e, "result", ""))
	return true
}
