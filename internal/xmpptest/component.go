package xmpptest

import (
	"github.com/pubpresence/pubpresence/internal/xmltext"

	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/pubpresence/pubpresence/internal/xmpp"
)

// answerHeader returns the server's stream header in answer to the peer's
// attrs: Prosody 0.12's for a component (XEP-0114), a client server's
// (RFC 6120 §4.7) otherwise.
func (c *Conn) answerHeader(attrs map[string]string) string {
	if name := c.srv.cfg.Name; name != "" {
		return "<?xml version='1.0'?><stream:stream id='" + c.id + "' xmlns='" + xmpp.NSComponent +
			"' xmlns:stream='" + xmpp.NSStream + "' xml:lang='en' from='" + xmltext.Escape(name) + "'>"
	}
	return "<?xml version='1.0'?><stream:stream xmlns='" + xmpp.NSClient + "' xmlns:stream='" + xmpp.NSStream +
		"' id='" + c.id + "' from='" + xmltext.Escape(attrs["to"]) + "' version='1.0'>"
}

// acceptComponent plays the server's side of a component's stream open
// and handshake (XEP-0114 §3) as Prosody 0.12 does, with Config.Mode. ok
// says whether the stream is authenticated; err why not, when the fake
// itself did not mean to refuse it.
func (c *Conn) acceptComponent() (ok bool, err error) {
	cfg := &c.srv.cfg
	attrs, err := c.ReadHeader()
	if err != nil {
		return false, err
	}
	if cfg.Mode == ModeNoHeader {
		c.discard() // hold the connection open
		return false, nil
	}
	if to := attrs["to"]; to != cfg.Name {
		// Prosody: a header with version='1.0' and id='', then the error, at once.
		_ = c.Write("<?xml version='1.0'?><stream:stream xmlns='" + xmpp.NSComponent + "' xmlns:stream='" + xmpp.NSStream +
			"' version='1.0' id='' from='" + xmltext.Escape(to) + "'>" +
			StreamError("host-unknown", to+" does not match any configured external components") + "</stream:stream>")
		return false, fmt.Errorf("xmpptest: the component %q is not %q", to, cfg.Name)
	}
	if err := c.Write(c.header); err != nil {
		return false, err
	}
	hs, err := c.Read()
	if err != nil {
		return false, err
	}
	if !hs.Is("handshake") || hs.Name().Space != xmpp.NSComponent {
		_ = c.Write(StreamError("not-authorized", "expected a handshake") + "</stream:stream>")
		return false, fmt.Errorf("xmpptest: %s where the handshake was expected", hs.Raw)
	}
	if cfg.Mode == ModeNoHandshakeAnswer {
		c.discard()
		return false, nil
	}
	sum := sha1.Sum([]byte(c.id + cfg.Secret))
	if !strings.EqualFold(strings.TrimSpace(string(hs.Inner)), hex.EncodeToString(sum[:])) {
		_ = c.Write(StreamError("not-authorized", "Given token does not match calculated token") + "</stream:stream>")
		return false, errors.New("xmpptest: wrong handshake token")
	}
	if cfg.Mode == ModeConflict {
		_ = c.Write(StreamError("conflict", "Component already connected") + "</stream:stream>")
		return false, nil
	}
	if err := c.Write("<handshake/>" + cfg.AfterHandshake); err != nil {
		return false, err
	}
	c.srv.authed.Add(1)
	return true, nil
}

// discard reads and drops everything until the connection ends.
func (c *Conn) discard() {
	c.r.pos, c.r.buf = 0, c.r.buf[:0]
	_, _ = io.Copy(io.Discard, c.NetConn())
}
