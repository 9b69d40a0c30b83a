package c2s

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/pubpresence/pubpresence/internal/xmpp"
)

const testHeader = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' " +
	"xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='localhost' version='1.0'>"

func TestStreamReaderRawAndInner(t *testing.T) {
	input := testHeader +
		"<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>" +
		" \n\t" + // whitespace keepalive
		"<presence from='a@b/c'/>" +
		"<message from='x' type='chat'><body>a &amp; b &lt;c&gt;</body><x xmlns='urn:x'><y/></x></message>" +
		"<iq type='result' id='1'></iq>" +
		"</stream:stream>"
	sr := newStreamReader(bufio.NewReader(strings.NewReader(input)))
	hdr, err := sr.header()
	if err != nil {
		t.Fatal(err)
	}
	if got := attrValue(hdr.Attr, "id"); got != "s1" {
		t.Errorf("header id = %q", got)
	}
	want := []struct {
		space, local, raw, inner string
	}{
		{xmpp.NSStream, "features", "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>",
			"<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"},
		{xmpp.NSClient, "presence", "<presence from='a@b/c'/>", ""},
		{xmpp.NSClient, "message", "<message from='x' type='chat'><body>a &amp; b &lt;c&gt;</body><x xmlns='urn:x'><y/></x></message>",
			"<body>a &amp; b &lt;c&gt;</body><x xmlns='urn:x'><y/></x>"},
		{xmpp.NSClient, "iq", "<iq type='result' id='1'></iq>", ""},
	}
	for i, w := range want {
		el, err := sr.next()
		if err != nil {
			t.Fatalf("element %d: %v", i, err)
		}
		if el.Name.Space != w.space || el.Name.Local != w.local {
			t.Errorf("element %d: name %v, want {%s %s}", i, el.Name, w.space, w.local)
		}
		if string(el.Raw) != w.raw {
			t.Errorf("element %d: raw %q, want %q", i, el.Raw, w.raw)
		}
		if string(el.Inner) != w.inner {
			t.Errorf("element %d: inner %q, want %q", i, el.Inner, w.inner)
		}
		if len(sr.rec.buf) > 1 {
			t.Errorf("element %d: recorder keeps %d bytes after it", i, len(sr.rec.buf))
		}
	}
	if _, err := sr.next(); !errors.Is(err, errStreamEnd) {
		t.Fatalf("after the stream end: %v, want errStreamEnd", err)
	}
}

func TestStreamReaderErrors(t *testing.T) {
	tests := []struct {
		name, input string
	}{
		{"eof inside stanza", testHeader + "<message><body>hi"},
		{"mismatched tags", testHeader + "<message></presence>"},
		{"bad entity", testHeader + "<message>&nosuch;</message>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sr := newStreamReader(bufio.NewReader(strings.NewReader(tt.input)))
			if _, err := sr.header(); err != nil {
				t.Fatal(err)
			}
			if _, err := sr.next(); err == nil || errors.Is(err, errStreamEnd) || err == io.EOF {
				t.Fatalf("next = %v, want a syntax error", err)
			}
		})
	}
	sr := newStreamReader(bufio.NewReader(strings.NewReader("<html><body/></html>")))
	if _, err := sr.header(); err == nil {
		t.Fatal("header accepted <html>")
	}
}

func TestParseFragment(t *testing.T) {
	in := []byte(`<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='n'>` +
		`<item id='a'><user xmlns='urn:pubpresence:0' status='away'><text>x &amp; y</text></user></item>` +
		`<item id='b'/></items></pubsub>`)
	nodes, err := parseFragment(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 1 || nodes[0].Name.Space != xmpp.NSPubsub {
		t.Fatalf("roots = %d, first %v", len(nodes), nodes[0].Name)
	}
	items := nodes[0].child("", "items")
	if items == nil || items.attr("node") != "n" || len(items.Children) != 2 {
		t.Fatalf("items = %+v", items)
	}
	user := items.Children[0].Children[0]
	if got, want := string(user.Raw), `<user xmlns='urn:pubpresence:0' status='away'><text>x &amp; y</text></user>`; got != want {
		t.Errorf("user raw = %q, want %q", got, want)
	}
	if got := user.child("urn:pubpresence:0", "text").Text; got != "x & y" {
		t.Errorf("text = %q", got)
	}
	if _, err := parseFragment([]byte("<a><b></a>")); err == nil {
		t.Error("parseFragment accepted mismatched tags")
	}
	if _, err := parseFragment([]byte("<a>")); err == nil {
		t.Error("parseFragment accepted an unclosed element")
	}
}

func TestEscape(t *testing.T) {
	if got, want := escape(`a<b>&'"`), "a&lt;b&gt;&amp;&#39;&#34;"; got != want {
		t.Fatalf("escape = %q, want %q", got, want)
	}
	if got := escape("plain@host/res"); got != "plain@host/res" {
		t.Fatalf("escape changed %q", got)
	}
}

// FuzzStreamReader feeds arbitrary server bytes after a valid header: the
// reader must not panic, and every element it returns must start with '<'
// and hold its inner text.
func FuzzStreamReader(f *testing.F) {
	f.Add("<presence/>")
	f.Add(" <message><body>x</body></message></stream:stream>")
	f.Add("<iq type='result' id='1'><pubsub xmlns='p'><items node='n'><item id='a'><x xmlns='y'/></item></items></pubsub></iq>")
	f.Add("<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>")
	f.Add("<a><b>&amp;</b><![CDATA[<x>]]></a><!-- c --><?pi x?>")
	f.Fuzz(func(t *testing.T, s string) {
		sr := newStreamReader(bufio.NewReader(strings.NewReader(testHeader + s)))
		if _, err := sr.header(); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 100; i++ {
			el, err := sr.next()
			if err != nil {
				return
			}
			if len(el.Raw) == 0 || el.Raw[0] != '<' || !strings.Contains(string(el.Raw), string(el.Inner)) {
				t.Fatalf("element raw %q inner %q", el.Raw, el.Inner)
			}
			if _, err := parseFragment(el.Inner); err != nil {
				t.Fatalf("inner of a well-formed element does not parse: %q: %v", el.Inner, err)
			}
		}
	})
}

// FuzzStanzaParsers runs the parsers of stanza content on arbitrary input;
// Event's payloads, cut by pubsub.ParseEvent, must each be one element to
// parseFragment too. The items results are pubsub.ParseItems's, fuzzed in
// package pubsub (FuzzSubscriberParsers).
func FuzzStanzaParsers(f *testing.F) {
	f.Add([]byte("<event xmlns='http://jabber.org/protocol/pubsub#event'><items node='n'><item id='a'><u xmlns='x'/></item><retract id='b'/></items></event>"))
	f.Add([]byte("<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>t</text></error>"))
	f.Add([]byte("<show>away</show><status>s</status><priority>-5</priority>"))
	f.Fuzz(func(t *testing.T, b []byte) {
		oneElement := func(what string, p []byte) {
			if p == nil {
				return
			}
			if nodes, err := parseFragment(p); err != nil || len(nodes) != 1 {
				t.Fatalf("%s payload %q is not one element: %v", what, p, err)
			}
		}
		st := Stanza{Name: "message", Inner: b}
		if ev, ok := st.Event(); ok {
			for _, it := range ev.Items {
				if it.Retract && it.Payload != nil {
					t.Fatalf("retract with payload: %+v", it)
				}
				oneElement("event", it.Payload)
			}
		}
		if e := xmpp.ParseError(b); e == nil || e.Condition == "" {
			t.Fatalf("ParseError gave %+v", e)
		}
		st.Name = "presence"
		_, _, _ = st.PresenceDetails()
	})
}
