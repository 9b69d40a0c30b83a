package xmpptest

import (
	"github.com/pubpresence/pubpresence/internal/xmltext"

	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"

	"github.com/pubpresence/pubpresence/internal/xmpp"
)

// The steps of a client stream (RFC 6120), for Scripts. Each reports a
// failure to the test (Errorf) and goes on as well as it can: a script runs
// outside the test's goroutine.

// Open reads the client's stream header and answers with the server's and
// the stream features features (RFC 6120 §4.3.2). It opens every restart
// of the stream too (after STARTTLS and after SASL).
func (c *Conn) Open(features string) {
	if _, err := c.ReadHeader(); err != nil {
		c.tb.Errorf("xmpptest: the client's stream header: %v", err)
		return
	}
	c.Send(c.header + "<stream:features>" + features + "</stream:features>")
}

// StartTLS plays the server's side of STARTTLS (RFC 6120 §5): it opens
// the stream offering features, expects <starttls/> as the client's first
// element, answers <proceed/> and runs the handshake with cfg. It reports
// whether the handshake succeeded; the connection is then over TLS.
func (c *Conn) StartTLS(features string, cfg *tls.Config) bool {
	c.Open(features)
	el := c.Recv()
	if el.Name().Space != xmpp.NSTLS || !el.Is("starttls") {
		c.tb.Errorf("xmpptest: first element %q, want <starttls/>", el.Raw)
		return false
	}
	c.Send("<proceed xmlns='" + xmpp.NSTLS + "'/>")
	if rest := c.r.buf[c.r.pos:]; len(rest) > 0 {
		c.tb.Errorf("xmpptest: the client sent %q before <proceed/>", rest)
		return false
	}
	tc := tls.Server(c.NetConn(), cfg)
	if err := tc.Handshake(); err != nil {
		return false // the client's to judge: tests check its error
	}
	c.wmu.Lock()
	c.nc = tc
	c.wmu.Unlock()
	c.r = reader{src: tc, buf: c.r.buf[:0]}
	return true
}

// Bind plays resource binding (RFC 6120 §7) after a successful SASL
// exchange: it opens the restarted stream offering it, reads the request
// and binds jid.
func (c *Conn) Bind(jid string) {
	c.Open("<bind xmlns='" + xmpp.NSBind + "'/>")
	b := c.Recv()
	c.Send("<iq type='result' id='" + xmltext.Escape(b.Attr("id")) + "'><bind xmlns='" + xmpp.NSBind + "'><jid>" +
		xmltext.Escape(jid) + "</jid></bind></iq>")
}

// The SASL answers (RFC 6120 §6.4). A refusal says "bad".
const (
	saslSuccess = "<success xmlns='" + xmpp.NSSASL + "'/>"
	saslBad     = "<failure xmlns='" + xmpp.NSSASL + "'><not-authorized/><text>bad</text></failure>"
)

// challenge returns a SASL <challenge/> carrying s.
func challenge(s string) string {
	return "<challenge xmlns='" + xmpp.NSSASL + "'>" + base64.StdEncoding.EncodeToString([]byte(s)) + "</challenge>"
}

// Auth reads the client's <auth/> and answers it; see AnswerAuth.
func (c *Conn) Auth(s *SASL) bool { return c.AnswerAuth(c.Recv(), s) }

// AnswerAuth plays the server's side of the exchange that the <auth/> el
// opens, for the account s: PLAIN, or SCRAM, whose server-final-message
// comes with <success/>. It reports whether it sent <success/>; a wrong
// password gets <failure/> with the text "bad".
func (c *Conn) AnswerAuth(el *Element, s *SASL) bool {
	if !el.Is("auth") {
		c.tb.Errorf("xmpptest: got %q, want <auth/>", el.Raw)
		return false
	}
	mech := el.Attr("mechanism")
	data := c.unbase64(el)
	s.Mechanism = mech
	if mech == "PLAIN" {
		parts := strings.SplitN(data, "\x00", 3)
		if len(parts) == 3 {
			s.Authcid = parts[1]
		}
		if data != "\x00"+s.User+"\x00"+s.Password {
			c.Send(saslBad)
			return false
		}
		c.Send(saslSuccess)
		return true
	}
	sf, err := s.SCRAMFirst(mech, data)
	if err != nil {
		c.tb.Errorf("xmpptest: %v", err)
		c.Send(saslBad)
		return false
	}
	c.Send(challenge(sf))
	resp := c.Recv()
	if !resp.Is("response") {
		c.tb.Errorf("xmpptest: got %q, want <response/>", resp.Raw)
		return false
	}
	final, err := s.SCRAMFinal(c.unbase64(resp))
	if err != nil {
		c.Send(saslBad)
		return false
	}
	c.Send("<success xmlns='" + xmpp.NSSASL + "'>" + base64.StdEncoding.EncodeToString([]byte(final)) + "</success>")
	return true
}

// unbase64 decodes the content of a SASL element.
func (c *Conn) unbase64(el *Element) string {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(el.Inner)))
	if err != nil {
		c.tb.Errorf("xmpptest: <%s> %q: %v", el.Name().Local, el.Inner, err)
	}
	return string(b)
}

// SASL is the server's side of SASL for one account: PLAIN (RFC 4616) and
// SCRAM (RFC 5802 §3 and §5; SHA-256 from RFC 7677), -PLUS with
// tls-exporter (RFC 9266) included. SCRAM is written from the RFCs, not
// with a SASL library, so that it checks the client's: a proof it accepts
// is one a real server accepts. It serves one exchange at a time.
type SASL struct {
	User           string // PLAIN checks it; SCRAM takes any user name
	Password       string // as the server stores it, already prepared
	Iterations     int    // SCRAM's iteration count; 0 means 4096
	ChannelBinding []byte // the channel-binding data a "p=" client must send

	// What the exchange saw.
	Mechanism string
	Authcid   string // the user name the client sent (unescaped)
	GS2       string // SCRAM's GS2 header: "n,," or "p=tls-exporter,,"

	clientBare  string
	serverFirst string
	nonce       string
	salt        []byte
}

func (s *SASL) hash() func() hash.Hash {
	if strings.HasPrefix(s.Mechanism, "SCRAM-SHA-256") {
		return sha256.New
	}
	return sha1.New
}

func (s *SASL) mac(key []byte, msg string) []byte {
	h := hmac.New(s.hash(), key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

// scramAttrs splits a SCRAM message into its attributes.
func scramAttrs(msg string) map[byte]string {
	m := map[byte]string{}
	for _, f := range strings.Split(msg, ",") {
		if len(f) >= 2 && f[1] == '=' {
			m[f[0]] = f[2:]
		}
	}
	return m
}

// SCRAMFirst reads the client-first-message of mechanism mech and returns
// the server-first-message.
func (s *SASL) SCRAMFirst(mech, clientFirst string) (string, error) {
	s.Mechanism = mech
	parts := strings.SplitN(clientFirst, ",", 3)
	if len(parts) != 3 {
		return "", fmt.Errorf("client-first %q", clientFirst)
	}
	s.GS2, s.clientBare = parts[0]+","+parts[1]+",", parts[2]
	a := scramAttrs(s.clientBare)
	s.Authcid = strings.NewReplacer("=2C", ",", "=3D", "=").Replace(a['n'])
	if a['r'] == "" {
		return "", fmt.Errorf("client-first %q: no nonce", clientFirst)
	}
	if s.Iterations == 0 {
		s.Iterations = 4096
	}
	s.nonce = a['r'] + "fake-server-nonce"
	s.salt = []byte("salt of the fake")
	s.serverFirst = "r=" + s.nonce + ",s=" + base64.StdEncoding.EncodeToString(s.salt) + ",i=" + strconv.Itoa(s.Iterations)
	return s.serverFirst, nil
}

// SCRAMFinal checks the client-final-message and returns the
// server-final-message.
func (s *SASL) SCRAMFinal(clientFinal string) (string, error) {
	withoutProof, proof64, ok := strings.Cut(clientFinal, ",p=")
	if !ok {
		return "", fmt.Errorf("client-final %q: no proof", clientFinal)
	}
	a := scramAttrs(withoutProof)
	cb := s.GS2
	if strings.HasPrefix(s.GS2, "p=") {
		cb += string(s.ChannelBinding)
	}
	if a['c'] != base64.StdEncoding.EncodeToString([]byte(cb)) {
		return "", fmt.Errorf("channel binding c=%s, want base64 of %q", a['c'], cb)
	}
	if a['r'] != s.nonce {
		return "", fmt.Errorf("nonce %q, want %q", a['r'], s.nonce)
	}
	h := s.hash()
	salted, err := pbkdf2.Key(h, s.Password, s.salt, s.Iterations, h().Size())
	if err != nil {
		return "", err
	}
	authMsg := s.clientBare + "," + s.serverFirst + "," + withoutProof
	hc := h()
	hc.Write(s.mac(salted, "Client Key"))
	stored := hc.Sum(nil)
	proof, err := base64.StdEncoding.DecodeString(proof64)
	if err != nil || len(proof) != len(stored) {
		return "", fmt.Errorf("proof %q", proof64)
	}
	sig := s.mac(stored, authMsg)
	for i := range proof {
		proof[i] ^= sig[i]
	}
	hc.Reset()
	hc.Write(proof)
	if !hmac.Equal(hc.Sum(nil), stored) {
		return "", errors.New("wrong proof")
	}
	return "v=" + base64.StdEncoding.EncodeToString(s.mac(s.mac(salted, "Server Key"), authMsg)), nil
}
