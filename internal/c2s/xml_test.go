package c2s

import (
	"github.com/pubpresence/pubpresence/internal/xmltext"

	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"

	"github.com/pubpresence/pubpresence/internal/xmpp"
)

const testHeader = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' " +
	"xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='localhost' version='1.0'>"

// TestFeatures reads the stream features as Prosody 0.12 and ejabberd 23.01
// send them.
func TestFeatures(t *testing.T) {
	var f features
	err := unmarshalInner([]byte("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"+
		"<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1</mechanism><mechanism> PLAIN </mechanism></mechanisms>"+
		"<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'><channel-binding type='tls-exporter'/><channel-binding type='tls-server-end-point'/></sasl-channel-binding>"+
		"<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session>"+
		"<mechanisms xmlns='urn:other'><mechanism>X</mechanism></mechanisms>"), &f)
	if err != nil {
		t.Fatal(err)
	}
	if f.StartTLS == nil || f.StartTLS.Required == nil || f.Bind == nil || f.Session == nil || f.Session.Optional == nil {
		t.Errorf("features = %+v", f)
	}
	if got := strings.Join(f.Mechanisms, ","); got != "SCRAM-SHA-1, PLAIN " {
		t.Errorf("mechanisms %q", got)
	}
	if len(f.ChannelBindings) != 2 || f.ChannelBindings[0].Type != "tls-exporter" {
		t.Errorf("channel bindings %+v", f.ChannelBindings)
	}
	f = features{}
	if err := unmarshalInner([]byte("<starttls xmlns='urn:x'/><bind/>"), &f); err != nil || f.StartTLS != nil || f.Bind != nil || f.Mechanisms != nil {
		t.Errorf("features in other namespaces: %+v, %v", f, err)
	}
	if unmarshalInner([]byte("<a><b></a>"), &f) == nil {
		t.Error("unmarshalInner accepted mismatched tags")
	}
}

// roots returns the number of elements at the top of a fragment, or the
// error that ends it.
func roots(b []byte) (int, error) {
	d := xml.NewDecoder(bytes.NewReader(b))
	n, depth := 0, 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			if depth > 0 {
				return n, io.ErrUnexpectedEOF
			}
			return n, nil
		}
		if err != nil {
			return n, err
		}
		switch tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				n++
			}
			depth++
		case xml.EndElement:
			depth--
		}
	}
}

func TestEscape(t *testing.T) {
	if got, want := xmltext.Escape(`a<b>&'"`), "a&lt;b&gt;&amp;&#39;&#34;"; got != want {
		t.Fatalf("escape = %q, want %q", got, want)
	}
	if got := xmltext.Escape("plain@host/res"); got != "plain@host/res" {
		t.Fatalf("escape changed %q", got)
	}
}

// FuzzStreamReader feeds arbitrary server bytes after a valid header to the
// reader as the client uses it (internal/xmpp's FuzzReaderFastVsSlow checks
// the reader itself): it must not panic, every element it returns must
// start with '<' and hold its inner text, which parses, and stream features
// give a features or an error.
func FuzzStreamReader(f *testing.F) {
	f.Add("<presence/>")
	f.Add(" <message><body>x</body></message></stream:stream>")
	f.Add("<iq type='result' id='1'><pubsub xmlns='p'><items node='n'><item id='a'><x xmlns='y'/></item></items></pubsub></iq>")
	f.Add("<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>")
	f.Add("<a><b>&amp;</b><![CDATA[<x>]]></a><!-- c --><?pi x?>")
	f.Fuzz(func(t *testing.T, s string) {
		sr := newReader(strings.NewReader(testHeader + s))
		if _, err := sr.Header(); err != nil {
			t.Fatal(err)
		}
		var el xmpp.Element
		for i := 0; i < 100; i++ {
			if sr.Next(&el) != nil {
				return
			}
			if len(el.Raw) == 0 || el.Raw[0] != '<' || !strings.Contains(string(el.Raw), string(el.Inner)) {
				t.Fatalf("element raw %q inner %q", el.Raw, el.Inner)
			}
			if _, err := roots(el.Inner); err != nil {
				t.Fatalf("inner of a well-formed element does not parse: %q: %v", el.Inner, err)
			}
			if el.Name.Space == xmpp.NSStream && el.Name.Local == "features" {
				var f features
				_ = unmarshalInner(el.Inner, &f)
			}
		}
	})
}

// FuzzStanzaParsers runs the parsers of stanza content on arbitrary input;
// Event's payloads, cut by pubsub.ParseEvent, must each be one element to
// encoding/xml too. The items results are pubsub.ParseItems's, fuzzed in
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
			if n, err := roots(p); err != nil || n != 1 {
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
		if e := parseAuthFailure("PLAIN", b); e.Condition == "" {
			t.Fatalf("parseAuthFailure gave %+v", e)
		}
		if _, ok := xmpp.FirstChild(b); ok && len(b) == 0 {
			t.Fatal("FirstChild found an element in nothing")
		}
	})
}
