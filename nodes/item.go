package nodes

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/pubpresence/pubpresence/internal/xmltext"
	"github.com/pubpresence/pubpresence/internal/xmpp"
	"github.com/pubpresence/pubpresence/presence"
	"github.com/pubpresence/pubpresence/pubsub"
)

// NSUser is the namespace of the <user/> payload.
const NSUser = "urn:pubpresence:0"

// StatusField is the data form field that carries the service state.
const StatusField = "pubpresence#status"

// StatusItemID is the id of the one item on the status node.
const StatusItemID = "current"

// itemSinceLayout is XEP-0082 DateTime in UTC with whole seconds.
const itemSinceLayout = "2006-01-02T15:04:05Z"

// AppendUser appends the <user/> payload for c (no <item> wrapper) to b:
//
//	<user xmlns='urn:pubpresence:0' status='away' name='alice@example.org'
//	  fulljid='alice@example.org/laptop' ip='203.0.113.7' priority='5'
//	  since='2026-11-21T09:00:00Z' idle='2026-11-21T08:55:00Z'><text>At lunch</text></user>
//
// ip is left out when c.IP is empty or !withIP; priority is always written;
// since is left out when c.Since is zero (or outside years 0–9999), else
// written in UTC with whole seconds, and so is idle, right after it, for
// c.Idle; <text> only when c.Text is not empty (<user …/> otherwise).
// Values are escaped like xml.EscapeText, and characters XML cannot carry
// become U+FFFD, so the output is always well-formed.
func AppendUser(b []byte, c presence.Conn, withIP bool) []byte {
	b = append(b, "<user xmlns='"+NSUser+"' status='"...)
	b = xmltext.Append(b, string(c.Show))
	b = append(b, "' name='"...)
	b = xmltext.Append(b, c.Bare())
	b = append(b, "' fulljid='"...)
	b = xmltext.Append(b, c.JID)
	if withIP && c.IP != "" {
		b = append(b, "' ip='"...)
		b = xmltext.Append(b, c.IP)
	}
	b = append(b, "' priority='"...)
	b = strconv.AppendInt(b, int64(c.Priority), 10)
	if !c.Since.IsZero() {
		b = appendTimeAttr(b, "' since='", c.Since)
	}
	if !c.Idle.IsZero() {
		b = appendTimeAttr(b, "' idle='", c.Idle)
	}
	if c.Text == "" {
		return append(b, "'/>"...)
	}
	b = append(b, "'><text>"...)
	b = xmltext.Append(b, c.Text)
	return append(b, "</text></user>"...)
}

// The times an item can carry: years 0–9999 in UTC (XEP-0082).
var (
	itemTimeMin = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)
	itemTimeEnd = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
)

// appendTimeAttr appends prefix (the previous attribute's closing quote
// and the attribute's name) and t in UTC with whole seconds, unless t is
// outside years 0–9999. The bounds are compared as instants: working out
// t's year costs as much as writing it.
func appendTimeAttr(b []byte, prefix string, t time.Time) []byte {
	if t.Before(itemTimeMin) || !t.Before(itemTimeEnd) {
		return b
	}
	b = append(b, prefix...)
	return appendSince(b, t.UTC())
}

// appendSince appends t, in UTC and within years 0–9999, as
// t.AppendFormat(b, itemSinceLayout) does, in a tenth of the time: it is
// written twice per presence change.
func appendSince(b []byte, t time.Time) []byte {
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	b = append(b, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-')
	b = append(b, byte('0'+mo/10), byte('0'+mo%10), '-', byte('0'+d/10), byte('0'+d%10), 'T')
	b = append(b, byte('0'+h/10), byte('0'+h%10), ':', byte('0'+mi/10), byte('0'+mi%10), ':')
	return append(b, byte('0'+s/10), byte('0'+s%10), 'Z')
}

// PublishUserRequest appends the <pubsub/> payload that publishes c's
// <user/> item, encoded in place.
func PublishUserRequest(b []byte, node string, c presence.Conn, withIP bool) []byte {
	b = pubsub.PublishOpen(b, node, c.JID)
	b = AppendUser(b, c, withIP)
	return pubsub.PublishClose(b)
}

// itemUserSpace reports whether a <user/> in space is one ParseUser reads:
// NSUser, or none or a pubsub namespace, as the original publishers sent it
// without one and Prosody then delivers it in the pubsub namespace.
func itemUserSpace(space string) bool {
	switch space {
	case NSUser, "", pubsub.NS, pubsub.NSEvent:
		return true
	}
	return false
}

// ParseUser reads a <user/> payload back, as found inside an <item/> fetched
// from presence/actual or delivered on presence/live. It also reads the
// original form (<user status ip name fulljid/>, no priority, since or text,
// in no namespace or the pubsub one). The JID is normalised; name is not
// read, as it follows from fulljid. A priority out of range is clamped and
// one that is not a number, like an unreadable since or idle, is left at
// zero.
//
// It fails for anything that is not a <user/> element in one of those
// namespaces, for a missing or invalid fulljid (one without a resource
// included), and for a status other than the six of presence.Show.
func ParseUser(payload []byte) (presence.Conn, error) {
	d := xml.NewDecoder(bytes.NewReader(payload))
	se, err := itemRoot(d)
	if err != nil {
		return presence.Conn{}, fmt.Errorf("user item: %w", err)
	}
	if se.Name.Local != "user" || !itemUserSpace(se.Name.Space) {
		return presence.Conn{}, fmt.Errorf("user item: <%s xmlns='%s'> is not a <user/>", itemClip(se.Name.Local), itemClip(se.Name.Space))
	}
	var c presence.Conn
	var fulljid, status string
	haveJID, haveStatus := false, false
	for _, a := range se.Attr {
		if a.Name.Space != "" {
			continue
		}
		switch a.Name.Local {
		case "fulljid":
			fulljid, haveJID = a.Value, true
		case "status":
			status, haveStatus = a.Value, true
		case "ip":
			c.IP = a.Value
		case "priority":
			c.Priority = itemPriority(a.Value)
		case "since":
			if t, ok := itemTime(a.Value); ok {
				c.Since = t
			}
		case "idle":
			if t, ok := itemTime(a.Value); ok {
				c.Idle = t
			}
		}
	}
	if !haveJID {
		return presence.Conn{}, errors.New("user item: no fulljid")
	}
	j, err := presence.ParseJID(fulljid)
	if err != nil {
		return presence.Conn{}, fmt.Errorf("user item: fulljid: %w", err)
	}
	if j.Resource == "" {
		return presence.Conn{}, fmt.Errorf("user item: fulljid %q has no resource", itemClip(fulljid))
	}
	c.JID = j.Full()
	c.Show = presence.Show(status)
	if !haveStatus || !c.Show.Valid() {
		return presence.Conn{}, fmt.Errorf("user item %s: status %q", c.JID, itemClip(status))
	}
	// Children: the first <text/> in the user's namespace.
	haveText := false
	for {
		tok, err := d.Token()
		if err != nil {
			return presence.Conn{}, fmt.Errorf("user item %s: %w", c.JID, itemEOF(err))
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name.Local != "text" || t.Name.Space != se.Name.Space || haveText {
				if err := d.Skip(); err != nil {
					return presence.Conn{}, fmt.Errorf("user item %s: %w", c.JID, itemEOF(err))
				}
				continue
			}
			haveText = true
			if c.Text, err = itemText(d); err != nil {
				return presence.Conn{}, fmt.Errorf("user item %s: %w", c.JID, err)
			}
		case xml.EndElement:
			return c, nil
		}
	}
}

// itemTime reads a since or idle attribute: RFC 3339, returned in UTC. It
// reports false when v does not parse.
func itemTime(v string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(v))
	if err != nil {
		return time.Time{}, false
	}
	return t.UTC(), true
}

// itemPriority reads a priority attribute: clamped to −128…127, 0 when it
// is not a number.
func itemPriority(v string) int {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	switch {
	case err != nil && errors.Is(err, strconv.ErrRange) && strings.HasPrefix(strings.TrimSpace(v), "-"):
		return -128
	case err != nil && errors.Is(err, strconv.ErrRange):
		return 127
	case err != nil:
		return 0
	}
	return max(-128, min(127, n))
}

// AppendStatus appends the status form (docs/protocol.md) for state ("init" or
// "online") to b:
//
//	<x xmlns='jabber:x:data' type='result'><field var='pubpresence#status'><value>online</value></field></x>
func AppendStatus(b []byte, state string) []byte {
	return xmpp.AppendForm(b, "result", "", xmpp.FieldValue{Var: StatusField, Value: state})
}

// ParseStatus returns the value of the pubpresence#status field of a status
// form (white space around it trimmed). It fails when payload is not a
// jabber:x:data form or has no such field.
func ParseStatus(payload []byte) (string, error) {
	form, err := xmpp.ParseForm(payload)
	if err != nil {
		return "", fmt.Errorf("status item: %w", err)
	}
	if form.Field(StatusField) == nil {
		return "", errors.New("status item: no " + StatusField + " field")
	}
	v, ok := form.Value(StatusField)
	if !ok {
		return "", errors.New("status item: " + StatusField + " has no value")
	}
	return strings.TrimSpace(v), nil
}

// itemRoot returns the first element of a payload, skipping white space,
// comments and processing instructions before it.
func itemRoot(d *xml.Decoder) (xml.StartElement, error) {
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return xml.StartElement{}, errors.New("no element")
		}
		if err != nil {
			return xml.StartElement{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return t, nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return xml.StartElement{}, errors.New("text before the element")
			}
		}
	}
}

// itemText returns the character data of the element just opened (that of
// child elements left out) and consumes its end.
func itemText(d *xml.Decoder) (string, error) {
	var b []byte
	for {
		tok, err := d.Token()
		if err != nil {
			return "", itemEOF(err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			b = append(b, t...)
		case xml.StartElement:
			if err := d.Skip(); err != nil {
				return "", itemEOF(err)
			}
		case xml.EndElement:
			return string(b), nil
		}
	}
}

// itemEOF turns the end of input inside an element into an error that says so.
func itemEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// itemClip shortens s for an error message.
func itemClip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return strings.ToValidUTF8(s[:max], "") + "…"
}
