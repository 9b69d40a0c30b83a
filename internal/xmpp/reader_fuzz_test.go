package xmpp

import (
	"bytes"
	"io"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// Stream headers the reader may find itself after: Prosody's and
// ejabberd's to a component, then some that change what encoding/xml makes
// of the elements: a default namespace that puts <error/> in the streams
// namespace, a prefix bound to no namespace (so that p:from is the
// attribute "from"), newlines before the stream; then a client's stream
// and one with no default namespace.
var fuzzHeaders = []string{
	"<?xml version='1.0'?><stream:stream id='419a06b9-1779-4949-913e-439a188adfb5' xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' xml:lang='en' from='pubpresence.localhost'>",
	`<?xml version='1.0'?><stream:stream id="9093610124340968785" xml:lang="en" xmlns:stream="http://etherx.jabber.org/streams" from="pubpresence.localhost" xmlns="jabber:component:accept">`,
	"<stream xmlns='http://etherx.jabber.org/streams' id='x'>",
	"<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns:p='' xmlns='jabber:component:accept'>",
	"\n<?xml version='1.0'?>\n\n<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:component:accept'>\n",
	"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='localhost' version='1.0'>",
	"<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='a' xmlns='b'>",
}

// fuzzSeeds are elements as Prosody 0.12 and ejabberd 23.01 send them to a
// component and to a client, and the odd cases the fast path must leave to
// encoding/xml.
var fuzzSeeds = []string{
	// Prosody
	"<presence to='pubpresence.localhost' type='subscribe' xml:lang='en' from='bob@localhost'/>",
	"<presence from='bob@localhost/r1' to='pubpresence.localhost'><delay xmlns='urn:xmpp:delay' from='localhost' stamp='2026-11-21T09:04:24Z'/></presence>",
	"<presence from='bob@localhost/r1' to='pubpresence.localhost'><show>away</show><status>out</status><priority>5</priority></presence>",
	"<presence type='unavailable' from='bob@localhost/rs' to='pubpresence.localhost'><status>Disconnected: Received SIGTERM</status></presence>",
	"<presence type='probe' from='bob@localhost/r2' to='pubpresence.localhost'/>",
	"<iq to='pubpresence.localhost' id='iq8' from='pubsub.localhost' type='result'/>",
	"<iq to='pubpresence.localhost' id='ab12.lx1-3' from='pubsub.localhost' type='result'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='presence/live'>\n     <item id='alice@localhost/laptop'/></publish></pubsub></iq>",
	"<iq to='pubpresence.localhost' id='iq15' from='localhost' type='result'>\n     <command xmlns='http://jabber.org/protocol/commands' sessionid='1ccd1ffb' status='completed'\n       node='http://jabber.org/protocol/admin#user-stats'>\n     <x xmlns='jabber:x:data' type='result'>\n       <field type='hidden' var='FORM_TYPE'><value>http://jabber.org/protocol/admin</value></field>\n       <field type='text-multi' var='ipaddresses' label='IP Addresses'><value>127.0.0.1</value><value>::1</value></field>\n     </x></command></iq>",
	"<iq type='error' id='x.1-2' from='pubsub.localhost' to='pubpresence.localhost'><error type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Field does not match: max_items</text><precondition-not-met xmlns='http://jabber.org/protocol/pubsub#errors'/></error></iq>",
	"<message from='localhost' to='pubpresence.localhost'><privilege xmlns='urn:xmpp:privilege:2'><perm access='roster' type='get'/><perm access='presence' type='managed_entity'/></privilege></message>",
	"<iq type='get' id='1' from='localhost' to='pubpresence.localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
	"<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>Replaced by a new connection</text></stream:error></stream:stream>",
	"<stream:error><invalid-from xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>Component tried to send from address &lt;alice@localhost&gt; which is not in domain &lt;pubpresence.localhost&gt;</text></stream:error></stream:stream>",
	" ",
	" \n\t <presence from='a@localhost/r' to='pubpresence.localhost'/> \r\n </stream:stream>",
	// ejabberd
	`<presence xml:lang="en" to="pubpresence.localhost" from="carol@localhost/r1"><priority>1</priority></presence>`,
	`<presence xml:lang="en" from="carol@localhost/r2"><priority>-1</priority><show>dnd</show><status>busy here</status></presence>`,
	`<presence from="carol@localhost/r2" type="unavailable"/>`,
	`<iq to="pubpresence.localhost" from="pubsub.localhost" type="result" id="i20"/>`,
	`<iq to="pubpresence.localhost" from="pubsub.localhost" type="result" id="i8"><pubsub xmlns="http://jabber.org/protocol/pubsub"><publish node="presence/live"><item id="alice@localhost/home"/></publish></pubsub></iq>`,
	`<iq to="pubpresence.localhost" from="localhost" type="result" id="i18"><command status="completed"` + "\n" +
		`        sessionid="2026-11-21T09:04:24.873002Z" node="http://jabber.org/protocol/admin#user-stats" xmlns="http://jabber.org/protocol/commands">` +
		`<x type="form" xmlns="jabber:x:data"><field var="ipaddresses" type="text-multi" label="IP addresses"><value>127.0.0.1:53862</value></field></x></command></iq>`,
	`<iq to="pubpresence.localhost" from="pubsub.localhost" type="error" id="i9"><error type="wait"><resource-constraint xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/><text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">Unknown field 'pubsub#foo_bar' of type '...#node_config'</text></error></iq>`,
	"<stream:error><system-shutdown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
	// To a client: features, STARTTLS, SASL, a pubsub event.
	"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1</mechanism><mechanism>PLAIN</mechanism></mechanisms></stream:features>",
	"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
	`<challenge xmlns="urn:ietf:params:xml:ns:xmpp-sasl">cj1meWtvK2QybGJiRmdPTlJ2OXFreGRhd0wzcmZjTkhZSlkxWlZ2V1ZzN2oscz1RU1hDUitRNnNlazhiZjkyLGk9NDA5Ng==</challenge>`,
	"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>dj1ybUY5cHFWOFM3c3VBb1pXamE0ZEpSa0ZzS1E9</success>",
	"<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/><text xml:lang='en'>Invalid username or password</text></failure>",
	"<iq type='result' id='bind_1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@localhost/r</jid></bind></iq>",
	"<message from='pubsub.localhost' to='alice@localhost/r' xmlns='jabber:client'><event xmlns='http://jabber.org/protocol/pubsub#event'><items node='presence/live'><item id='bob@localhost/r'><user xmlns='urn:pubpresence:0'/></item></items></event></message>",
	"<message xmlns='' from='a'/><message xmlns='x' xmlns='y'/><message xmlns='&amp;'/>",
	"<message xmlns='a\rb'/><xmlns/><xmlns:x xmlns:xmlns='z'/>",
	// Entities and character references, quotes inside values.
	`<presence from="a&amp;b@localhost/&#x72;&#49;&apos;&quot;&lt;&gt;" to='x&apos;y' id='&#65;' type="av&#x41;il"><status>&lt;b&gt; &#233; &#x1F600;</status></presence>`,
	`<presence from='it"s' to="it's"/>`,
	// What the fast path leaves to encoding/xml.
	"<presence from='a\r\nb' to='c\rd'><status>x\r\ny</status></presence>",
	"<presence from='a@localhost/r'><![CDATA[</presence>]]></presence>",
	"<presence from='a@localhost/r'><!-- </presence> --></presence>",
	"<?pi x?><!-- c --><presence from='p'/>",
	"<!DOCTYPE x [<!ENTITY a 'b'>]><presence from='&a;'/>",
	"<c:presence xmlns:c='jabber:component:accept' from='forged@localhost'/>",
	"<presence xmlns:p='' p:from='forged@localhost' from='real@localhost'/>",
	"<presence p:from='forged@localhost' from='real@localhost'/>",
	"<presence from='first' from='second'/>",
	"<error xmlns='http://etherx.jabber.org/streams'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></error>",
	"<error><conflict/></error>",
	"<presence from='a'><x><x><y/></x></x></presence>",
	"<presence from='a'><x></y></presence>",
	"<presence from='a'><p:x xmlns:p='u'></q:x></presence>",
	"<presence from='&#xD800;' to='&#0;'/>",
	"<presence from='&#X41;'/><presence from='&#;'/>",
	"<presence>]]></presence>",
	"<presence from=unquoted/>",
	"<presence from/>",
	"<presence from='a'/ >",
	"<presence\xc3\xa9 from='a'/>",
	"<presence from='\xff'/>",
	"<presence><status>\x00</status></presence>",
	"text between stanzas<presence/>",
	"<presence from='a'>",
	"<presence from='a'><show>away</show>",
	"</presence>",
	"</stream:stream>",
	"<presence from='a'></presence><presence from='b'></presence>",
	"\n\n<presence from='a'>\n<x>\n</y></presence>",
	"<iq type='result' id='x' from='a'><a:b:c/></iq>",
	"<presence from='" + strings.Repeat("x", 300) + "'><status>" + strings.Repeat("é", 400) + "</status></presence>",
	strings.Repeat("<a>", 70) + strings.Repeat("</a>", 70),
}

// chunkReader returns its input in pieces of the given sizes, in turn.
type chunkReader struct {
	data  []byte
	sizes []byte
	n     int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	size := len(c.data)
	if len(c.sizes) > 0 {
		size = int(c.sizes[c.n%len(c.sizes)]) + 1
		c.n++
	}
	n := copy(p, c.data[:min(size, len(c.data))])
	c.data = c.data[n:]
	return n, nil
}

type readResult struct {
	els []Element
	err string
}

// readAll reads as the component's and the client's read loops do, into
// one Element: up to the end of the stream, a stream error, or an error.
func readAll(r *Reader) readResult {
	var res readResult
	var el Element
	for {
		if err := r.Next(&el); err != nil {
			res.err = err.Error()
			return res
		}
		if r.TransientAnswers { // valid until the next Next: keep copies
			el.ID, el.Type, el.From, el.To = strings.Clone(el.ID), strings.Clone(el.Type), strings.Clone(el.From), strings.Clone(el.To)
		}
		res.els = append(res.els, el)
		if el.IsStreamError() {
			return res
		}
	}
}

// newTestReader returns a reader of data, a stream header and what follows,
// positioned after the header; fast false reads everything with
// encoding/xml, as the reader did before the fast path.
func newTestReader(tb testing.TB, src io.Reader, fast bool) *Reader {
	r := NewReader(src)
	if _, err := r.Header(); err != nil {
		tb.Fatalf("stream header: %v", err)
	}
	r.Self = "pubpresence.localhost"
	r.NoFast = !fast
	return r
}

// FuzzReaderFastVsSlow: the reader with its fast path reads exactly what
// encoding/xml alone reads — the same elements, Inner nil or empty alike,
// and the same error — whatever the bytes, the stream header, how they
// arrive and how small the input buffer is. With header's top bit set,
// both keep the elements' text (Reader.Raw), which must be the same too;
// with its bit 0x40, the fast path reads IQ answers in place
// (Reader.TransientAnswers), copied as soon as read.
func FuzzReaderFastVsSlow(f *testing.F) {
	for i, s := range fuzzSeeds {
		f.Add(uint8(i%len(fuzzHeaders)), []byte(nil), uint8(0), []byte(s))
		f.Add(uint8(i%len(fuzzHeaders)), []byte{0, 6, 30, 200}, uint8(5), []byte(s+fuzzSeeds[(i+1)%len(fuzzSeeds)]))
	}
	all := []byte(strings.Join(fuzzSeeds[:20], " "))
	f.Add(uint8(0), []byte(nil), uint8(0), all)
	f.Add(uint8(1), []byte{99}, uint8(1), all)
	for i, s := range fuzzSeeds[20:] {
		f.Add(uint8(0x80|(5+i%2)), []byte{3, 40}, uint8(9), []byte(s))
	}
	f.Add(uint8(0x85), []byte{2, 90}, uint8(7), all)
	f.Add(uint8(0x40), []byte{5, 17}, uint8(0), all)
	_, stream := benchStream(40)
	f.Add(uint8(0x40), []byte(nil), uint8(0), stream)
	f.Fuzz(func(t *testing.T, header uint8, chunks []byte, bufSize uint8, body []byte) {
		hdr := fuzzHeaders[int(header&0x3f)%len(fuzzHeaders)]
		raw := header&0x80 != 0
		data := append([]byte(hdr), body...)
		sr := newTestReader(t, bytes.NewReader(data), false)
		sr.Raw = raw
		slow := readAll(sr)

		// The fast path with the input in pieces and, unless bufSize is
		// 0, a small buffer that must grow or hand over to encoding/xml.
		fr := newTestReader(t, &chunkReader{data: data, sizes: chunks}, true)
		fr.Raw = raw
		fr.TransientAnswers = header&0x40 != 0
		if bufSize > 0 {
			n := int(bufSize)
			in := fr.in
			in.buf = append(make([]byte, 0, n), in.buffered()...)[:max(n, in.w-in.r)]
			in.w -= in.r
			in.off += int64(in.r)
			in.r = 0
			in.max = 4 * n
			fr.st.maxPartial = n / 2
		}
		fast := readAll(fr)
		if !reflect.DeepEqual(slow, fast) {
			t.Fatalf("header %d, input %q:\nencoding/xml: %+v\nfast path:    %+v", header, body, slow, fast)
		}
	})
}

// TestReaderFastPathTaken checks that the stanzas servers send do take the
// fast path (the fuzz target only checks that it is right when taken).
func TestReaderFastPathTaken(t *testing.T) {
	header, body := benchStream(40)
	r := newTestReader(t, bytes.NewReader(append([]byte(header), body...)), true)
	n := 0
	for {
		if !r.tryFast(new(Element)) {
			break
		}
		n++
	}
	if n != 40 {
		t.Errorf("the fast path read %d of 40 stanzas", n)
	}
	for _, s := range fuzzSeeds[:10] {
		if strings.HasPrefix(s, "<stream:") {
			continue
		}
		r := newTestReader(t, strings.NewReader(fuzzHeaders[0]+s), true)
		if !r.tryFast(new(Element)) {
			t.Errorf("the fast path did not read %q", s)
		}
	}
}

// benchStream returns the stream header the benchmarks read after, and n
// stanzas as the servers send them to the component: presences (Prosody
// style, single quotes; ejabberd style, double quotes and xml:lang) and the
// IQ results of pubsub publications, alternating.
func benchStream(n int) (header string, body []byte) {
	header = "<?xml version='1.0'?><stream:stream id='419a06b9' xmlns='jabber:component:accept' " +
		"xmlns:stream='http://etherx.jabber.org/streams' xml:lang='en' from='pubpresence.localhost'>"
	var b []byte
	for i := range n {
		u := "u" + strconv.Itoa(100000+i%1000) + "@localhost/r"
		switch i % 4 {
		case 0:
			b = append(b, "<presence to='pubpresence.localhost' from='"+u+"'><show>away</show><status>out to lunch &amp; back at 2</status><priority>5</priority></presence>"...)
		case 1:
			b = append(b, "<iq to='pubpresence.localhost' id='ab12cd34ef56.lx1fz3k0-"+strconv.FormatUint(uint64(i), 36)+"' from='pubsub.localhost' type='result'/>"...)
		case 2:
			b = append(b, `<presence xml:lang="en" to="pubpresence.localhost" from="`+u+`"><priority>-1</priority><show>dnd</show><status>busy here</status></presence>`...)
		case 3:
			b = append(b, `<iq to="pubpresence.localhost" from="pubsub.localhost" type="result" id="ab12cd34ef56.lx1fz3k0-`+strconv.FormatUint(uint64(i), 36)+`"><pubsub xmlns="http://jabber.org/protocol/pubsub"><publish node="presence/live"><item id="`+u+`"/></publish></pubsub></iq>`...)
		}
	}
	return header, b
}
