package xmpp

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"

	"github.com/pubpresence/pubpresence/internal/xmltext"
)

// Condition is a defined stanza error condition (RFC 6120 §8.3.3): the
// name of the <error/>'s child in the stanzas namespace. A Condition is an
// error too, so that callers test a condition with
// errors.Is(err, xmpp.ErrItemNotFound): a *StanzaError matches the
// Condition it carries.
type Condition string

// Error returns the condition's name.
func (c Condition) Error() string { return string(c) }

// The stanza error conditions of RFC 6120 §8.3.3.
const (
	ErrBadRequest            Condition = "bad-request"
	ErrConflict              Condition = "conflict"
	ErrFeatureNotImplemented Condition = "feature-not-implemented"
	ErrForbidden             Condition = "forbidden"
	ErrGone                  Condition = "gone"
	ErrInternalServerError   Condition = "internal-server-error"
	ErrItemNotFound          Condition = "item-not-found"
	ErrJIDMalformed          Condition = "jid-malformed"
	ErrNotAcceptable         Condition = "not-acceptable"
	ErrNotAllowed            Condition = "not-allowed"
	ErrNotAuthorized         Condition = "not-authorized"
	ErrPolicyViolation       Condition = "policy-violation"
	ErrRecipientUnavailable  Condition = "recipient-unavailable"
	ErrRedirect              Condition = "redirect"
	ErrRegistrationRequired  Condition = "registration-required"
	ErrRemoteServerNotFound  Condition = "remote-server-not-found"
	ErrRemoteServerTimeout   Condition = "remote-server-timeout"
	ErrResourceConstraint    Condition = "resource-constraint"
	ErrServiceUnavailable    Condition = "service-unavailable"
	ErrSubscriptionRequired  Condition = "subscription-required"
	ErrUndefinedCondition    Condition = "undefined-condition"
	ErrUnexpectedRequest     Condition = "unexpected-request"
)

// StanzaError is an <error/> returned in answer to a request (RFC 6120
// §8.3). App is the name of an application-specific condition such as
// pubsub's "precondition-not-met" (XEP-0060 §7), when present.
type StanzaError struct {
	Type      string // cancel, continue, modify, auth, wait
	Condition Condition
	App       string
	Text      string
}

func (e *StanzaError) Error() string {
	s := "xmpp error " + e.Type + "/" + string(e.Condition)
	if e.App != "" {
		s += " (" + e.App + ")"
	}
	if e.Text != "" {
		s += ": " + e.Text
	}
	return s
}

// Is reports whether target is e's Condition, for errors.Is.
func (e *StanzaError) Is(target error) bool {
	c, ok := target.(Condition)
	return ok && c == e.Condition
}

// AppendXML appends e as an <error/> element to b: its type, its condition
// and its text (App is not written: its namespace is not kept).
func (e *StanzaError) AppendXML(b []byte) []byte {
	b = append(b, "<error type='"...)
	b = xmltext.Append(b, e.Type)
	b = append(b, "'><"...)
	b = append(b, e.Condition...)
	b = append(b, " xmlns='"+NSStanzas+"'/>"...)
	if e.Text != "" {
		b = append(b, "<text xmlns='"+NSStanzas+"'>"...)
		b = xmltext.Append(b, e.Text)
		b = append(b, "</text>"...)
	}
	return append(b, "</error>"...)
}

// ConditionOf returns the Condition of the *StanzaError that err is or
// wraps, and "" otherwise: for logs and metric labels. Test for a
// condition with errors.Is instead.
func ConditionOf(err error) Condition {
	var se *StanzaError
	if errors.As(err, &se) {
		return se.Condition
	}
	return ""
}

// ParseError reads the first <error/> element of inner, the inner XML of a
// stanza of type "error". It never fails: inner XML that does not parse,
// or has no <error/>, gives ErrUndefinedCondition, and so does an <error/>
// with no defined condition.
func ParseError(inner []byte) *StanzaError {
	d := xml.NewDecoder(bytes.NewReader(inner))
	for {
		tok, err := d.Token()
		if err != nil {
			return &StanzaError{Condition: ErrUndefinedCondition}
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if se.Name.Local != "error" {
			if d.Skip() != nil {
				return &StanzaError{Condition: ErrUndefinedCondition}
			}
			continue
		}
		e := &StanzaError{Condition: ErrUndefinedCondition, Type: attr(se, "type")}
		if !readConditions(d, NSStanzas, func(c string) { e.Condition = Condition(c) }, &e.Text, &e.App) {
			return &StanzaError{Condition: ErrUndefinedCondition}
		}
		return e
	}
}

// readConditions reads the children of the element just opened up to its
// end: the text element in ns into text, any other element in ns to cond,
// and an element in another namespace into app (when app is not nil). It
// reports false when the XML does not parse.
func readConditions(d *xml.Decoder, ns string, cond func(string), text, app *string) bool {
	for {
		tok, err := d.Token()
		if err != nil {
			return false
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return true
		case xml.StartElement:
			switch {
			case t.Name.Space == ns && t.Name.Local == "text":
				var s string
				if d.DecodeElement(&s, &t) != nil {
					return false
				}
				*text = s
				continue
			case t.Name.Space == ns:
				cond(t.Name.Local)
			case app != nil:
				*app = t.Name.Local
			}
			if d.Skip() != nil {
				return false
			}
		}
	}
}

// attr returns the value of the attribute local (no namespace) of se.
func attr(se xml.StartElement, local string) string {
	for _, a := range se.Attr {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// StreamCondition is a stream error condition (RFC 6120 §4.9.3). Like
// Condition it is an error: a *StreamError matches its own for errors.Is.
type StreamCondition string

// Error returns the condition's name.
func (c StreamCondition) Error() string { return string(c) }

// The stream error conditions of RFC 6120 §4.9.3.
const (
	ErrStreamBadFormat              StreamCondition = "bad-format"
	ErrStreamBadNamespacePrefix     StreamCondition = "bad-namespace-prefix"
	ErrStreamConflict               StreamCondition = "conflict"
	ErrStreamConnectionTimeout      StreamCondition = "connection-timeout"
	ErrStreamHostGone               StreamCondition = "host-gone"
	ErrStreamHostUnknown            StreamCondition = "host-unknown"
	ErrStreamImproperAddressing     StreamCondition = "improper-addressing"
	ErrStreamInternalServerError    StreamCondition = "internal-server-error"
	ErrStreamInvalidFrom            StreamCondition = "invalid-from"
	ErrStreamInvalidNamespace       StreamCondition = "invalid-namespace"
	ErrStreamInvalidXML             StreamCondition = "invalid-xml"
	ErrStreamNotAuthorized          StreamCondition = "not-authorized"
	ErrStreamNotWellFormed          StreamCondition = "not-well-formed"
	ErrStreamPolicyViolation        StreamCondition = "policy-violation"
	ErrStreamRemoteConnectionFailed StreamCondition = "remote-connection-failed"
	ErrStreamReset                  StreamCondition = "reset"
	ErrStreamResourceConstraint     StreamCondition = "resource-constraint"
	ErrStreamRestrictedXML          StreamCondition = "restricted-xml"
	ErrStreamSeeOtherHost           StreamCondition = "see-other-host"
	ErrStreamSystemShutdown         StreamCondition = "system-shutdown"
	ErrStreamUndefinedCondition     StreamCondition = "undefined-condition"
	ErrStreamUnsupportedEncoding    StreamCondition = "unsupported-encoding"
	ErrStreamUnsupportedFeature     StreamCondition = "unsupported-feature"
	ErrStreamUnsupportedStanzaType  StreamCondition = "unsupported-stanza-type"
	ErrStreamUnsupportedVersion     StreamCondition = "unsupported-version"
)

// StreamError is a <stream:error/> sent by the server; it ends the stream.
type StreamError struct {
	Condition StreamCondition
	Text      string
}

func (e *StreamError) Error() string {
	if e.Text == "" {
		return "stream error " + string(e.Condition)
	}
	return fmt.Sprintf("stream error %s: %s", e.Condition, e.Text)
}

// Is reports whether target is e's StreamCondition, for errors.Is.
func (e *StreamError) Is(target error) bool {
	c, ok := target.(StreamCondition)
	return ok && c == e.Condition
}

// ParseStreamError reads the inner XML of a <stream:error/>. It never
// fails: what does not parse, or names no condition, gives
// ErrStreamUndefinedCondition.
func ParseStreamError(inner []byte) *StreamError {
	e := &StreamError{Condition: ErrStreamUndefinedCondition}
	d := xml.NewDecoder(bytes.NewReader(inner))
	// The children are read as those of an element that ends with inner.
	readConditions(d, NSStreams, func(c string) { e.Condition = StreamCondition(c) }, &e.Text, nil)
	return e
}
