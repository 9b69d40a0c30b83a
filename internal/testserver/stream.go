package testserver

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/pubpresence/pubpresence/internal/xmpp"
)

// componentConn is a minimal XEP-0114 component stream for the harness's own
// admin commands. It is not safe for concurrent reads.
type componentConn struct {
	conn net.Conn
	dec  *xml.Decoder
	name string
}

// dialComponent connects to addr and authenticates as component name with
// secret. timeout bounds the whole handshake.
func dialComponent(addr, name, secret string, timeout time.Duration) (*componentConn, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, fmt.Errorf("component %s: %w", name, err)
	}
	c := &componentConn{conn: conn, dec: xml.NewDecoder(conn), name: name}
	if err := c.handshake(secret, timeout); err != nil {
		conn.Close()
		return nil, fmt.Errorf("component %s: %w", name, err)
	}
	return c, nil
}

func (c *componentConn) handshake(secret string, timeout time.Duration) error {
	if err := c.conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	header := fmt.Sprintf("<?xml version='1.0'?><stream:stream xmlns='%s' xmlns:stream='%s' to='%s'>",
		xmpp.NSComponent, xmpp.NSStream, xmlEscape(c.name))
	if _, err := io.WriteString(c.conn, header); err != nil {
		return fmt.Errorf("send stream header: %w", err)
	}
	id, err := c.readStreamHeader()
	if err != nil {
		return err
	}
	sum := sha1.Sum([]byte(id + secret))
	if _, err := fmt.Fprintf(c.conn, "<handshake>%s</handshake>", hex.EncodeToString(sum[:])); err != nil {
		return fmt.Errorf("send handshake: %w", err)
	}
	start, err := c.nextElement()
	if err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	if start.Name.Local != "handshake" {
		return fmt.Errorf("handshake: got <%s/>", start.Name.Local)
	}
	if err := c.dec.Skip(); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	return c.conn.SetDeadline(time.Time{})
}

// readStreamHeader reads up to the server's <stream:stream> and returns its id.
func (c *componentConn) readStreamHeader() (string, error) {
	for {
		tok, err := c.dec.Token()
		if err != nil {
			return "", fmt.Errorf("read stream header: %w", err)
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if start.Name.Space != xmpp.NSStream || start.Name.Local != "stream" {
			return "", fmt.Errorf("read stream header: got <%s/>", start.Name.Local)
		}
		for _, a := range start.Attr {
			if a.Name.Local == "id" && a.Name.Space == "" {
				return a.Value, nil
			}
		}
		return "", errors.New("read stream header: no id")
	}
}

// nextElement returns the start of the next top-level element. A stream
// error or the end of the stream is returned as an error. The caller must
// consume the element (DecodeElement or Skip).
func (c *componentConn) nextElement() (xml.StartElement, error) {
	for {
		tok, err := c.dec.Token()
		if err != nil {
			return xml.StartElement{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name.Space == xmpp.NSStream && t.Name.Local == "error" {
				var se struct {
					Inner []byte `xml:",innerxml"`
				}
				if err := c.dec.DecodeElement(&se, &t); err != nil {
					return xml.StartElement{}, fmt.Errorf("read stream error: %w", err)
				}
				return xml.StartElement{}, xmpp.ParseStreamError(se.Inner)
			}
			return t, nil
		case xml.EndElement:
			return xml.StartElement{}, fmt.Errorf("server closed the stream: %w", io.EOF)
		}
	}
}

// close ends the stream and the connection.
func (c *componentConn) close() {
	_ = c.conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c.conn, "</stream:stream>"); err == nil {
		// Wait for the server to end its side: ejabberd accepts several
		// streams for one component name and spreads stanzas over them, so
		// the next connection must not start while this one is still
		// registered.
		_, _ = io.Copy(io.Discard, c.conn)
	}
	c.conn.Close()
}

func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
