package nodes

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pubpresence/pubpresence/presence"
)

func TestAppendJSON(t *testing.T) {
	since := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	c := presence.Conn{JID: "alice@example.org/laptop", Show: presence.Away, Text: "At lunch", Priority: 5,
		IP: "203.0.113.7", Since: since, Idle: since.Add(-5 * time.Minute)}
	for _, tc := range []struct {
		c      presence.Conn
		withIP bool
		want   string
	}{
		{c, true, `{"fulljid":"alice@example.org/laptop","name":"alice@example.org","status":"away","text":"At lunch","priority":5,"ip":"203.0.113.7","since":"2026-11-21T09:00:00Z","idle":"2026-11-21T08:55:00Z"}`},
		{c, false, `{"fulljid":"alice@example.org/laptop","name":"alice@example.org","status":"away","text":"At lunch","priority":5,"since":"2026-11-21T09:00:00Z","idle":"2026-11-21T08:55:00Z"}`},
		{presence.Conn{JID: "b@example.org/r", Show: presence.Offline, Priority: -128}, true, `{"fulljid":"b@example.org/r","name":"b@example.org","status":"offline","priority":-128}`},
		{presence.Conn{JID: "b@example.org/r", Show: presence.Online, Text: "a\"b\\c\n\t<x>&\u2028\x01\xff"}, true,
			`{"fulljid":"b@example.org/r","name":"b@example.org","status":"online","text":"a\"b\\c\n\t\u003cx\u003e\u0026\u2028\u0001\ufffd","priority":0}`},
	} {
		got := string(AppendJSON(nil, tc.c, tc.withIP))
		if got != tc.want {
			t.Errorf("AppendJSON:\n%s\nwant\n%s", got, tc.want)
		}
		// encoding/json reads the same text.
		var m map[string]any
		if err := json.Unmarshal([]byte(got), &m); err != nil {
			t.Errorf("%s: %v", got, err)
		}
	}
	back, err := ParseJSON(AppendJSON(nil, c, true))
	if err != nil || back != c {
		t.Errorf("round trip: %+v %v", back, err)
	}
	for _, bad := range []string{`{}`, `{"fulljid":"a@b","status":"online","priority":0}`, `{"fulljid":"a@b/r","status":"gone","priority":0}`,
		`{"fulljid":"a@b/r","status":"online"}`, `{"fulljid":"a@b/r","name":"c@b","status":"online","priority":0}`,
		`{"fulljid":"a@b/r","status":"online","priority":0,"since":"yesterday"}`, `[`} {
		if _, err := ParseJSON([]byte(bad)); err == nil {
			t.Errorf("ParseJSON(%s) accepted", bad)
		}
	}
}

// FuzzJSON: whatever a connection holds, AppendJSON writes one line of
// valid JSON, and ParseJSON reads back the same connection.
func FuzzJSON(f *testing.F) {
	f.Add("alice@example.org/laptop", "away", "At lunch", 5, "203.0.113.7", int64(1763715600), int64(0))
	f.Add("b@example.org/r", "online", "a\"b\\c\n\t<x>&\u2028\x01\xff", -128, "", int64(0), int64(-62167219200))
	f.Fuzz(func(t *testing.T, jid, show, text string, prio int, ip string, since, idle int64) {
		c := presence.Conn{JID: jid, Show: presence.Show(show), Text: text, Priority: prio, IP: ip}
		if since != 0 {
			c.Since = time.Unix(since, 0).UTC()
		}
		if idle != 0 {
			c.Idle = time.Unix(idle, 0).UTC()
		}
		b := AppendJSON(nil, c, true)
		if !json.Valid(b) || bytes.ContainsAny(b, "\r\n") {
			t.Fatalf("not one line of JSON: %q", b)
		}
		back, err := ParseJSON(b)
		if err != nil {
			return // an invalid JID or status: refused, not misread
		}
		want := c
		want.JID = back.JID // normalised
		want.Priority = max(-128, min(127, c.Priority))
		if !utf8.ValidString(c.Text) || strings.ContainsAny(c.Text, "\u2028\u2029") {
			want.Text = back.Text
		}
		if !utf8.ValidString(c.IP) {
			want.IP = back.IP
		}
		if !timeIn(c.Since) {
			want.Since = time.Time{}
		}
		if !timeIn(c.Idle) {
			want.Idle = time.Time{}
		}
		if back != want {
			t.Fatalf("round trip:\n%+v\n%+v", back, want)
		}
	})
}

func timeIn(t time.Time) bool { return !t.IsZero() && !t.Before(itemTimeMin) && t.Before(itemTimeEnd) }
