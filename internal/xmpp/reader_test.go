package xmpp

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"unsafe"
)

const clientHeader = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' " +
	"xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='localhost' version='1.0'>"

// TestReaderRawAndInner reads a client's stream with Raw set: each element
// as received, on the fast path and on encoding/xml's.
func TestReaderRawAndInner(t *testing.T) {
	input := clientHeader +
		"<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>" +
		" \n\t" + // whitespace keepalive
		"<presence from='a@b/c'/>" +
		"<message from='x' type='chat'><body>a &amp; b &lt;c&gt;</body><x xmlns='urn:x'><y/></x></message>" +
		"<iq type='result' id='1'></iq>" +
		"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>dj0=</success>" +
		"<message><!-- c --></message>" +
		"</stream:stream>"
	for _, fast := range []bool{true, false} {
		r := NewReader(strings.NewReader(input))
		r.Raw, r.NoFast = true, !fast
		hdr, err := r.Header()
		if err != nil {
			t.Fatal(err)
		}
		if got := attr(hdr, "id"); got != "s1" {
			t.Errorf("header id = %q", got)
		}
		want := []struct {
			space, local, raw, inner string
		}{
			{NSStream, "features", "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>",
				"<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"},
			{NSClient, "presence", "<presence from='a@b/c'/>", ""},
			{NSClient, "message", "<message from='x' type='chat'><body>a &amp; b &lt;c&gt;</body><x xmlns='urn:x'><y/></x></message>",
				"<body>a &amp; b &lt;c&gt;</body><x xmlns='urn:x'><y/></x>"},
			{NSClient, "iq", "<iq type='result' id='1'></iq>", ""},
			{NSSASL, "success", "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>dj0=</success>", "dj0="},
			{NSClient, "message", "<message><!-- c --></message>", "<!-- c -->"},
		}
		for i, w := range want {
			var el Element
			if err := r.Next(&el); err != nil {
				t.Fatalf("fast %v, element %d: %v", fast, i, err)
			}
			if el.Name.Space != w.space || el.Name.Local != w.local {
				t.Errorf("fast %v, element %d: name %v, want {%s %s}", fast, i, el.Name, w.space, w.local)
			}
			if string(el.Raw) != w.raw {
				t.Errorf("fast %v, element %d: raw %q, want %q", fast, i, el.Raw, w.raw)
			}
			if string(el.Inner) != w.inner {
				t.Errorf("fast %v, element %d: inner %q, want %q", fast, i, el.Inner, w.inner)
			}
		}
		if err := r.Next(new(Element)); !errors.Is(err, ErrStreamEnd) {
			t.Fatalf("fast %v: after the stream end: %v, want ErrStreamEnd", fast, err)
		}
		if r.in.keep != -1 {
			t.Errorf("fast %v: bytes still kept from %d", fast, r.in.keep)
		}
	}
}

func TestReaderErrors(t *testing.T) {
	tests := []struct {
		name, input string
		want        error
	}{
		{"eof inside stanza", clientHeader + "<message><body>hi", nil},
		{"eof between stanzas", clientHeader + "<message/> ", io.ErrUnexpectedEOF},
		{"eof inside a tag", clientHeader + "<message", io.ErrUnexpectedEOF},
		{"mismatched tags", clientHeader + "<message></presence>", nil},
		{"bad entity", clientHeader + "<message>&nosuch;</message>", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(strings.NewReader(tt.input))
			if _, err := r.Header(); err != nil {
				t.Fatal(err)
			}
			var err error
			for err == nil {
				err = r.Next(new(Element))
			}
			var se *xml.SyntaxError
			if tt.want != nil && !errors.Is(err, tt.want) || tt.want == nil && !errors.As(err, &se) {
				t.Fatalf("Next = %v, want %v", err, tt.want)
			}
		})
	}
	r := NewReader(strings.NewReader("<html><body/></html>"))
	if _, err := r.Header(); err == nil {
		t.Fatal("Header accepted <html>")
	}
	// The lines of the elements the fast path read count in a syntax
	// error's line.
	r = NewReader(strings.NewReader(clientHeader + "\n<presence/>\n<presence>\n</presence>\n<x></y>"))
	if _, err := r.Header(); err != nil {
		t.Fatal(err)
	}
	var err error
	for err == nil {
		err = r.Next(new(Element))
	}
	if se, ok := err.(*xml.SyntaxError); !ok || se.Line != 5 {
		t.Fatalf("Next = %#v, want a syntax error on line 5", err)
	}
}

// TestReaderRestart reads two streams on one input, as a client does
// before and after SASL, and the bytes read ahead.
func TestReaderRestart(t *testing.T) {
	r := NewReader(strings.NewReader(clientHeader + "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>" +
		"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='s2'>" +
		"<stream:features/><presence/>"))
	r.Raw = true
	if _, err := r.Header(); err != nil {
		t.Fatal(err)
	}
	var el Element
	if err := r.Next(&el); err != nil || el.Name.Local != "success" {
		t.Fatalf("Next = %+v, %v", el, err)
	}
	if r.Buffered() == 0 {
		t.Error("Buffered = 0 with the next stream read ahead")
	}
	r.Restart()
	hdr, err := r.Header()
	if err != nil || attr(hdr, "id") != "s2" {
		t.Fatalf("second Header = %+v, %v", hdr, err)
	}
	for _, want := range []string{"<stream:features/>", "<presence/>"} {
		if err := r.Next(&el); err != nil || string(el.Raw) != want {
			t.Fatalf("Next = %q, %v; want %q", el.Raw, err, want)
		}
	}
}

// TestReaderRawLimit: with Raw, an element encoding/xml reads must fit in
// rawMax; one that does not ends the stream, and smaller ones after a
// large one are read as usual.
func TestReaderRawLimit(t *testing.T) {
	big := "<message><!--" + strings.Repeat("x", 3000) + "--></message>"
	r := NewReader(strings.NewReader(clientHeader + big + "<presence/>"))
	r.Raw = true
	r.in.buf, r.in.max, r.in.rawMax = make([]byte, 256), 256, 8<<10
	if _, err := r.Header(); err != nil {
		t.Fatal(err)
	}
	var el Element
	if err := r.Next(&el); err != nil || string(el.Raw) != big {
		t.Fatalf("Next = %q, %v", el.Raw, err)
	}
	if err := r.Next(&el); err != nil || string(el.Raw) != "<presence/>" {
		t.Fatalf("after the large element: %q, %v", el.Raw, err)
	}
	r = NewReader(strings.NewReader(clientHeader + "<message><!--" + strings.Repeat("x", 9000) + "--></message>"))
	r.Raw = true
	r.in.rawMax = 8 << 10
	r.in.buf = make([]byte, 256)
	if _, err := r.Header(); err != nil {
		t.Fatal(err)
	}
	if err := r.Next(&el); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("Next = %v, want an element too large", err)
	}
}

// TestReaderLargeFast: an element of several MiB (an items answer with
// thousands of items) is read by the fast path, which encoding/xml never
// sees, and the buffer grown for it is let go once it has been read.
func TestReaderLargeFast(t *testing.T) {
	var inner strings.Builder
	inner.WriteString("<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='presence/actual'>")
	for i := 0; inner.Len() < 3*inbufKeep; i++ {
		fmt.Fprintf(&inner, "<item id='u%06d@localhost/r'><user xmlns='urn:x' status='away'><text>busy &amp; %d</text></user></item>", i, i)
	}
	inner.WriteString("</items></pubsub>")
	big := "<iq type='result' id='7' from='pubsub.localhost' to='pubpresence.localhost'>" + inner.String() + "</iq>"
	r := newTestReader(t, strings.NewReader(fuzzHeaders[0]+big+"<presence from='a@localhost/r'/>"), true)
	var el Element
	if err := r.Next(&el); err != nil || string(el.Inner) != inner.String() || el.ID != "7" {
		t.Fatalf("Next = %q… (%d bytes), %v", el.Inner[:min(len(el.Inner), 80)], len(el.Inner), err)
	}
	if r.in.skipped < int64(len(big)) {
		t.Errorf("the fast path consumed %d bytes of %d", r.in.skipped, len(big))
	}
	if len(r.in.buf) > inbufKeep {
		t.Errorf("buffer of %d bytes kept after the large element", len(r.in.buf))
	}
	if err := r.Next(&el); err != nil || el.From != "a@localhost/r" {
		t.Fatalf("after the large element: %+v, %v", el, err)
	}
}

// TestReaderIntern: the strings the fast path reads share what they can.
func TestReaderIntern(t *testing.T) {
	r := newTestReader(t, strings.NewReader(fuzzHeaders[0]+
		"<iq type='result' to='pubpresence.localhost' xmlns='jabber:component:accept' id='a&amp;b' from='c'/>"), true)
	var el Element
	if err := r.Next(&el); err != nil {
		t.Fatal(err)
	}
	if el.ID != "a&b" || el.From != "c" || el.Type != "result" || el.To != r.Self || el.Name.Space != NSComponent || el.Inner != nil {
		t.Fatalf("Next = %+v", el)
	}
	if unsafe.StringData(el.To) != unsafe.StringData(r.Self) || unsafe.StringData(el.Name.Space) != unsafe.StringData(r.space) {
		t.Error("To or the namespace is a string of its own")
	}
}

// TestReaderTransientAnswers: with TransientAnswers, an IQ answer's
// attributes are read in place, with no allocation, and are right until
// the next element; other elements' are the caller's, as always.
func TestReaderTransientAnswers(t *testing.T) {
	const answer = "<iq type='result' id='inst.x-1' from='pubsub.localhost' to='pubpresence.localhost'/>"
	const presence = "<presence from='u@localhost/r' id='p1'><show>away</show></presence>"
	var in strings.Builder
	in.WriteString(fuzzHeaders[0])
	for range 200 {
		in.WriteString(answer + presence)
	}
	r := newTestReader(t, strings.NewReader(in.String()), true)
	r.TransientAnswers = true
	var el Element
	if err := r.Next(&el); err != nil {
		t.Fatal(err)
	}
	if el.ID != "inst.x-1" || el.From != "pubsub.localhost" || el.Type != "result" || el.Inner != nil {
		t.Fatalf("answer = %+v", el)
	}
	if err := r.Next(&el); err != nil {
		t.Fatal(err)
	}
	kept := el // a presence: its strings stay
	allocs := testing.AllocsPerRun(100, func() {
		if err := r.Next(&el); err != nil || el.ID != "inst.x-1" || el.From != "pubsub.localhost" {
			t.Fatalf("answer = %+v, %v", el, err)
		}
		if err := r.Next(&el); err != nil || el.From != "u@localhost/r" { // two allocations: attributes, Inner
			t.Fatalf("presence = %+v, %v", el, err)
		}
	})
	if allocs != 2 {
		t.Errorf("%v allocations per answer and presence, want 2 (the presence's)", allocs)
	}
	if kept.From != "u@localhost/r" || kept.ID != "p1" || string(kept.Inner) != "<show>away</show>" {
		t.Errorf("a presence read before changed: %+v", kept)
	}
}

func TestFirstChild(t *testing.T) {
	se, ok := FirstChild([]byte(" text <ping xmlns='urn:xmpp:ping' a='1'/><x/>"))
	if !ok || se.Name.Space != NSPing || se.Name.Local != "ping" || attr(se, "a") != "1" {
		t.Fatalf("FirstChild = %+v, %v", se, ok)
	}
	for _, in := range []string{"", "text", "<a", "</a>"} {
		if _, ok := FirstChild([]byte(in)); ok {
			t.Errorf("FirstChild(%q) found an element", in)
		}
	}
}

// BenchmarkReader reads the stanzas servers send to the component, one op
// a stanza, with each of the reader's modes.
func BenchmarkReader(b *testing.B) {
	const n = 1000
	header, body := benchStream(n)
	data := append([]byte(header), body...)
	for _, mode := range []struct {
		name      string
		fast, raw bool
	}{{"fast", true, false}, {"fast-raw", true, true}, {"slow", false, false}, {"slow-raw", false, true}} {
		b.Run(mode.name, func(b *testing.B) {
			b.SetBytes(int64(len(body) / n))
			b.ReportAllocs()
			got := 0
			for i := 0; i < b.N; i += n {
				b.StopTimer()
				r := newTestReader(b, bytes.NewReader(data), mode.fast)
				r.Raw = mode.raw
				b.StartTimer()
				var el Element
				for r.Next(&el) == nil {
					got++
				}
			}
			if got < b.N {
				b.Fatalf("read %d stanzas, want %d", got, b.N)
			}
		})
	}
}
