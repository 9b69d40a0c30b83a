package c2s

import (
	"errors"
	"fmt"
)

// ErrClosed is returned for operations on a client whose stream has ended.
var ErrClosed = errors.New("c2s: connection closed")

// STARTTLS failures of Dial, which wraps them (test with errors.Is). A
// failed TLS handshake, e.g. an untrusted certificate, is wrapped as
// returned by crypto/tls instead (*tls.CertificateVerificationError, …).
var (
	// ErrTLSRequired: the server requires STARTTLS and Config.TLS is nil.
	ErrTLSRequired = errors.New("server requires STARTTLS, and Config.TLS is nil")
	// ErrTLSNotOffered: Config.TLS is set and the server does not offer STARTTLS.
	ErrTLSNotOffered = errors.New("server does not offer STARTTLS, and Config.TLS requires it")
	// ErrTLSRefused: the server answered <starttls/> with <failure/>.
	ErrTLSRefused = errors.New("server answered STARTTLS with <failure/> (no TLS on its side)")
)

// IQError is an <error/> returned in answer to an IQ (RFC 6120 §8.3).
// Condition is the defined condition's element name ("item-not-found",
// "forbidden", …); App is an application-specific condition such as
// pubsub's "precondition-not-met", when present.
type IQError struct {
	Type      string // cancel, continue, modify, auth, wait
	Condition string
	App       string
	Text      string
}

func (e *IQError) Error() string {
	s := "xmpp error " + e.Type + "/" + e.Condition
	if e.App != "" {
		s += " (" + e.App + ")"
	}
	if e.Text != "" {
		s += ": " + e.Text
	}
	return s
}

// Condition returns the defined condition of err if it is, or wraps, an
// *IQError, and "" otherwise.
func Condition(err error) string {
	var e *IQError
	if errors.As(err, &e) {
		return e.Condition
	}
	return ""
}

// ParseError reads the <error/> child of an error stanza from its inner XML.
// It never fails: an unreadable error becomes "undefined-condition".
func ParseError(inner []byte) *IQError {
	e := &IQError{Condition: "undefined-condition"}
	nodes, err := parseFragment(inner)
	if err != nil {
		return e
	}
	for _, n := range nodes {
		if n.Name.Local != "error" {
			continue
		}
		e.Type = n.attr("type")
		for _, c := range n.Children {
			switch {
			case c.Name.Space == NSStanzas && c.Name.Local == "text":
				e.Text = c.Text
			case c.Name.Space == NSStanzas:
				e.Condition = c.Name.Local
			default:
				e.App = c.Name.Local
			}
		}
		break
	}
	return e
}

// StreamError is a <stream:error/> sent by the server; it ends the stream.
type StreamError struct {
	Condition string // conflict, not-authorized, system-shutdown, …
	Text      string
}

func (e *StreamError) Error() string {
	if e.Text == "" {
		return "stream error " + e.Condition
	}
	return fmt.Sprintf("stream error %s: %s", e.Condition, e.Text)
}

func parseStreamError(inner []byte) *StreamError {
	e := &StreamError{Condition: "undefined-condition"}
	nodes, err := parseFragment(inner)
	if err != nil {
		return e
	}
	for _, c := range nodes {
		switch {
		case c.Name.Space == NSStreams && c.Name.Local == "text":
			e.Text = c.Text
		case c.Name.Space == NSStreams:
			e.Condition = c.Name.Local
		}
	}
	return e
}

// AuthError is a SASL <failure/> (RFC 6120 §6.5), such as "not-authorized"
// for a wrong password.
type AuthError struct {
	Mechanism string
	Condition string
	Text      string
}

func (e *AuthError) Error() string {
	s := "sasl " + e.Mechanism + " failure: " + e.Condition
	if e.Text != "" {
		s += ": " + e.Text
	}
	return s
}

func parseAuthFailure(mech string, inner []byte) *AuthError {
	e := &AuthError{Mechanism: mech, Condition: "undefined"}
	nodes, _ := parseFragment(inner)
	for _, c := range nodes {
		if c.Name.Local == "text" {
			e.Text = c.Text
		} else {
			e.Condition = c.Name.Local
		}
	}
	return e
}
