package nodes

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pubpresence/pubpresence/internal/xmltext"
	"github.com/pubpresence/pubpresence/presence"
)

// FuzzParseUser checks that ParseUser never panics and that what it accepts
// is a usable connection that encodes and reads back the same.
func FuzzParseUser(f *testing.F) {
	for _, s := range []string{
		`<user xmlns='urn:pubpresence:0' status='away' name='alice@example.org' fulljid='alice@example.org/laptop' ip='203.0.113.7' priority='5' since='2026-11-21T09:00:00Z'><text>At lunch</text></user>`,
		`<user status='online' ip='ip_addr' name='name@domain' fulljid='name@domain/resource'/>`,
		`<user xmlns='http://jabber.org/protocol/pubsub' status='dnd' fulljid='a@b/c' priority='-200'/>`,
		`<user xmlns='urn:pubpresence:0' status='xa' fulljid='A@B/c&amp;d'><x><text>n</text></x><text>t&#x9;</text></user>`,
		`<x xmlns='jabber:x:data' type='result'><field var='pubpresence#status'><value>online</value></field></x>`,
		`<user status='online' fulljid='a@b/c' since='0000-01-01T00:00:00Z'/>`,
		`<user xmlns='urn:pubpresence:0' status='away' fulljid='a@b/c' since='2026-11-21T09:00:00Z' idle='2026-11-21T10:55:00.5+02:00'/>`,
		`<user status='xa' fulljid='a@b/c' idle='0000-01-01T00:30:00+01:00' since='x'/>`,
		`<user`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		c, err := ParseUser(payload)
		if err != nil {
			return
		}
		if !c.Show.Valid() {
			t.Fatalf("Show %q", c.Show)
		}
		if c.Priority < -128 || c.Priority > 127 {
			t.Fatalf("Priority %d", c.Priority)
		}
		j, err := presence.ParseJID(c.JID)
		if err != nil || j.Full() != c.JID || j.Resource == "" {
			t.Fatalf("JID %q not a normalised full JID: %v", c.JID, err)
		}
		if c.Since.Location() != time.UTC || c.Idle.Location() != time.UTC {
			t.Fatalf("Since %v or Idle %v not UTC", c.Since, c.Idle)
		}
		// Whatever was read encodes to well-formed XML and reads back the same
		// (Since and Idle to the second).
		b := AppendUser(nil, c, true)
		itemWellFormed(t, b)
		back, err := ParseUser(b)
		if err != nil {
			t.Fatalf("ParseUser(AppendUser(%+v)): %v", c, err)
		}
		want := c
		want.Since = itemSinceEncoded(c.Since)
		want.Idle = itemSinceEncoded(c.Idle)
		if back != want {
			t.Fatalf("re-encoded:\n got %+v\nwant %+v", back, want)
		}
	})
}

// itemSinceEncoded is t, a since or an idle, as AppendUser writes it and
// ParseUser reads it.
func itemSinceEncoded(t time.Time) time.Time {
	if t.IsZero() || t.UTC().Year() < 0 || t.UTC().Year() > 9999 {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Second)
}

// FuzzAppendUser checks that AppendUser always writes one well-formed
// element and that ParseUser gives back an equal connection for valid input.
func FuzzAppendUser(f *testing.F) {
	f.Add("alice@example.org/laptop", "away", "At lunch", 5, "203.0.113.7", int64(1795251600), int64(1795251300), true)
	f.Add("a@b/c&d<e>'f\"", "online", "x\x00y\xff\r\n\t", -128, "", int64(0), int64(0), false)
	f.Add("zoë@exämple.org/☺", "offline", "\uFFFE\U0010FFFF", 127, "::1", int64(-62135596800), int64(-62167219200), true)
	f.Add("", "", "", 1000, "<ip>", int64(253402300800), int64(-62167219201), true)
	f.Fuzz(func(t *testing.T, jid, show, text string, prio int, ip string, since, idle int64, withIP bool) {
		var ts, ti time.Time
		if since != 0 {
			ts = time.Unix(since, 0)
		}
		if idle != 0 {
			ti = time.Unix(idle, 0)
		}
		c := presence.Conn{JID: jid, Show: presence.Show(show), Text: text, Priority: prio, IP: ip, Since: ts, Idle: ti}
		b := AppendUser(nil, c, withIP)
		itemWellFormed(t, b)
		if !itemValidConn(c) {
			return
		}
		got, err := ParseUser(b)
		if err != nil {
			t.Fatalf("ParseUser(%s): %v", b, err)
		}
		want := c
		want.Since = itemSinceEncoded(c.Since)
		want.Idle = itemSinceEncoded(c.Idle)
		if !withIP {
			want.IP = ""
		}
		if got != want {
			t.Fatalf("round trip:\n got %+v\nwant %+v\n via %s", got, want, b)
		}
	})
}

// itemValidConn reports whether c is a connection the service could hold:
// a normalised full JID, one of the six shows, a priority in range and
// strings XML can carry.
func itemValidConn(c presence.Conn) bool {
	j, err := presence.ParseJID(c.JID)
	if err != nil || j.Full() != c.JID || j.Resource == "" || !c.Show.Valid() || c.Priority < -128 || c.Priority > 127 {
		return false
	}
	return xmlCarries(c.JID) && xmlCarries(c.Text) && xmlCarries(c.IP)
}

// FuzzParseStatus checks that ParseStatus never panics, fails with "",
// returns a trimmed value that AppendStatus writes back the same, and that
// AppendStatus of any text XML can carry reads back trimmed.
func FuzzParseStatus(f *testing.F) {
	for _, s := range []string{
		`<x xmlns='jabber:x:data' type='result'><field var='pubpresence#status'><value>online</value></field></x>`,
		`<x xmlns="jabber:x:data" type="result"><field var="FORM_TYPE" type="hidden"><value>urn:xmpp:pubpresence:status</value></field><field var="pubpresence#status"><value>init</value></field></x>`,
		`<x xmlns='jabber:x:data' type='form'><field var='pubpresence#status'><value> online </value><value>init</value></field></x>`,
		`<x xmlns='jabber:x:data'><field var='pubpresence#status'/></x>`,
		`<x xmlns='jabber:x:data'><field var='other'><value>online</value></field></x>`,
		`<x xmlns='urn:other'><field var='pubpresence#status'><value>online</value></field></x>`,
		`<user xmlns='urn:pubpresence:0' status='online' fulljid='a@b/c'/>`,
		`<x xmlns='jabber:x:data'><field var='pubpresence#status'><value>on<b>x</b>line&amp;</value>`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		s, err := ParseStatus(payload)
		if err != nil {
			if s != "" {
				t.Fatalf("status %q with error %v", s, err)
			}
		} else {
			if s != strings.TrimSpace(s) {
				t.Fatalf("status %q not trimmed", s)
			}
			if back, err := ParseStatus(AppendStatus(nil, s)); err != nil || back != s {
				t.Fatalf("status %q reads back as %q, %v", s, back, err)
			}
		}
		// The other way round: any text as the state.
		text := string(payload)
		form := AppendStatus(nil, text)
		if err := wellFormed(form); err != nil {
			t.Fatalf("AppendStatus(%q) = %s: %v", text, form, err)
		}
		if !xmlCarries(text) {
			return
		}
		if back, err := ParseStatus(form); err != nil || back != strings.TrimSpace(text) {
			t.Fatalf("AppendStatus(%q) reads back as %q, %v", text, back, err)
		}
	})
}

// wellFormed reports an error when b is not well-formed XML.
func wellFormed(b []byte) error {
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		if _, err := d.Token(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// xmlCarries reports whether every character of s can be written in XML.
func xmlCarries(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !xmltext.IsChar(r) {
			return false
		}
	}
	return true
}
