package c2s

import (
	"github.com/pubpresence/pubpresence/internal/xmltext"

	"github.com/pubpresence/pubpresence/internal/xmpp"

	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/xdg-go/stringprep"
	"mellium.im/sasl"
)

// SASL mechanism names accepted in Config.Mechanism, strongest first.
const (
	MechSCRAMSHA256Plus = "SCRAM-SHA-256-PLUS"
	MechSCRAMSHA256     = "SCRAM-SHA-256"
	MechSCRAMSHA1Plus   = "SCRAM-SHA-1-PLUS"
	MechSCRAMSHA1       = "SCRAM-SHA-1"
	MechPlain           = "PLAIN"
)

// mechanisms are the ones the client speaks, in the order it prefers them.
// The SCRAM exchanges (RFC 5802, RFC 7677) and PLAIN (RFC 4616) are
// mellium.im/sasl's; what stays ours is the choice, SASLprep, the checks of
// checkServerFirst and the XMPP framing (authenticate).
var mechanisms = []sasl.Mechanism{sasl.ScramSha256Plus, sasl.ScramSha256, sasl.ScramSha1Plus, sasl.ScramSha1, sasl.Plain}

// SASL failures found on the client's side (test with errors.Is). A
// <failure/> of the server is an *AuthError instead.
var (
	// ErrPlainWithoutTLS: PLAIN would send the password in the clear. It is
	// used only over TLS, even when Config.Mechanism asks for it.
	ErrPlainWithoutTLS = errors.New("SASL PLAIN sends the password in the clear: it is used only over TLS (Config.TLS)")
	// ErrChannelBinding: a -PLUS mechanism was asked for without TLS 1.3.
	ErrChannelBinding = errors.New("SCRAM -PLUS needs TLS 1.3: this client binds to the channel with tls-exporter (RFC 9266) only")
	// ErrServerSignature: the server-final-message of SCRAM does not carry
	// the signature of a server that knows the password (RFC 5802 §3), or
	// the server said success before sending it: the server is not trusted.
	ErrServerSignature = errors.New("the server did not prove that it knows the password (SCRAM server signature missing or wrong)")
)

// Bounds on the iteration count a server may ask of us. 4096 is the least
// RFC 5802 §5.1 and RFC 7677 §4 let a server announce: a lower count would
// make our proof cheap to attack offline. The upper bound caps the work a
// hostile server can make us do (about a second).
const (
	minSCRAMIterations = 4096
	maxSCRAMIterations = 1 << 20
)

// chooseMechanism picks the mechanism to authenticate with: forced if it is
// not "", else the first of mechanisms the server offers and this
// connection allows. cs is the TLS state, nil on plain TCP. cbTypes are the
// channel-binding types the server advertised (XEP-0440), nil when it did
// not say.
//
// -PLUS: mellium.im/sasl binds with tls-exporter (RFC 9266) on TLS 1.3 and
// with tls-unique (RFC 5929) below. tls-unique is left out: it is undefined
// in TLS 1.3, and on TLS 1.2 it is safe only with the extended master secret
// (RFC 7627), which crypto/tls does not report. On TLS 1.3 a -PLUS
// mechanism is chosen only when the server advertises tls-exporter:
// ejabberd 23.01 offers SCRAM-*-PLUS on TLS 1.3 without saying the type,
// and verifies tls-unique only, so choosing it there fails the login.
// Prosody 0.12 does not offer -PLUS on TLS 1.3.
func chooseMechanism(offered []string, forced string, cs *tls.ConnectionState, cbTypes []string) (sasl.Mechanism, error) {
	has := func(list []string, s string) bool {
		for _, x := range list {
			if x == s {
				return true
			}
		}
		return false
	}
	usable := func(m sasl.Mechanism) error {
		switch {
		case m.Name == MechPlain && cs == nil:
			return ErrPlainWithoutTLS
		case strings.HasSuffix(m.Name, "-PLUS") && (cs == nil || cs.Version < tls.VersionTLS13):
			return ErrChannelBinding
		}
		return nil
	}
	if forced != "" {
		for _, m := range mechanisms {
			if m.Name != forced {
				continue
			}
			if err := usable(m); err != nil {
				return sasl.Mechanism{}, err
			}
			if !has(offered, forced) {
				return sasl.Mechanism{}, fmt.Errorf("server does not offer SASL %s (it offers %s)", forced, strings.Join(offered, " "))
			}
			return m, nil
		}
		return sasl.Mechanism{}, fmt.Errorf("unsupported SASL mechanism %q", forced)
	}
	plainRefused := false
	for _, m := range mechanisms {
		if !has(offered, m.Name) {
			continue
		}
		switch err := usable(m); {
		case errors.Is(err, ErrPlainWithoutTLS):
			plainRefused = true
		case err != nil:
		case strings.HasSuffix(m.Name, "-PLUS") && !has(cbTypes, "tls-exporter"):
		default:
			return m, nil
		}
	}
	if plainRefused {
		return sasl.Mechanism{}, fmt.Errorf("server offers no SCRAM (it offers %s): %w", strings.Join(offered, " "), ErrPlainWithoutTLS)
	}
	return sasl.Mechanism{}, fmt.Errorf("server offers no SASL mechanism this client speaks (it offers %s)", strings.Join(offered, " "))
}

// forcedRefusal is the error of Dial for a forced mechanism that cannot be
// used without TLS, found before connecting; nil otherwise.
func forcedRefusal(cfg Config) error {
	switch {
	case cfg.TLS != nil:
		return nil
	case cfg.Mechanism == MechPlain:
		return ErrPlainWithoutTLS
	case strings.HasSuffix(cfg.Mechanism, "-PLUS"):
		return ErrChannelBinding
	}
	return nil
}

// saslprepQuery is SASLprep (RFC 4013) for query strings, which is what
// RFC 5802 §2.2 and §5.1 ask of a SCRAM client for the password and the
// user name: unassigned code points are allowed. stringprep.SASLprep is the
// stored-strings variant, which refuses them (a password with an emoji),
// so the profile is rebuilt here from the package's RFC 3454 tables, the
// same as stringprep.SASLprep without table A.1.
var saslprepQuery = stringprep.Profile{
	Mappings:  []stringprep.Mapping{stringprep.TableB1, nonASCIISpaceToSpace()},
	Normalize: true,
	Prohibits: []stringprep.Set{
		stringprep.TableC1_2, stringprep.TableC2_1, stringprep.TableC2_2, stringprep.TableC3, stringprep.TableC4,
		stringprep.TableC5, stringprep.TableC6, stringprep.TableC7, stringprep.TableC8, stringprep.TableC9,
	},
	CheckBiDi: true,
}

// nonASCIISpaceToSpace is the mapping of RFC 4013 §2.1: the non-ASCII spaces
// of RFC 3454 table C.1.2 become U+0020.
func nonASCIISpaceToSpace() stringprep.Mapping {
	m := stringprep.Mapping{}
	for _, rr := range stringprep.TableC1_2 {
		for r := rr[0]; r <= rr[1]; r++ {
			m[r] = []rune{' '}
		}
	}
	return m
}

// saslprep prepares a SCRAM user name or password. The error names what
// failed but never the string (it may be a password).
func saslprep(what, s string) (string, error) {
	p, err := saslprepQuery.Prepare(s)
	if err != nil {
		return "", fmt.Errorf("the %s fails SASLprep (RFC 4013): it has a prohibited character or mixes text directions", what)
	}
	if p == "" {
		return "", fmt.Errorf("the %s is empty after SASLprep (RFC 4013)", what)
	}
	return p, nil
}

// newNegotiator returns mellium's client for m, with the credentials it
// needs. mellium.im/sasl applies no SASLprep, nor any PRECIS profile, to
// either: it escapes "=" and "," in the SCRAM user name (RFC 5802 §5.1) and
// uses the password bytes as given. So SCRAM gets them here prepared with
// SASLprep (saslprepQuery), as RFC 5802 asks and as Prosody and ejabberd
// prepare theirs. PLAIN sends them unprepared: RFC 4616 §2 leaves the
// preparation to the server, which may compare against the password as
// stored (ejabberd with plain password storage does).
func newNegotiator(m sasl.Mechanism, user, password string, offered []string, cs *tls.ConnectionState) (*sasl.Negotiator, error) {
	if m.Name != MechPlain {
		var err error
		if user, err = saslprep("user name", user); err != nil {
			return nil, err
		}
		if password, err = saslprep("password", password); err != nil {
			return nil, err
		}
	}
	opts := []sasl.Option{
		sasl.Credentials(func() ([]byte, []byte, []byte) { return []byte(user), []byte(password), nil }),
		// A -PLUS mechanism binds to the channel only when the server
		// offers it (else its gs2 header says "y").
		sasl.RemoteMechanisms(offered...),
	}
	if cs != nil {
		opts = append(opts, sasl.TLSState(*cs))
	}
	return sasl.NewClient(m, opts...), nil
}

// checkServerFirst refuses a SCRAM server-first-message (RFC 5802 §5.1)
// that mellium.im/sasl v0.3.2 mishandles, before it sees it: it loops
// forever on a last attribute shorter than "a=v" (a trailing comma), takes
// the last of repeated attributes, accepts an iteration count of 0 or of any
// size, and a nonce that only repeats ours.
func checkServerFirst(msg []byte, clientNonce []byte) error {
	seen := map[byte]string{}
	for _, f := range strings.Split(string(msg), ",") {
		if len(f) < 3 || f[1] != '=' {
			return fmt.Errorf("scram: malformed server-first-message attribute %q", f)
		}
		if _, dup := seen[f[0]]; dup {
			return fmt.Errorf("scram: attribute %c repeated in server-first-message", f[0])
		}
		seen[f[0]] = f[2:]
	}
	if _, ok := seen['m']; ok {
		return errors.New("scram: server requires an unsupported extension")
	}
	nonce, ok := seen['r']
	if !ok || !strings.HasPrefix(nonce, string(clientNonce)) || len(nonce) == len(clientNonce) {
		return errors.New("scram: server nonce does not extend the client nonce")
	}
	if salt, err := base64.StdEncoding.DecodeString(seen['s']); err != nil || len(salt) == 0 {
		return errors.New("scram: bad salt")
	}
	n, err := strconv.Atoi(seen['i'])
	if err != nil || n < minSCRAMIterations || n > maxSCRAMIterations {
		return fmt.Errorf("scram: iteration count %q not in [%d, %d]", seen['i'], minSCRAMIterations, maxSCRAMIterations)
	}
	return nil
}

// step runs one step of neg on data from the server, checking a SCRAM
// server-first-message first, and turns a refused server-final-message into
// ErrServerSignature.
func step(neg *sasl.Negotiator, mech string, data []byte) (more bool, resp []byte, err error) {
	state := neg.State() & sasl.StepMask
	if mech != MechPlain && state == sasl.AuthTextSent {
		if err := checkServerFirst(data, neg.Nonce()); err != nil {
			return false, nil, err
		}
	}
	more, resp, err = neg.Step(data)
	switch {
	case err == nil:
		return more, resp, nil
	case state == sasl.ResponseSent && strings.HasPrefix(string(data), "e="):
		return false, nil, fmt.Errorf("scram: server error %q", strings.TrimPrefix(string(data), "e="))
	case state == sasl.ResponseSent:
		return false, nil, ErrServerSignature
	}
	return false, nil, fmt.Errorf("scram: %w", err)
}

// authenticate runs the SASL exchange of RFC 6120 §6.4 with neg, whose
// mechanism is mech. A <failure/> is returned as an *AuthError; anything the
// client refuses is sent an <abort/> while the exchange is still open.
func (c *Client) authenticate(sr *xmpp.Reader, mech string, neg *sasl.Negotiator) error {
	more, initial, err := neg.Step(nil)
	if err != nil {
		return fmt.Errorf("sasl %s: %w", mech, err)
	}
	enc := "=" // RFC 6120 §6.4.2: an empty initial response
	if len(initial) > 0 {
		enc = base64.StdEncoding.EncodeToString(initial)
	}
	if err := c.write("<auth xmlns='" + xmpp.NSSASL + "' mechanism='" + xmltext.Escape(mech) + "'>" + enc + "</auth>"); err != nil {
		return err
	}
	for {
		el, err := c.loginNext(sr)
		if err != nil {
			return err
		}
		if el.Name.Space != xmpp.NSSASL {
			return fmt.Errorf("sasl: unexpected <%s>", el.Name.Local)
		}
		if el.Name.Local == "failure" {
			return parseAuthFailure(mech, el.Inner)
		}
		if el.Name.Local != "challenge" && el.Name.Local != "success" {
			return fmt.Errorf("sasl: unexpected <%s>", el.Name.Local)
		}
		text := strings.TrimSpace(string(el.Inner))
		var data []byte
		if text != "" && text != "=" {
			if data, err = base64.StdEncoding.DecodeString(text); err != nil {
				return fmt.Errorf("sasl %s: bad base64 in <%s>", mech, el.Name.Local)
			}
		}
		if el.Name.Local == "success" {
			switch {
			case more && len(data) == 0:
				// SCRAM without its server-final-message.
				return fmt.Errorf("sasl %s: <success/> before the exchange finished: %w", mech, ErrServerSignature)
			case more:
				// RFC 6120 §6.3.10: the server-final-message comes with success.
				if more, _, err = step(neg, mech, data); err != nil {
					return fmt.Errorf("sasl %s: %w", mech, err)
				}
				if more {
					return fmt.Errorf("sasl %s: <success/> before the exchange finished", mech)
				}
			case len(data) > 0:
				return fmt.Errorf("sasl %s: unexpected data with <success/>", mech)
			}
			return nil
		}
		if !more {
			c.abortAuth()
			return fmt.Errorf("sasl %s: unexpected challenge", mech)
		}
		var resp []byte
		if more, resp, err = step(neg, mech, data); err != nil {
			c.abortAuth()
			return fmt.Errorf("sasl %s: %w", mech, err)
		}
		if err := c.write("<response xmlns='" + xmpp.NSSASL + "'>" + base64.StdEncoding.EncodeToString(resp) + "</response>"); err != nil {
			return err
		}
	}
}

func (c *Client) abortAuth() { _ = c.write("<abort xmlns='" + xmpp.NSSASL + "'/>") }
