package presence

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestParsePresence(t *testing.T) {
	alice := JID{Local: "alice", Domain: "example.org", Resource: "laptop"}
	const from = "alice@example.org/laptop"
	tests := []struct {
		name      string
		from, typ string
		inner     string
		want      Update
	}{
		{
			name: "bare available",
			from: from,
			want: Update{Kind: Available, From: alice, Show: Online},
		},
		{
			name:  "full available",
			from:  "Alice@Example.org/laptop",
			inner: "<show>away</show><status>At lunch</status><priority>5</priority><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/>",
			want:  Update{Kind: Available, From: alice, Show: Away, Text: "At lunch", Priority: 5},
		},
		{
			name:  "every show",
			from:  from,
			inner: "<show>chat</show>",
			want:  Update{Kind: Available, From: alice, Show: Chat},
		},
		{name: "xa", from: from, inner: "<show>xa</show>", want: Update{Kind: Available, From: alice, Show: XA}},
		{name: "dnd", from: from, inner: "<show> dnd\n</show>", want: Update{Kind: Available, From: alice, Show: DND}},
		{name: "empty show", from: from, inner: "<show/>", want: Update{Kind: Available, From: alice, Show: Online}},
		{
			name:  "unknown show",
			from:  from,
			inner: "<show>busy</show>",
			want:  Update{Kind: Available, From: alice, Show: Online, Malformed: []string{"show"}},
		},
		{name: "show online is not a show value", from: from, inner: "<show>online</show>", want: Update{Kind: Available, From: alice, Show: Online, Malformed: []string{"show"}}},
		{name: "first show counts", from: from, inner: "<show>dnd</show><show>away</show>", want: Update{Kind: Available, From: alice, Show: DND}},
		{
			name:  "namespaces of the stream",
			from:  from,
			inner: "<show xmlns='jabber:client'>away</show><status xmlns='jabber:component:accept'>x</status><priority xmlns=''>1</priority>",
			want:  Update{Kind: Available, From: alice, Show: Away, Text: "x", Priority: 1},
		},
		{
			name:  "foreign namespace ignored",
			from:  from,
			inner: "<show xmlns='urn:other'>away</show><status xmlns='urn:other'>x</status><priority xmlns='urn:other'>1</priority>",
			want:  Update{Kind: Available, From: alice, Show: Online},
		},
		{
			name:  "muc status code not read",
			from:  from,
			inner: "<x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='member' role='participant'/><status code='110'/><status>nested</status><show>dnd</show><priority>9</priority></x>",
			want:  Update{Kind: Available, From: alice, Show: Online},
		},
		{
			name:  "nested unknown elements skipped",
			from:  from,
			inner: "<a><b><c><status>deep</status></c></b></a><status>top</status>",
			want:  Update{Kind: Available, From: alice, Show: Online, Text: "top"},
		},
		{
			name:  "status without lang preferred",
			from:  from,
			inner: "<status xml:lang='de'>Mittag</status><status>Lunch</status><status xml:lang='fr'>Déjeuner</status>",
			want:  Update{Kind: Available, From: alice, Show: Online, Text: "Lunch"},
		},
		{
			name:  "first status without lang",
			from:  from,
			inner: "<status>one</status><status>two</status>",
			want:  Update{Kind: Available, From: alice, Show: Online, Text: "one"},
		},
		{
			name:  "first status when all have lang",
			from:  from,
			inner: "<status xml:lang='de'>Mittag</status><status xml:lang='en'>Lunch</status>",
			want:  Update{Kind: Available, From: alice, Show: Online, Text: "Mittag"},
		},
		{
			name:  "status trimmed, inner whitespace kept, entities decoded",
			from:  from,
			inner: "<status>\n  a  b\n c &amp; &lt;d&gt; &#x263A; </status>",
			want:  Update{Kind: Available, From: alice, Show: Online, Text: "a  b\n c & <d> ☺"},
		},
		{
			name:  "status with markup inside keeps the text",
			from:  from,
			inner: "<status>a<b>x</b>c</status>",
			want:  Update{Kind: Available, From: alice, Show: Online, Text: "ac"},
		},
		{name: "cdata status", from: from, inner: "<status><![CDATA[<hi>]]></status>", want: Update{Kind: Available, From: alice, Show: Online, Text: "<hi>"}},
		{name: "priority trimmed", from: from, inner: "<priority> -5 </priority>", want: Update{Kind: Available, From: alice, Show: Online, Priority: -5}},
		{name: "priority bounds", from: from, inner: "<priority>-128</priority>", want: Update{Kind: Available, From: alice, Show: Online, Priority: -128}},
		{name: "priority plus", from: from, inner: "<priority>+127</priority>", want: Update{Kind: Available, From: alice, Show: Online, Priority: 127}},
		{name: "priority high", from: from, inner: "<priority>128</priority>", want: Update{Kind: Available, From: alice, Show: Online, Priority: 127, Malformed: []string{"priority"}}},
		{name: "priority low", from: from, inner: "<priority>-129</priority>", want: Update{Kind: Available, From: alice, Show: Online, Priority: -128, Malformed: []string{"priority"}}},
		{name: "priority huge", from: from, inner: "<priority>99999999999999999999999</priority>", want: Update{Kind: Available, From: alice, Show: Online, Priority: 127, Malformed: []string{"priority"}}},
		{name: "priority huge negative", from: from, inner: "<priority>-99999999999999999999999</priority>", want: Update{Kind: Available, From: alice, Show: Online, Priority: -128, Malformed: []string{"priority"}}},
		{name: "priority text", from: from, inner: "<priority>high</priority>", want: Update{Kind: Available, From: alice, Show: Online, Priority: 0, Malformed: []string{"priority"}}},
		{name: "priority empty", from: from, inner: "<priority/>", want: Update{Kind: Available, From: alice, Show: Online, Malformed: []string{"priority"}}},
		{name: "priority fraction", from: from, inner: "<priority>1.5</priority>", want: Update{Kind: Available, From: alice, Show: Online, Malformed: []string{"priority"}}},
		{
			name:  "several repairs",
			from:  from,
			inner: "<show>busy</show><priority>1000</priority>",
			want:  Update{Kind: Available, From: alice, Show: Online, Priority: 127, Malformed: []string{"show", "priority"}},
		},
		{
			name:  "delayed probe answer",
			from:  from,
			inner: "<show>away</show><delay xmlns='urn:xmpp:delay' from='example.org' stamp='2026-11-21T09:00:00Z'/>",
			want:  Update{Kind: Available, From: alice, Show: Away, Delayed: true, Stamp: t0},
		},
		{
			name:  "stamp with a fraction and an offset",
			from:  from,
			inner: "<delay xmlns='urn:xmpp:delay' stamp=' 2026-11-21T11:00:00.999+02:00\n'/>",
			want:  Update{Kind: Available, From: alice, Show: Online, Delayed: true, Stamp: t0},
		},
		{
			name:  "stamp not RFC 3339",
			from:  from,
			inner: "<delay xmlns='urn:xmpp:delay' stamp='20261121T09:00:00'/><show>away</show>",
			want:  Update{Kind: Available, From: alice, Show: Away, Delayed: true, Malformed: []string{"delay"}},
		},
		{
			name:  "stamp missing",
			from:  from,
			inner: "<delay xmlns='urn:xmpp:delay' from='example.org'/>",
			want:  Update{Kind: Available, From: alice, Show: Online, Delayed: true, Malformed: []string{"delay"}},
		},
		{
			name:  "first delay's stamp counts",
			from:  from,
			inner: "<delay xmlns='urn:xmpp:delay' stamp='2026-11-21T09:00:00Z'/><delay xmlns='urn:xmpp:delay' stamp='bogus'/>",
			want:  Update{Kind: Available, From: alice, Show: Online, Delayed: true, Stamp: t0},
		},
		{
			name:  "stamp with an entity",
			from:  from,
			inner: "<delay xmlns='urn:xmpp:delay' stamp='2026-11-21T09:00:00&#x5A;'/>",
			want:  Update{Kind: Available, From: alice, Show: Online, Delayed: true, Stamp: t0},
		},
		{
			name:  "stamp of an unavailable",
			from:  from,
			typ:   "unavailable",
			inner: "<delay xmlns='urn:xmpp:delay' stamp='2026-11-21T09:00:00Z'/>",
			want:  Update{Kind: Unavailable, From: alice, Show: Offline, Delayed: true, Stamp: t0},
		},
		{
			name:  "delay in a foreign namespace",
			from:  from,
			inner: "<delay xmlns='urn:other' stamp='2026-11-21T09:00:00Z'/><delay stamp='2026-11-21T09:00:00Z'/>",
			want:  Update{Kind: Available, From: alice, Show: Online},
		},
		{
			// Prosody 13's answer to a probe, as the component reads it.
			name:  "prosody probe answer",
			from:  "bob@localhost/phone",
			inner: "<show>xa</show><status>in pocket</status><priority>-1</priority><delay xmlns='urn:xmpp:delay' stamp='2026-12-03T07:55:13Z' from='localhost'/>",
			want: Update{Kind: Available, From: JID{Local: "bob", Domain: "localhost", Resource: "phone"}, Show: XA, Text: "in pocket", Priority: -1,
				Delayed: true, Stamp: time.Date(2026, 12, 3, 7, 55, 13, 0, time.UTC)},
		},
		{
			name:  "idle",
			from:  from,
			inner: "<show>away</show><idle xmlns='urn:xmpp:idle:1' since='2026-11-21T08:55:00Z'/>",
			want:  Update{Kind: Available, From: alice, Show: Away, Idle: t0.Add(-5 * time.Minute)},
		},
		{
			name:  "idle with a fraction and an offset",
			from:  from,
			inner: "<idle since=\"2026-11-21T10:55:00.123456+02:00\" xmlns=\"urn:xmpp:idle:1\"/>",
			want:  Update{Kind: Available, From: alice, Show: Online, Idle: t0.Add(-5 * time.Minute)},
		},
		{
			name:  "idle with a negative offset, across a day",
			from:  from,
			inner: "<idle xmlns='urn:xmpp:idle:1' since='2026-11-20T23:30:00-09:30'/>",
			want:  Update{Kind: Available, From: alice, Show: Online, Idle: t0},
		},
		{
			name:  "idle not RFC 3339",
			from:  from,
			inner: "<idle xmlns='urn:xmpp:idle:1' since='yesterday'/><show>dnd</show>",
			want:  Update{Kind: Available, From: alice, Show: DND, Malformed: []string{"idle"}},
		},
		{
			name:  "idle out of range",
			from:  from,
			inner: "<idle xmlns='urn:xmpp:idle:1' since='2026-13-01T00:00:00Z'/>",
			want:  Update{Kind: Available, From: alice, Show: Online, Malformed: []string{"idle"}},
		},
		{
			name:  "idle without since",
			from:  from,
			inner: "<idle xmlns='urn:xmpp:idle:1'/>",
			want:  Update{Kind: Available, From: alice, Show: Online, Malformed: []string{"idle"}},
		},
		{
			name:  "idle and delay both bad",
			from:  from,
			inner: "<idle xmlns='urn:xmpp:idle:1' since=''/><delay xmlns='urn:xmpp:delay' stamp=''/>",
			want:  Update{Kind: Available, From: alice, Show: Online, Delayed: true, Malformed: []string{"idle", "delay"}},
		},
		{
			name:  "first idle counts",
			from:  from,
			inner: "<idle xmlns='urn:xmpp:idle:1' since='2026-11-21T09:00:00Z'/><idle xmlns='urn:xmpp:idle:1' since='2026-11-21T10:00:00Z'/>",
			want:  Update{Kind: Available, From: alice, Show: Online, Idle: t0},
		},
		{
			name:  "idle in another namespace or nested does not count",
			from:  from,
			inner: "<idle xmlns='urn:xmpp:idle:0' since='2026-11-21T09:00:00Z'/><idle since='2026-11-21T09:00:00Z'/><x><idle xmlns='urn:xmpp:idle:1' since='2026-11-21T09:00:00Z'/></x>",
			want:  Update{Kind: Available, From: alice, Show: Online},
		},
		{
			name:  "idle of an unavailable not read",
			from:  from,
			typ:   "unavailable",
			inner: "<idle xmlns='urn:xmpp:idle:1' since='bogus'/>",
			want:  Update{Kind: Unavailable, From: alice, Show: Offline},
		},
		{
			name:  "idle on the slow path",
			from:  from,
			inner: "<!-- c --><idle xmlns='urn:xmpp:idle:1' since='2026-11-21T09:00:00Z'>\n</idle>",
			want:  Update{Kind: Available, From: alice, Show: Online, Idle: t0},
		},
		{
			name:  "legacy delay",
			from:  from,
			inner: "<x xmlns='jabber:x:delay' stamp='20261121T09:00:00'/>",
			want:  Update{Kind: Available, From: alice, Show: Online, Delayed: true},
		},
		{
			name:  "delay nested in an extension does not count",
			from:  from,
			inner: "<forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay'/></forwarded>",
			want:  Update{Kind: Available, From: alice, Show: Online},
		},
		{
			name:  "unavailable with text",
			from:  from,
			typ:   "unavailable",
			inner: "<status>Gone home</status><show>away</show><priority>x</priority>",
			want:  Update{Kind: Unavailable, From: alice, Show: Offline, Text: "Gone home"},
		},
		{name: "subscribe", from: "alice@example.org", typ: "subscribe", want: Update{Kind: Subscribe, From: JID{Local: "alice", Domain: "example.org"}}},
		{name: "subscribed", from: from, typ: "subscribed", want: Update{Kind: Subscribed, From: alice}},
		{name: "unsubscribe", from: from, typ: "unsubscribe", want: Update{Kind: Unsubscribe, From: alice}},
		{name: "unsubscribed", from: from, typ: "unsubscribed", want: Update{Kind: Unsubscribed, From: alice}},
		{name: "probe", from: from, typ: "probe", want: Update{Kind: Probe, From: alice}},
		{
			name:  "error",
			from:  from,
			typ:   "error",
			inner: "<error type='cancel'><remote-server-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>",
			want:  Update{Kind: Error, From: alice},
		},
		{name: "whitespace and comments", from: from, inner: " \n<!-- c --><?pi x?> <show>xa</show> ", want: Update{Kind: Available, From: alice, Show: XA}},
	}
	for _, tt := range tests {
		got, err := ParsePresence(tt.from, tt.typ, []byte(tt.inner))
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.name, got, tt.want)
		}
	}
}

func TestParsePresenceText(t *testing.T) {
	const from = "a@b/c"
	long := strings.Repeat("é", MaxText) // 2 bytes a rune
	tests := []struct {
		name      string
		inner     string
		want      string
		malformed []string
	}{
		{"exactly max", "<status>" + strings.Repeat("x", MaxText) + "</status>", strings.Repeat("x", MaxText), nil},
		{"max after trimming", "<status>  " + strings.Repeat("x", MaxText) + "  </status>", strings.Repeat("x", MaxText), nil},
		{"one over", "<status>" + strings.Repeat("x", MaxText+1) + "</status>", strings.Repeat("x", MaxText), []string{"text_too_long"}},
		{"cut at a rune boundary", "<status>a" + long + "</status>", "a" + strings.Repeat("é", (MaxText-1)/2), []string{"text_too_long"}},
		{"cut multi-byte", "<status>" + long + "</status>", strings.Repeat("é", MaxText/2), []string{"text_too_long"}},
	}
	for _, tt := range tests {
		u, err := ParsePresence(from, "", []byte(tt.inner))
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if u.Text != tt.want || !reflect.DeepEqual(u.Malformed, tt.malformed) {
			t.Errorf("%s: Text %d bytes %q…, Malformed %v; want %d bytes, %v", tt.name, len(u.Text), u.Text[:min(len(u.Text), 10)], u.Malformed, len(tt.want), tt.malformed)
		}
		if !utf8.ValidString(u.Text) || len(u.Text) > MaxText {
			t.Errorf("%s: Text invalid or too long (%d)", tt.name, len(u.Text))
		}
	}
}

func TestCleanTextUTF8(t *testing.T) {
	// The XML decoder already refuses invalid UTF-8; cleanText still repairs it.
	var u Update
	if got := u.cleanText([]byte(" a\xffb ")); got != "a\uFFFDb" || !reflect.DeepEqual(u.Malformed, []string{"text_utf8"}) {
		t.Errorf("cleanText = %q, %v", got, u.Malformed)
	}
}

func TestParsePresenceErrors(t *testing.T) {
	tests := []struct {
		name, from, typ, inner string
		reason                 string
	}{
		{"unknown type", "a@b/c", "available", "", "type"},
		{"type case", "a@b/c", "Unavailable", "", "type"},
		{"long type", "a@b/c", strings.Repeat("x", 1000), "", "type"},
		{"bad from", "@b/c", "", "", "jid"},
		{"empty from", "", "", "", "jid"},
		{"unclosed", "a@b/c", "", "<show>away", "xml"},
		{"mismatched", "a@b/c", "", "<show>away</status>", "xml"},
		{"stray end", "a@b/c", "", "</show>", "xml"},
		{"bad entity", "a@b/c", "", "<status>&nbsp;</status>", "xml"},
		{"invalid utf-8", "a@b/c", "", "<status>\xff</status>", "xml"},
		{"control char", "a@b/c", "", "<status>\x01</status>", "xml"},
		{"bad char ref", "a@b/c", "", "<status>&#0;</status>", "xml"},
		{"unclosed in unknown child", "a@b/c", "", "<x><y></x>", "xml"},
		{"garbage", "a@b/c", "", "<<<>>>", "xml"},
	}
	for _, tt := range tests {
		u, err := ParsePresence(tt.from, tt.typ, []byte(tt.inner))
		var me *MalformedError
		if !errors.As(err, &me) || me.Reason != tt.reason {
			t.Errorf("%s: ParsePresence = %+v, %v; want *MalformedError %q", tt.name, u, err, tt.reason)
			continue
		}
		if me.Error() == "" || !strings.HasPrefix(me.Error(), "malformed "+tt.reason) || len(me.Error()) > 300 {
			t.Errorf("%s: message %q", tt.name, me.Error())
		}
		if me.Unwrap() == nil {
			t.Errorf("%s: no wrapped error", tt.name)
		}
	}
}

func TestParsePresenceDeep(t *testing.T) {
	const depth = 200000
	inner := strings.Repeat("<a>", depth) + strings.Repeat("</a>", depth) + "<show>away</show>"
	u, err := ParsePresence("a@b/c", "", []byte(inner))
	if err != nil || u.Show != Away {
		t.Errorf("deep nesting: %+v, %v", u, err)
	}
	// Unclosed deep nesting is an error, not a crash.
	if _, err := ParsePresence("a@b/c", "", []byte(strings.Repeat("<a>", depth))); err == nil {
		t.Error("unclosed deep nesting: no error")
	}
}

func TestKindString(t *testing.T) {
	want := []string{"available", "unavailable", "subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe", "error"}
	for k := Available; k <= Error; k++ {
		if k.String() != want[k] {
			t.Errorf("Kind(%d).String() = %q, want %q", k, k.String(), want[k])
		}
	}
	if got := Kind(42).String(); got != "Kind(42)" {
		t.Errorf("Kind(42).String() = %q", got)
	}
}

func TestMalformedError(t *testing.T) {
	base := errors.New("boom")
	e := &MalformedError{Reason: "xml", Err: base}
	if e.Error() != "malformed xml: boom" || !errors.Is(e, base) {
		t.Errorf("Error() = %q, Is = %v", e.Error(), errors.Is(e, base))
	}
	if got := (&MalformedError{Reason: "type"}).Error(); got != "malformed type" {
		t.Errorf("Error() = %q", got)
	}
}

func BenchmarkParsePresence(b *testing.B) {
	benches := []struct {
		name, typ, inner string
	}{
		{"empty", "", ""},
		{"typical", "", "<show>away</show><status>At lunch</status><priority>5</priority>" +
			"<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://gajim.org' ver='q07IKJEyjvHSyhy//CH0CxmKi8w='/>"},
		{"muc", "", "<x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='member' role='participant'/><status code='110'/></x>"},
		{"unavailable", "unavailable", ""},
		{"probe-answer", "", "<show>xa</show><status>in pocket</status><priority>-1</priority>" +
			"<delay xmlns='urn:xmpp:delay' stamp='2026-12-03T07:55:13Z' from='localhost'/>"},
		{"idle", "", "<show>away</show><status>At lunch</status><priority>5</priority>" +
			"<idle xmlns='urn:xmpp:idle:1' since='2026-11-21T10:55:00.123+02:00'/>"},
	}
	for _, bb := range benches {
		b.Run(bb.name, func(b *testing.B) {
			inner := []byte(bb.inner)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParsePresence("alice@example.org/laptop", bb.typ, inner); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
