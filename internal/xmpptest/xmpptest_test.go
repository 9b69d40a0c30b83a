package xmpptest

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/pubpresence/pubpresence/internal/xmpp"
)

const testStream = "<?xml version='1.0'?>\n<stream:stream xmlns='jabber:component:accept' " +
	"xmlns:stream='http://etherx.jabber.org/streams' to='c.localhost'>"

// testElements are elements as a peer may write them, with what Read gives.
var testElements = []struct {
	raw, inner string
	name       string // {space}local
}{
	{"<handshake>abc</handshake>", "abc", "{jabber:component:accept}handshake"},
	{"<presence from='a@b/c' to='x'/>", "", "{jabber:component:accept}presence"},
	{"<iq type='get' id='a>b' to=\"c'd\"><q xmlns='urn:q'><iq/><iq>x</iq></q></iq>",
		"<q xmlns='urn:q'><iq/><iq>x</iq></q>", "{jabber:component:accept}iq"},
	{"<message><body><![CDATA[</message> <x>]]></body><!-- </message> --><?pi </message>?></message>",
		"<body><![CDATA[</message> <x>]]></body><!-- </message> --><?pi </message>?>", "{jabber:component:accept}message"},
	{"<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
		"<conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>", "{http://etherx.jabber.org/streams}error"},
	{"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'></starttls >", "", "{urn:ietf:params:xml:ns:xmpp-tls}starttls"},
	{"<item a=\"it's\"><items/><itemx>y</itemx></item>", "<items/><itemx>y</itemx>", "{jabber:component:accept}item"},
}

// testConn returns a Conn that reads src, on a server of no connection.
func testConn(t *testing.T, src io.Reader) *Conn {
	s := &Server{tb: t}
	c := newConn(s, nil)
	c.r.src = src
	return c
}

// TestRead reads a stream whole and one byte at a time: the same elements,
// as written, with their names resolved in the stream's namespaces.
func TestRead(t *testing.T) {
	var b strings.Builder
	b.WriteString(testStream)
	for _, e := range testElements {
		b.WriteString(" \n" + e.raw)
	}
	b.WriteString(" </stream:stream>")
	for _, tt := range []struct {
		name string
		src  func() io.Reader
	}{
		{"whole", func() io.Reader { return strings.NewReader(b.String()) }},
		{"byte by byte", func() io.Reader { return iotest.OneByteReader(strings.NewReader(b.String())) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := testConn(t, tt.src())
			hdr, err := c.ReadHeader()
			if err != nil || hdr["to"] != "c.localhost" || hdr["stream"] != xmpp.NSStream {
				t.Fatalf("ReadHeader = %v, %v", hdr, err)
			}
			for i, want := range testElements {
				e, err := c.Read()
				if err != nil {
					t.Fatalf("element %d: %v", i, err)
				}
				n := e.Name()
				if string(e.Raw) != want.raw || string(e.Inner) != want.inner || "{"+n.Space+"}"+n.Local != want.name {
					t.Errorf("element %d = %q (inner %q, name %v), want %q (inner %q, name %s)",
						i, e.Raw, e.Inner, n, want.raw, want.inner, want.name)
				}
			}
			if _, err := c.Read(); !errors.Is(err, ErrStreamEnd) || !c.GotStreamEnd() {
				t.Errorf("after the last element: %v, want ErrStreamEnd", err)
			}
		})
	}
}

// TestReadRefuses: what is not one well-formed element is an error, not an
// element.
func TestReadRefuses(t *testing.T) {
	for _, raw := range []string{
		"<iq><a></b></iq>",
		"<iq to='a<b'/>",
		"<iq>&bogus;</iq>",
		"<!DOCTYPE x><iq/>",
		"<>x</>",
		"< iq/>",
	} {
		c := testConn(t, strings.NewReader(testStream+raw+"</stream:stream>"))
		if _, err := c.ReadHeader(); err != nil {
			t.Fatal(err)
		}
		if e, err := c.Read(); err == nil {
			t.Errorf("%q: read %q", raw, e.Raw)
		}
	}
}

func TestAttrs(t *testing.T) {
	c := testConn(t, strings.NewReader(testStream+
		"<iq type='set' id=\"x&amp;y\"\n to = 'a@b/it&apos;s' xml:lang='en' p:q='1' xmlns:p='urn:p'/>"))
	if _, err := c.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	e, err := c.Read()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, attr, raw string }{
		{"type", "set", "set"},
		{"id", "x&y", "x&amp;y"},
		{"to", "a@b/it's", "a@b/it&apos;s"},
		{"lang", "", ""},
		{"q", "", ""},
		{"nope", "", ""},
	} {
		if got := e.Attr(tt.name); got != tt.attr {
			t.Errorf("Attr(%q) = %q, want %q", tt.name, got, tt.attr)
		}
		if got := e.RawAttr(tt.name); string(got) != tt.raw {
			t.Errorf("RawAttr(%q) = %q, want %q", tt.name, got, tt.raw)
		}
	}
	if !e.Is("iq") || e.Is("i") || !e.IsIQRequest() || e.IsPing() {
		t.Errorf("Is, IsIQRequest, IsPing wrong for %s", e)
	}

	// More attributes than the reader notes.
	var many strings.Builder
	many.WriteString("<x")
	for i := range 12 {
		fmt.Fprintf(&many, " a%d='%d'", i, i)
	}
	many.WriteString("/>")
	c = testConn(t, strings.NewReader(testStream+many.String()))
	if _, err := c.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if e, err = c.Read(); err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		name, want := fmt.Sprint("a", i), fmt.Sprint(i)
		if got := e.RawAttr(name); string(got) != want || e.Attr(name) != want {
			t.Errorf("%s: RawAttr(%q) = %q, Attr = %q, want %q", e, name, got, e.Attr(name), want)
		}
	}
}

// componentClient does a component's stream open and handshake with s by
// hand.
func componentClient(t *testing.T, s *Server, name, secret string) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(Wait))
	fmt.Fprintf(nc, "<?xml version='1.0'?><stream:stream xmlns='%s' xmlns:stream='%s' to='%s'>", xmpp.NSComponent, xmpp.NSStream, name)
	br := bufio.NewReader(nc)
	hdr, err := br.ReadString('>')
	if err == nil {
		hdr, err = br.ReadString('>') // after the XML declaration
	}
	if err != nil {
		t.Fatalf("server header: %v", err)
	}
	m := regexp.MustCompile(`id='([^']*)'`).FindStringSubmatch(hdr)
	if m == nil {
		t.Fatalf("server header %q has no id", hdr)
	}
	sum := sha1.Sum([]byte(m[1] + secret))
	fmt.Fprintf(nc, "<handshake>%s</handshake>", hex.EncodeToString(sum[:]))
	return nc, br
}

func TestComponentHandshake(t *testing.T) {
	s := NewServer(t, Config{Name: "c.localhost", Secret: "s"})
	nc, br := componentClient(t, s, "c.localhost", "s")
	if got, err := br.ReadString('>'); err != nil || got != "<handshake/>" {
		t.Fatalf("handshake answer %q, %v", got, err)
	}
	c := s.Conn(t)
	if s.Authenticated() != 1 || s.Headers()[0]["to"] != "c.localhost" {
		t.Errorf("authenticated %d, headers %v", s.Authenticated(), s.Headers())
	}
	fmt.Fprint(nc, "<presence to='bob@localhost'/></stream:stream>")
	if e := c.Next(t); !e.Is("presence") || e.Attr("to") != "bob@localhost" {
		t.Errorf("Next = %s", e)
	}
	if got, _ := io.ReadAll(br); string(got) != "</stream:stream>" {
		t.Errorf("after </stream:stream> the server wrote %q", got)
	}
	<-c.Gone()
	if !c.GotStreamEnd() || len(c.Log()) != 1 {
		t.Errorf("GotStreamEnd %v, log %v", c.GotStreamEnd(), c.Log())
	}

	nc, br = componentClient(t, s, "c.localhost", "wrong")
	if got, _ := io.ReadAll(br); !strings.Contains(string(got), "<not-authorized") {
		t.Errorf("a wrong token got %q", got)
	}
	nc.Close()
}

// TestViewsAllocateNothing: the serve loop of a Views server, which the
// service's benchmarks count, allocates nothing per element once warm.
func TestViewsAllocateNothing(t *testing.T) {
	const batch = 100
	answer := []byte("<iq type='result'/>")
	s := NewServer(t, Config{Name: "c.localhost", Secret: "s", Views: true, Handler: func(c *Conn, e *Element) bool {
		if e.IsIQRequest() && len(e.RawAttr("id")) > 0 && !bytes.Contains(e.Inner, []byte("nope")) {
			c.Out = append(c.Out, answer...)
		}
		return true
	}})
	nc, br := componentClient(t, s, "c.localhost", "s")
	if got, err := br.ReadString('>'); err != nil || got != "<handshake/>" {
		t.Fatalf("handshake answer %q, %v", got, err)
	}
	var req bytes.Buffer
	for i := range batch {
		fmt.Fprintf(&req, "<iq type='set' id='%d' to='pubsub.localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'>"+
			"<publish node='n'><item id='u%d@localhost/r'><x xmlns='urn:x' a='&lt;b&gt;'/></item></publish></pubsub></iq>", i, i)
	}
	in := make([]byte, batch*len(answer))
	round := func() {
		if _, err := nc.Write(req.Bytes()); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(br, in); err != nil {
			t.Fatal(err)
		}
	}
	round()
	if n := testing.AllocsPerRun(20, round); n >= 1 {
		t.Errorf("%v allocations per %d elements, want none", n, batch)
	}
	if err := s.Err(); err != nil {
		t.Error(err)
	}
}

// FuzzRead reads a stream of arbitrary bytes: the reader must not panic
// nor loop, what it reads must be elements of the input, and where the
// fast way to an element's end decides, reading every tag must agree.
func FuzzRead(f *testing.F) {
	for _, e := range testElements {
		f.Add([]byte(e.raw))
	}
	for _, s := range []string{"<iq><a></b></iq>", "<iq to='a<b'/>", "<>x</>", "<a><!-- </a> --></a>", "<a x='>'><a/></a >",
		"<a><b></a>", "<a:b xmlns:a='urn:a'><a:b/></a:b>", " \n<a/>  <b>t</b></stream:stream>"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := testConn(t, bytes.NewReader(append([]byte(testStream), data...)))
		if _, err := c.ReadHeader(); err != nil {
			t.Fatal(err)
		}
		for range len(data) + 1 {
			e, err := c.Read()
			if err != nil {
				break
			}
			if !bytes.Contains(data, e.Raw) {
				t.Fatalf("read %q, not in the input", e.Raw)
			}
		}
		for i := range data {
			if data[i] != '<' || i+1 == len(data) || bytes.IndexByte([]byte("?!/"), data[i+1]) >= 0 {
				continue
			}
			k, selfClosing := tagEnd(data[i:], nil)
			if k == 0 || selfClosing {
				continue
			}
			name, _ := splitTag(data[i : i+k])
			if len(name) == 0 {
				continue
			}
			fast, ok := elementEndFast(data[i:], k, name)
			walk, err := elementEndWalk(data[i:], k)
			if !ok || err != nil || fast == walk {
				continue
			}
			// Either may cut a malformed element anywhere; a well-formed one
			// they must both cut right.
			for _, n := range []int{fast, walk} {
				if n == 0 {
					continue
				}
				if _, err := decode(nil, data[i:i+n], data[i:i+k]); err == nil {
					t.Fatalf("%q: the fast way ends the element at %d, reading every tag at %d", data[i:], fast, walk)
				}
			}
		}
	})
}
