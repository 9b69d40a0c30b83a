package nodes

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/presence"
	"github.com/pubpresence/pubpresence/pubsub"
)

var itemT0 = time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)

func TestAppendUserProductExample(t *testing.T) {
	c := presence.Conn{
		JID: "alice@example.org/laptop", Show: presence.Away, Text: "At lunch",
		Priority: 5, IP: "203.0.113.7", Since: itemT0,
	}
	const want = `<user xmlns='urn:pubpresence:0' status='away' name='alice@example.org' fulljid='alice@example.org/laptop' ip='203.0.113.7' priority='5' since='2026-11-21T09:00:00Z'><text>At lunch</text></user>`
	if got := string(AppendUser(nil, c, true)); got != want {
		t.Errorf("AppendUser:\n got %s\nwant %s", got, want)
	}
	// It appends.
	if got := string(AppendUser([]byte("<item>"), c, true)); got != "<item>"+want {
		t.Errorf("AppendUser after a prefix: %s", got)
	}
}

func TestAppendUserForms(t *testing.T) {
	base := presence.Conn{JID: "bob@example.org/x", Show: presence.Online, IP: "::1", Priority: -3}
	paris := time.FixedZone("CET", 3600)
	tests := []struct {
		name   string
		c      presence.Conn
		withIP bool
		want   string
	}{
		{
			name: "no ip wanted, no since, no text",
			c:    base,
			want: `<user xmlns='urn:pubpresence:0' status='online' name='bob@example.org' fulljid='bob@example.org/x' priority='-3'/>`,
		},
		{
			name:   "ip",
			c:      base,
			withIP: true,
			want:   `<user xmlns='urn:pubpresence:0' status='online' name='bob@example.org' fulljid='bob@example.org/x' ip='::1' priority='-3'/>`,
		},
		{
			name:   "ip unknown",
			c:      presence.Conn{JID: "bob@example.org/x", Show: presence.Offline},
			withIP: true,
			want:   `<user xmlns='urn:pubpresence:0' status='offline' name='bob@example.org' fulljid='bob@example.org/x' priority='0'/>`,
		},
		{
			name: "since in another zone, with a fraction",
			c:    presence.Conn{JID: "bob@example.org/x", Show: presence.DND, Since: time.Date(2026, 1, 2, 4, 5, 6, 999999999, paris)},
			want: `<user xmlns='urn:pubpresence:0' status='dnd' name='bob@example.org' fulljid='bob@example.org/x' priority='0' since='2026-01-02T03:05:06Z'/>`,
		},
		{
			name: "since outside XEP-0082 years",
			c:    presence.Conn{JID: "bob@example.org/x", Show: presence.DND, Since: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
			want: `<user xmlns='urn:pubpresence:0' status='dnd' name='bob@example.org' fulljid='bob@example.org/x' priority='0'/>`,
		},
		{
			name: "idle right after since",
			c:    presence.Conn{JID: "bob@example.org/x", Show: presence.Away, Since: itemT0, Idle: itemT0.Add(-5 * time.Minute), Text: "t"},
			want: `<user xmlns='urn:pubpresence:0' status='away' name='bob@example.org' fulljid='bob@example.org/x' priority='0' since='2026-11-21T09:00:00Z' idle='2026-11-21T08:55:00Z'><text>t</text></user>`,
		},
		{
			name: "idle without since, in another zone, with a fraction",
			c:    presence.Conn{JID: "bob@example.org/x", Show: presence.XA, Idle: time.Date(2026, 1, 2, 4, 5, 6, 999999999, paris)},
			want: `<user xmlns='urn:pubpresence:0' status='xa' name='bob@example.org' fulljid='bob@example.org/x' priority='0' idle='2026-01-02T03:05:06Z'/>`,
		},
		{
			name: "idle outside XEP-0082 years",
			c:    presence.Conn{JID: "bob@example.org/x", Show: presence.XA, Since: itemT0, Idle: time.Date(-1, 12, 31, 0, 0, 0, 0, time.UTC)},
			want: `<user xmlns='urn:pubpresence:0' status='xa' name='bob@example.org' fulljid='bob@example.org/x' priority='0' since='2026-11-21T09:00:00Z'/>`,
		},
		{
			name: "escaping",
			c:    presence.Conn{JID: "bob@example.org/a&b<c>'d\"", Show: presence.Chat, Text: "x & y <z> 'q' \"d\"\ttab\nnl\rcr", Priority: 127},
			want: `<user xmlns='urn:pubpresence:0' status='chat' name='bob@example.org' fulljid='bob@example.org/a&amp;b&lt;c&gt;&#39;d&#34;' priority='127'><text>x &amp; y &lt;z&gt; &#39;q&#39; &#34;d&#34;&#x9;tab&#xA;nl&#xD;cr</text></user>`,
		},
		{
			name: "characters XML cannot carry",
			c:    presence.Conn{JID: "bob@example.org/x", Show: presence.XA, Text: "a\x00b\x1fc\xffd\uFFFEe\U0001F600"},
			want: "<user xmlns='urn:pubpresence:0' status='xa' name='bob@example.org' fulljid='bob@example.org/x' priority='0'><text>a\uFFFDb\uFFFDc\uFFFDd\uFFFDe\U0001F600</text></user>",
		},
	}
	for _, tt := range tests {
		got := string(AppendUser(nil, tt.c, tt.withIP))
		if got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, got, tt.want)
		}
		itemWellFormed(t, []byte(got))
	}
}

// itemWellFormed fails unless b is one well-formed element.
func itemWellFormed(t testing.TB, b []byte) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	depth, roots := 0, 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed: %v\n%q", err, b)
		}
		switch tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				roots++
			}
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 {
				t.Fatalf("text outside the element: %q", b)
			}
		}
	}
	if roots != 1 || depth != 0 {
		t.Fatalf("%d root elements, depth %d: %q", roots, depth, b)
	}
}

func TestUserRoundTrip(t *testing.T) {
	var conns []presence.Conn
	shows := []presence.Show{presence.Online, presence.Chat, presence.Away, presence.XA, presence.DND, presence.Offline}
	jids := []string{
		"alice@example.org/laptop", "example.org/res", "bob@example.org/a&b<c>'d\"e",
		"zoë@exämple.org/Résumé ☺", "c@d/with space and/slash", "x@[::1]/r", "e@f/😀",
	}
	texts := []string{"", "At lunch", "  padded  ", "x & y <z> 'q' \"d\"", "line\nbreak\ttab\rcr", "日本語のテキスト", strings.Repeat("é", presence.MaxText/2)}
	for i, j := range jids {
		for k, text := range texts {
			conns = append(conns, presence.Conn{
				JID: j, Show: shows[(i+k)%len(shows)], Text: text,
				Priority: []int{-128, -1, 0, 1, 127}[(i*k)%5],
				IP:       []string{"", "203.0.113.7", "2001:db8::1", "a&'b"}[(i+k)%4],
				Since:    []time.Time{{}, itemT0, time.Unix(0, 0).UTC(), time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC)}[(i+2*k)%5],
				Idle:     []time.Time{{}, itemT0.Add(-time.Hour), {}, time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), time.Unix(0, 0).UTC()}[(3*i+k)%6],
			})
		}
	}
	for _, c := range conns {
		for _, withIP := range []bool{true, false} {
			b := AppendUser(nil, c, withIP)
			itemWellFormed(t, b)
			got, err := ParseUser(b)
			if err != nil {
				t.Errorf("ParseUser(%s): %v", b, err)
				continue
			}
			want := c
			if !withIP {
				want.IP = ""
			}
			if got != want {
				t.Errorf("round trip of %+v (withIP %v):\n got %+v\n via %s", c, withIP, got, b)
			}
		}
	}
}

func TestParseUserForms(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		want    presence.Conn
	}{
		{
			name:    "seed form without namespace",
			payload: `<user status='online' ip='ip_addr' name='name@domain' fulljid='name@domain/resource'/>`,
			want:    presence.Conn{JID: "name@domain/resource", Show: presence.Online, IP: "ip_addr"},
		},
		{
			name:    "seed form as Prosody returns it, in the pubsub namespace",
			payload: `<user xmlns='http://jabber.org/protocol/pubsub' status='away' ip='127.0.0.1' name='alice@localhost' fulljid='alice@localhost/laptop'/>`,
			want:    presence.Conn{JID: "alice@localhost/laptop", Show: presence.Away, IP: "127.0.0.1"},
		},
		{
			name:    "event namespace",
			payload: `<user xmlns="http://jabber.org/protocol/pubsub#event" status="dnd" name="a@b" fulljid="a@b/c"><text>t</text></user>`,
			want:    presence.Conn{JID: "a@b/c", Show: presence.DND, Text: "t"},
		},
		{
			name: "white space, comments, unknown attributes and children, a second text",
			payload: "\n  <!-- x --><user xmlns='urn:pubpresence:0' extra='1' status='xa' name='a@b' fulljid='a@b/c' priority=' 7 ' since='2026-11-21T10:00:00+01:00'>\n" +
				"<future xmlns='urn:other'><text>not this</text></future><text>first</text><text>second</text></user>trailing",
			want: presence.Conn{JID: "a@b/c", Show: presence.XA, Text: "first", Priority: 7, Since: itemT0},
		},
		{
			name:    "fulljid normalised",
			payload: `<user xmlns='urn:pubpresence:0' status='chat' name='Alice@Example.ORG' fulljid='Alice@Example.ORG/Laptop'/>`,
			want:    presence.Conn{JID: "alice@example.org/Laptop", Show: presence.Chat},
		},
		{
			name:    "priority clamped, fractional since",
			payload: `<user xmlns='urn:pubpresence:0' status='online' fulljid='a@b/c' priority='1000' since='2026-11-21T09:00:00.5Z'/>`,
			want:    presence.Conn{JID: "a@b/c", Show: presence.Online, Priority: 127, Since: itemT0.Add(500 * time.Millisecond)},
		},
		{
			name:    "priority huge negative",
			payload: `<user xmlns='urn:pubpresence:0' status='online' fulljid='a@b/c' priority='-99999999999999999999'/>`,
			want:    presence.Conn{JID: "a@b/c", Show: presence.Online, Priority: -128},
		},
		{
			name:    "bad priority and since ignored",
			payload: `<user xmlns='urn:pubpresence:0' status='online' fulljid='a@b/c' priority='high' since='yesterday'/>`,
			want:    presence.Conn{JID: "a@b/c", Show: presence.Online},
		},
		{
			name:    "idle",
			payload: `<user xmlns='urn:pubpresence:0' status='away' fulljid='a@b/c' since='2026-11-21T09:00:00Z' idle='2026-11-21T08:55:00Z'/>`,
			want:    presence.Conn{JID: "a@b/c", Show: presence.Away, Since: itemT0, Idle: itemT0.Add(-5 * time.Minute)},
		},
		{
			name:    "idle with an offset, in UTC",
			payload: `<user xmlns='urn:pubpresence:0' status='away' fulljid='a@b/c' idle=' 2026-11-21T10:00:00+01:00 '/>`,
			want:    presence.Conn{JID: "a@b/c", Show: presence.Away, Idle: itemT0},
		},
		{
			name:    "bad idle ignored",
			payload: `<user xmlns='urn:pubpresence:0' status='away' fulljid='a@b/c' since='2026-11-21T09:00:00Z' idle='a while'/>`,
			want:    presence.Conn{JID: "a@b/c", Show: presence.Away, Since: itemT0},
		},
		{
			name:    "text keeps white space and entities",
			payload: `<user xmlns='urn:pubpresence:0' status='online' fulljid='a@b/c'><text> a &amp; <b>bold</b> b&#xA;</text></user>`,
			want:    presence.Conn{JID: "a@b/c", Show: presence.Online, Text: " a &  b\n"},
		},
	}
	for _, tt := range tests {
		got, err := ParseUser([]byte(tt.payload))
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if got != tt.want {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.name, got, tt.want)
		}
	}
}

func TestParseUserErrors(t *testing.T) {
	for _, p := range []string{
		``,
		`   `,
		`text`,
		`<x xmlns='jabber:x:data' type='result'/>`,
		`<user xmlns='urn:other' status='online' fulljid='a@b/c'/>`,
		`<users xmlns='urn:pubpresence:0' status='online' fulljid='a@b/c'/>`,
		`<user xmlns='urn:pubpresence:0' status='online'/>`,
		`<user xmlns='urn:pubpresence:0' status='online' fulljid=''/>`,
		`<user xmlns='urn:pubpresence:0' status='online' fulljid='a@b'/>`,
		`<user xmlns='urn:pubpresence:0' status='online' fulljid='@b/c'/>`,
		`<user xmlns='urn:pubpresence:0' status='online' fulljid='a b@c/d'/>`,
		`<user xmlns='urn:pubpresence:0' fulljid='a@b/c'/>`,
		`<user xmlns='urn:pubpresence:0' status='' fulljid='a@b/c'/>`,
		`<user xmlns='urn:pubpresence:0' status='available' fulljid='a@b/c'/>`,
		`<user xmlns='urn:pubpresence:0' status='Online' fulljid='a@b/c'/>`,
		`<user xmlns='urn:pubpresence:0' status='online' fulljid='a@b/c'>`,
		`<user xmlns='urn:pubpresence:0' status='online' fulljid='a@b/c'><text>x</user>`,
		`<user xmlns='urn:pubpresence:0' status='online' fulljid='a@b/c'><text>&bad;</text></user>`,
		`<user status='online' fulljid='a@b/c' a:x='1'`,
	} {
		if c, err := ParseUser([]byte(p)); err == nil {
			t.Errorf("ParseUser(%q) = %+v, want an error", p, c)
		} else if !strings.HasPrefix(err.Error(), "user item") || len(err.Error()) > 300 {
			t.Errorf("ParseUser(%q): message %q", p, err)
		}
	}
	// A bad fulljid says why.
	_, err := ParseUser([]byte(`<user status='online' fulljid='@b/c'/>`))
	var me *presence.MalformedError
	if !errors.As(err, &me) || me.Reason != "jid" {
		t.Errorf("bad fulljid: %v, want a wrapped *presence.MalformedError", err)
	}
}

func TestStatusForm(t *testing.T) {
	const want = `<x xmlns='jabber:x:data' type='result'><field var='pubpresence#status'><value>online</value></field></x>`
	if got := string(AppendStatus(nil, "online")); got != want {
		t.Errorf("AppendStatus:\n got %s\nwant %s", got, want)
	}
	for _, s := range []string{"init", "online", "a&<'b"} {
		b := AppendStatus(nil, s)
		itemWellFormed(t, b)
		if got, err := ParseStatus(b); err != nil || got != s {
			t.Errorf("ParseStatus(AppendStatus(%q)) = %q, %v", s, got, err)
		}
	}
}

func TestParseStatus(t *testing.T) {
	tests := []struct {
		payload, want string
		bad           bool
	}{
		// As in docs/protocol.md, pretty-printed.
		{payload: "<x xmlns='jabber:x:data' type='result'>\n  <field var='pubpresence#status'><value>online</value></field></x>", want: "online"},
		{payload: `<x xmlns="jabber:x:data" type="result"><field var="FORM_TYPE" type="hidden"><value>urn:x</value></field><field var="pubpresence#status" type="text-single"><value> init </value><value>second</value></field></x>`, want: "init"},
		{payload: `<x xmlns='jabber:x:data'><field var='other'><value>online</value></field></x>`, bad: true},
		{payload: `<x xmlns='jabber:x:data'><field var='pubpresence#status'/></x>`, bad: true},
		{payload: `<x xmlns='jabber:x:data'><x xmlns='jabber:x:data'><field var='pubpresence#status'><value>nested</value></field></x></x>`, bad: true},
		{payload: `<x><field var='pubpresence#status'><value>online</value></field></x>`, bad: true},
		{payload: `<user xmlns='urn:pubpresence:0' status='online' fulljid='a@b/c'/>`, bad: true},
		{payload: `<x xmlns='jabber:x:data'><field var='pubpresence#status'><value>online</value>`, bad: true},
		{payload: ``, bad: true},
	}
	for _, tt := range tests {
		got, err := ParseStatus([]byte(tt.payload))
		if tt.bad {
			if err == nil {
				t.Errorf("ParseStatus(%q) = %q, want an error", tt.payload, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseStatus(%q) = %q, %v; want %q", tt.payload, got, err, tt.want)
		}
	}
}

func TestPublishUserRequest(t *testing.T) {
	c := presence.Conn{JID: "a&b@example.org/<r>", Show: presence.Away, Text: "x'y", Priority: -3, IP: "::1",
		Since: time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)}
	for _, withIP := range []bool{true, false} {
		want := string(pubsub.PublishRequest(nil, "presence/actual", c.JID, AppendUser(nil, c, withIP)))
		if got := string(PublishUserRequest([]byte("keep"), "presence/actual", c, withIP)); got != "keep"+want {
			t.Errorf("withIP %v:\n got %s\nwant keep%s", withIP, got, want)
		}
	}
}

func BenchmarkEncodeUser(b *testing.B) {
	c := presence.Conn{
		JID: "alice@example.org/laptop", Show: presence.Away, Text: "At lunch & back at 2",
		Priority: 5, IP: "203.0.113.7", Since: itemT0,
	}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendUser(buf[:0], c, true)
	}
}

func BenchmarkParseUser(b *testing.B) {
	payload := AppendUser(nil, presence.Conn{
		JID: "alice@example.org/laptop", Show: presence.Away, Text: "At lunch",
		Priority: 5, IP: "203.0.113.7", Since: itemT0,
	}, true)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseUser(payload); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPresenceToPublish is the hot path: a presence stanza's parts in,
// the publish request for it out.
func BenchmarkPresenceToPublish(b *testing.B) {
	inner := []byte("<show>away</show><status>At lunch</status><priority>5</priority>" +
		"<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://gajim.org' ver='q07IKJEyjvHSyhy//CH0CxmKi8w='/>")
	s := presence.NewState()
	payload := make([]byte, 0, 512)
	req := make([]byte, 0, 1024)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		u, err := presence.ParsePresence("alice@example.org/laptop", "", inner)
		if err != nil {
			b.Fatal(err)
		}
		u.Priority += i % 2 // a visible change every time
		c, _ := s.Set(presence.Conn{JID: u.From.Full(), Show: u.Show, Text: u.Text, Priority: u.Priority, IP: "203.0.113.7", Since: itemT0})
		payload = AppendUser(payload[:0], c, true)
		req = pubsub.PublishRequest(req[:0], "presence/actual", c.JID, payload)
	}
}

// TestAppendSince compares the hand-written timestamp with time's own
// formatting over the whole range AppendUser writes.
func TestAppendSince(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	lo := time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	hi := time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC).Unix()
	times := []time.Time{time.Unix(lo, 0).UTC(), time.Unix(hi, 999999999).UTC(),
		time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC), time.Date(2024, 2, 29, 23, 59, 59, 5, time.UTC)}
	for range 100000 {
		times = append(times, time.Unix(lo+rng.Int64N(hi-lo+1), rng.Int64N(1e9)).UTC())
	}
	for _, tm := range times {
		want := tm.AppendFormat(nil, itemSinceLayout)
		if got := appendSince(nil, tm); string(got) != string(want) {
			t.Fatalf("appendSince(%v) = %s, want %s", tm, got, want)
		}
	}
}
