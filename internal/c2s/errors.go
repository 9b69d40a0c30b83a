package c2s

import "errors"

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
	var cs children
	if unmarshalInner(inner, &cs) != nil {
		return e
	}
	for _, c := range cs.All {
		if c.XMLName.Local == "text" {
			e.Text = c.Text
		} else {
			e.Condition = c.XMLName.Local
		}
	}
	return e
}
