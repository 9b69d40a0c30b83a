package component

import (
	"encoding/xml"
	"errors"
	"fmt"
)

// Namespaces used on the component stream.
const (
	NSStanzas = "urn:ietf:params:xml:ns:xmpp-stanzas"
	NSStreams = "urn:ietf:params:xml:ns:xmpp-streams"
)

// ErrClosed is returned for requests on a stream that has ended.
var ErrClosed = errors.New("component: stream closed")

// ErrAbandoned is the Result of a Call given up with Abandon before its
// answer came.
var ErrAbandoned = errors.New("component: call abandoned")

// ErrPending is returned by Call.Result before the call's Done is closed.
var ErrPending = errors.New("component: call still waiting for its answer")

// StanzaError is an <error/> returned in answer to a request (RFC 6120 §8.3).
// Condition is the defined condition's element name ("item-not-found",
// "forbidden", …); App is an application-specific condition such as pubsub's
// "precondition-not-met", when present.
type StanzaError struct {
	Type      string // cancel, continue, modify, auth, wait
	Condition string
	App       string
	Text      string
}

func (e *StanzaError) Error() string {
	s := "xmpp error " + e.Type + "/" + e.Condition
	if e.App != "" {
		s += " (" + e.App + ")"
	}
	if e.Text != "" {
		s += ": " + e.Text
	}
	return s
}

// Condition returns the defined condition of err if it is, or wraps, a
// *StanzaError, and "" otherwise.
func Condition(err error) string {
	var se *StanzaError
	if errors.As(err, &se) {
		return se.Condition
	}
	return ""
}

// ParseError reads the <error/> child from the inner XML of a stanza of type
// "error". It never fails: an unreadable error becomes "undefined-condition".
func ParseError(inner []byte) *StanzaError {
	var x struct {
		Error struct {
			Type     string `xml:"type,attr"`
			Children []struct {
				XMLName xml.Name
				Text    string `xml:",chardata"`
			} `xml:",any"`
		} `xml:"error"`
	}
	e := &StanzaError{Condition: "undefined-condition"}
	if err := xml.Unmarshal(wrap(inner), &x); err != nil {
		return e
	}
	e.Type = x.Error.Type
	for _, c := range x.Error.Children {
		switch {
		case c.XMLName.Space == NSStanzas && c.XMLName.Local == "text":
			e.Text = c.Text
		case c.XMLName.Space == NSStanzas:
			e.Condition = c.XMLName.Local
		default:
			e.App = c.XMLName.Local
		}
	}
	return e
}

// wrap puts inner XML under one root so that it can be unmarshalled.
func wrap(inner []byte) []byte {
	b := make([]byte, 0, len(inner)+7)
	b = append(b, "<r>"...)
	b = append(b, inner...)
	return append(b, "</r>"...)
}

// StreamError is a <stream:error/> sent by the server; it ends the stream.
type StreamError struct {
	Condition string // conflict, not-authorized, host-unknown, invalid-from, …
	Text      string
}

func (e *StreamError) Error() string {
	if e.Text == "" {
		return fmt.Sprintf("stream error %s", e.Condition)
	}
	return fmt.Sprintf("stream error %s: %s", e.Condition, e.Text)
}
