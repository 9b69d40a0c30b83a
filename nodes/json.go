package nodes

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/pubpresence/pubpresence/internal/xmpp"
	"github.com/pubpresence/pubpresence/presence"
)

// AppendJSON appends the JSON object of the HTTP API (docs/http.md) for c
// to b: the fields of the <user/> item (AppendUser) under the same names,
// in the same order, left out in the same cases:
//
//	{"fulljid":"alice@example.org/laptop","name":"alice@example.org",
//	 "status":"away","text":"At lunch","priority":5,"ip":"203.0.113.7",
//	 "since":"2026-11-21T09:00:00Z","idle":"2026-11-21T08:55:00Z"}
//
// Strings are escaped as encoding/json does (with <, > and & as \u003c…),
// invalid UTF-8 becomes U+FFFD, so the output is always valid JSON on one
// line: it can be an SSE data line as it is.
func AppendJSON(b []byte, c presence.Conn, withIP bool) []byte {
	b = append(b, `{"fulljid":`...)
	b = appendJSONString(b, c.JID)
	b = append(b, `,"name":`...)
	b = appendJSONString(b, c.Bare())
	b = append(b, `,"status":`...)
	b = appendJSONString(b, string(c.Show))
	if c.Text != "" {
		b = append(b, `,"text":`...)
		b = appendJSONString(b, c.Text)
	}
	b = append(b, `,"priority":`...)
	b = strconv.AppendInt(b, int64(c.Priority), 10)
	if withIP && c.IP != "" {
		b = append(b, `,"ip":`...)
		b = appendJSONString(b, c.IP)
	}
	b = appendJSONTime(b, `,"since":"`, c.Since)
	b = appendJSONTime(b, `,"idle":"`, c.Idle)
	return append(b, '}')
}

// appendJSONTime appends prefix, t as an item's time attribute and a
// closing quote, unless t is zero or outside years 0–9999.
func appendJSONTime(b []byte, prefix string, t time.Time) []byte {
	if t.IsZero() || t.Before(itemTimeMin) || !t.Before(itemTimeEnd) {
		return b
	}
	b = append(b, prefix...)
	return append(appendSince(b, t.UTC()), '"')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// jsonConn is the JSON object of AppendJSON as ParseJSON reads it.
type jsonConn struct {
	FullJID  string `json:"fulljid"`
	Name     string `json:"name"`
	Status   string `json:"status"`
	Text     string `json:"text"`
	Priority *int   `json:"priority"`
	IP       string `json:"ip"`
	Since    string `json:"since"`
	Idle     string `json:"idle"`
}

// ParseJSON reads one connection object of the HTTP API (AppendJSON). The
// full JID must have a resource and a valid status; name, when given, must
// be its bare part. An unreadable since or idle is an error here (the
// service writes them), unlike in ParseUser, which reads other writers too.
func ParseJSON(data []byte) (presence.Conn, error) {
	var j jsonConn
	if err := json.Unmarshal(data, &j); err != nil {
		return presence.Conn{}, fmt.Errorf("connection object: %w", err)
	}
	return j.conn()
}

// conn checks j and returns its Conn.
func (j *jsonConn) conn() (presence.Conn, error) {
	jid, err := xmpp.ParseJID(j.FullJID)
	if err != nil {
		return presence.Conn{}, fmt.Errorf("connection object: fulljid %q: %w", itemClip(j.FullJID), err)
	}
	if jid.Resource == "" {
		return presence.Conn{}, fmt.Errorf("connection object: fulljid %q has no resource", itemClip(j.FullJID))
	}
	c := presence.Conn{JID: jid.Full(), Show: presence.Show(j.Status), Text: j.Text, IP: j.IP}
	if !c.Show.Valid() {
		return presence.Conn{}, fmt.Errorf("connection object %s: status %q", c.JID, itemClip(j.Status))
	}
	if j.Name != "" && j.Name != c.Bare() {
		return presence.Conn{}, fmt.Errorf("connection object %s: name %q is not its bare JID", c.JID, itemClip(j.Name))
	}
	if j.Priority == nil {
		return presence.Conn{}, errors.New("connection object " + c.JID + ": no priority")
	}
	c.Priority = max(-128, min(127, *j.Priority))
	for _, f := range []struct {
		name string
		s    string
		t    *time.Time
	}{{"since", j.Since, &c.Since}, {"idle", j.Idle, &c.Idle}} {
		if f.s == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, f.s)
		if err != nil {
			return presence.Conn{}, fmt.Errorf("connection object %s: %s %q: %w", c.JID, f.name, itemClip(f.s), err)
		}
		*f.t = t.UTC()
	}
	return c, nil
}
