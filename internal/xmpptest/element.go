package xmpptest

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"

	"github.com/pubpresence/pubpresence/internal/xmpp"
)

// ErrStreamEnd is what Read returns when the peer closed the stream with
// </stream:stream>.
var ErrStreamEnd = errors.New("xmpptest: the peer closed the stream")

// Element is one top-level element the peer sent.
//
// The Elements that Read, Next and Log give are the caller's: they were
// checked with encoding/xml, and Name and Attrs come from it. Those a
// Handler gets are the same, except on a server with Config.Views, where
// they are views into the read buffer, valid until the Handler returns,
// checked by nothing and decoded only when asked.
type Element struct {
	Raw   []byte // the whole element, as the peer wrote it
	Inner []byte // its content, between its start and end tags

	tag     []byte // the start tag, a prefix of Raw
	hdr     []byte // the stream header it came in, for its namespaces
	decoded bool   // name and attrs are set
	name    xml.Name
	attrs   []xml.Attr
}

// Name is the element's name, its namespace resolved: a stanza's is the
// stream's default namespace.
func (e *Element) Name() xml.Name {
	if !e.decoded {
		d, _ := decode(e.hdr, e.Raw, e.tag)
		return d.name
	}
	return e.name
}

// Attrs returns every attribute of the start tag, values unescaped,
// namespace declarations included.
func (e *Element) Attrs() []xml.Attr {
	if !e.decoded {
		d, _ := decode(e.hdr, e.Raw, e.tag)
		return d.attrs
	}
	return e.attrs
}

// Attr returns the value of the attribute local (with no prefix), or "".
func (e *Element) Attr(local string) string {
	for _, a := range e.Attrs() {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// RawAttr returns the value of the attribute local (with no prefix) as
// written, still escaped, or nil. It allocates nothing.
func (e *Element) RawAttr(local string) []byte {
	_, attrs := splitTag(e.tag)
	for len(attrs) > 0 {
		var name, value []byte
		name, value, attrs = nextAttr(attrs)
		if name == nil {
			return nil
		}
		if string(name) == local {
			return value
		}
	}
	return nil
}

// Is reports whether the element's local name (its name without prefix)
// is local. It allocates nothing.
func (e *Element) Is(local string) bool {
	name, _ := splitTag(e.tag)
	if i := bytes.IndexByte(name, ':'); i >= 0 {
		name = name[i+1:]
	}
	return string(name) == local
}

// String is the raw element, for failure messages.
func (e *Element) String() string { return string(e.Raw) }

// clone returns an Element of the caller's for the view e, decoded.
func (e *Element) clone() (*Element, error) {
	raw := bytes.Clone(e.Raw)
	innerAt := len(e.tag)
	c := &Element{
		Raw:   raw,
		Inner: raw[innerAt : innerAt+len(e.Inner) : innerAt+len(e.Inner)],
		tag:   raw[:len(e.tag):len(e.tag)],
		hdr:   e.hdr,
	}
	d, err := decode(e.hdr, raw, c.tag)
	if err != nil {
		return nil, err
	}
	c.name, c.attrs, c.decoded = d.name, d.attrs, true
	return c, nil
}

type decoded struct {
	name  xml.Name
	attrs []xml.Attr
}

// decode reads raw with encoding/xml as the child of the stream header
// hdr (a start tag; a bare one when empty), which checks that it is one
// well-formed element and resolves its namespaces as the stream declares
// them.
func decode(hdr, raw, tag []byte) (decoded, error) {
	if len(hdr) == 0 {
		hdr = []byte("<stream:stream xmlns:stream='" + xmpp.NSStream + "'>")
	}
	doc := make([]byte, 0, len(hdr)+len(raw)+32)
	doc = append(append(doc, hdr...), raw...)
	doc = append(append(append(doc, "</"...), tagName(hdr)...), '>')
	d := xml.NewDecoder(bytes.NewReader(doc))
	var out decoded
	depth := 0
	for {
		tok, err := d.Token()
		if err != nil {
			return decoded{}, fmt.Errorf("xmpptest: read <%s: %w", tagName(tag), err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth++; depth == 2 {
				if out.name.Local != "" {
					return decoded{}, fmt.Errorf("xmpptest: more than one element in %q", raw)
				}
				out.name, out.attrs = t.Name, append([]xml.Attr(nil), t.Attr...)
			}
		case xml.EndElement:
			if depth--; depth == 1 && d.InputOffset() != int64(len(hdr)+len(raw)) {
				return decoded{}, fmt.Errorf("xmpptest: %q is not one element", raw)
			}
			if depth == 0 {
				if out.name.Local == "" {
					return decoded{}, fmt.Errorf("xmpptest: no element in %q", raw)
				}
				return out, nil
			}
		}
	}
}

// decodeHeader returns the attributes of the stream header hdr (a start
// tag), values unescaped.
func decodeHeader(hdr []byte) ([]xml.Attr, error) {
	doc := append(append(append(bytes.Clone(hdr), "</"...), tagName(hdr)...), '>')
	tok, err := xml.NewDecoder(bytes.NewReader(doc)).Token()
	if err != nil {
		return nil, fmt.Errorf("xmpptest: read the stream header: %w", err)
	}
	se, ok := tok.(xml.StartElement)
	if !ok || se.Name.Space != xmpp.NSStream || se.Name.Local != "stream" {
		return nil, fmt.Errorf("xmpptest: %q is not a stream header", hdr)
	}
	return se.Attr, nil
}

// reader reads the peer's stream into one buffer that it reuses. Each
// item it returns (a stream header, an element, the stream's end) is a
// view into that buffer, valid until the next read.
type reader struct {
	src io.Reader
	buf []byte
	pos int // start of what is not consumed
}

type itemKind int

const (
	itemElement itemKind = iota
	itemHeader           // a <stream:stream> start tag, with what came before it
	itemEnd              // </stream:stream>
)

type item struct {
	kind   itemKind
	raw    []byte // the element, the header's start tag, or the end tag
	tagLen int    // an element's start tag: raw[:tagLen]
}

// buffered returns the next complete item already read, if any.
func (r *reader) buffered() (item, bool, error) {
	it, n, err := scan(r.buf[r.pos:])
	if err != nil {
		return item{}, false, err
	}
	if n == 0 { // drop the character data before the incomplete item (keepalives)
		if k := bytes.IndexByte(r.buf[r.pos:], '<'); k >= 0 {
			r.pos += k
		} else {
			r.pos = len(r.buf)
		}
		return item{}, false, nil
	}
	r.pos += n
	return it, true, nil
}

// next returns the next item, reading as much as it needs.
func (r *reader) next() (item, error) {
	for {
		it, ok, err := r.buffered()
		if err != nil || ok {
			return it, err
		}
		if err := r.fill(); err != nil {
			return item{}, err
		}
	}
}

// fill reads at least one more byte, growing the buffer when it is full.
func (r *reader) fill() error {
	if r.pos > 0 {
		n := copy(r.buf, r.buf[r.pos:])
		r.buf, r.pos = r.buf[:n], 0
	}
	if len(r.buf) == cap(r.buf) {
		r.buf = append(r.buf, make([]byte, max(cap(r.buf), 4<<10))...)[:len(r.buf)]
	}
	n, err := r.src.Read(r.buf[len(r.buf):cap(r.buf)])
	r.buf = r.buf[:len(r.buf)+n]
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// scan finds the first complete item in b. n is how much of b it takes
// (the character data before it included), 0 when b holds no complete
// item yet. It finds the boundaries of elements by their tags (quoted
// attribute values, comments, CDATA and processing instructions skipped)
// and checks nothing else: that is decode's job.
func scan(b []byte) (it item, n int, err error) {
	i := 0
	for {
		j := bytes.IndexByte(b[i:], '<')
		if j < 0 {
			return item{}, 0, nil // character data between items (keepalives) is skipped
		}
		i += j
		rest := b[i:]
		if len(rest) < 2 {
			return item{}, 0, nil
		}
		switch rest[1] {
		case '?', '!': // the XML declaration, a processing instruction, a comment
			k, err := skipMarkup(rest)
			if k == 0 || err != nil {
				return item{}, 0, err
			}
			i += k
			continue
		case '/':
			k := bytes.IndexByte(rest, '>')
			if k < 0 {
				return item{}, 0, nil
			}
			return item{kind: itemEnd, raw: rest[:k+1]}, i + k + 1, nil
		}
		k, selfClosing, err := tagEnd(rest)
		if k == 0 || err != nil {
			return item{}, 0, err
		}
		name, _ := splitTag(rest[:k])
		if !selfClosing && (string(name) == "stream" || bytes.HasSuffix(name, []byte(":stream"))) {
			return item{kind: itemHeader, raw: rest[:k]}, i + k, nil
		}
		if selfClosing {
			return item{kind: itemElement, raw: rest[:k], tagLen: k}, i + k, nil
		}
		end, err := elementEnd(rest, k)
		if end == 0 || err != nil {
			return item{}, 0, err
		}
		return item{kind: itemElement, raw: rest[:end], tagLen: k}, i + end, nil
	}
}

// elementEnd returns the length of the element that starts b, whose start
// tag is b[:k], or 0 when b does not hold all of it.
func elementEnd(b []byte, k int) (int, error) {
	depth := 1
	for {
		j := bytes.IndexByte(b[k:], '<')
		if j < 0 {
			return 0, nil
		}
		k += j
		rest := b[k:]
		if len(rest) < 2 {
			return 0, nil
		}
		switch rest[1] {
		case '?', '!':
			m, err := skipMarkup(rest)
			if m == 0 || err != nil {
				return 0, err
			}
			k += m
		case '/':
			m := bytes.IndexByte(rest, '>')
			if m < 0 {
				return 0, nil
			}
			k += m + 1
			if depth--; depth == 0 {
				return k, nil
			}
		default:
			m, selfClosing, err := tagEnd(rest)
			if m == 0 || err != nil {
				return 0, err
			}
			k += m
			if !selfClosing {
				depth++
			}
		}
	}
}

// skipMarkup returns the length of the declaration, processing
// instruction, comment or CDATA section that starts b, or 0 when b does
// not hold all of it.
func skipMarkup(b []byte) (int, error) {
	var end string
	switch {
	case b[1] == '?':
		end = "?>"
	case bytes.HasPrefix(b, []byte("<!--")):
		end = "-->"
	case bytes.HasPrefix(b, []byte("<![CDATA[")):
		end = "]]>"
	case bytes.HasPrefix([]byte("<![CDATA["), b) || bytes.HasPrefix([]byte("<!--"), b):
		return 0, nil // not enough yet to tell
	default:
		return 0, fmt.Errorf("xmpptest: %.20q is not allowed in XMPP", b)
	}
	k := bytes.Index(b[2:], []byte(end))
	if k < 0 {
		return 0, nil
	}
	return 2 + k + len(end), nil
}

// tagEnd returns the length of the start tag that starts b, and whether it
// is self-closing, or 0 when b does not hold all of it.
func tagEnd(b []byte) (n int, selfClosing bool, err error) {
	k := 1
	for {
		j := bytes.IndexAny(b[k:], `>'"<`)
		if j < 0 {
			return 0, false, nil
		}
		k += j
		switch b[k] {
		case '>':
			return k + 1, b[k-1] == '/', nil
		case '<':
			return 0, false, fmt.Errorf("xmpptest: '<' in the tag %.40q", b[:k+1])
		}
		q := bytes.IndexByte(b[k+1:], b[k])
		if q < 0 {
			return 0, false, nil
		}
		k += q + 2
	}
}

// splitTag returns a start tag's qualified name and what follows it.
func splitTag(tag []byte) (name, attrs []byte) {
	if len(tag) < 2 {
		return nil, nil
	}
	k := 1
	for k < len(tag) && !isSpace(tag[k]) && tag[k] != '/' && tag[k] != '>' {
		k++
	}
	return tag[1:k], tag[k:]
}

// tagName is the qualified name of a start tag, for messages.
func tagName(tag []byte) string {
	name, _ := splitTag(tag)
	return string(name)
}

// nextAttr reads one name='value' from b (the rest of a start tag after
// its name): name is nil when there is none left.
func nextAttr(b []byte) (name, value, rest []byte) {
	i := 0
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	eq := bytes.IndexByte(b[i:], '=')
	if eq < 0 {
		return nil, nil, nil
	}
	name = bytes.TrimRight(b[i:i+eq], " \t\r\n")
	v := b[i+eq+1:]
	j := 0
	for j < len(v) && isSpace(v[j]) {
		j++
	}
	if j == len(v) || (v[j] != '\'' && v[j] != '"') {
		return nil, nil, nil
	}
	q := bytes.IndexByte(v[j+1:], v[j])
	if q < 0 {
		return nil, nil, nil
	}
	return name, v[j+1 : j+1+q], v[j+1+q+1:]
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }
