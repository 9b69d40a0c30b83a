package c2s

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/pubpresence/pubpresence/internal/xmpp"
)

// maxStanzaSize bounds one top-level element read from the server.
const maxStanzaSize = 64 << 20

// errStreamEnd is returned by streamReader.next when the server closed the
// stream with </stream:stream>.
var errStreamEnd = errors.New("stream closed by server")

// recorder is the byte source of the stream decoder. It keeps every byte
// read since the last discard, so that an element's raw text can be cut out
// of the input by the decoder's offsets instead of being re-encoded.
type recorder struct {
	r    *bufio.Reader
	buf  []byte
	base int64 // input offset of buf[0]
}

func (r *recorder) ReadByte() (byte, error) {
	b, err := r.r.ReadByte()
	if err == nil {
		r.buf = append(r.buf, b)
	}
	return b, err
}

func (r *recorder) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	b, err := r.ReadByte()
	if err != nil {
		return 0, err
	}
	p[0] = b
	return 1, nil
}

func (r *recorder) slice(from, to int64) []byte {
	return r.buf[from-r.base : to-r.base]
}

// discard forgets the bytes before offset upto.
func (r *recorder) discard(upto int64) {
	n := int(upto - r.base)
	rest := len(r.buf) - n
	if cap(r.buf) > 64<<10 && rest < 4<<10 {
		nb := make([]byte, rest, 4<<10)
		copy(nb, r.buf[n:])
		r.buf = nb
	} else {
		copy(r.buf, r.buf[n:])
		r.buf = r.buf[:rest]
	}
	r.base = upto
}

// element is one top-level element of the stream, with its raw text.
type element struct {
	Name  xml.Name
	Attr  []xml.Attr
	Raw   []byte // the whole element as received
	Inner []byte // its content, between the start and end tags
}

func (e *element) attr(local string) string {
	return attrValue(e.Attr, local)
}

func attrValue(attrs []xml.Attr, local string) string {
	for _, a := range attrs {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// streamReader reads the stream header and then one top-level element at a
// time. A new streamReader is made for every stream restart (after SASL).
type streamReader struct {
	rec *recorder
	dec *xml.Decoder
}

func newStreamReader(br *bufio.Reader) *streamReader {
	rec := &recorder{r: br}
	return &streamReader{rec: rec, dec: xml.NewDecoder(rec)}
}

// header reads up to and including the server's <stream:stream> start tag.
func (s *streamReader) header() (xml.StartElement, error) {
	for {
		tok, err := s.dec.Token()
		if err != nil {
			return xml.StartElement{}, fmt.Errorf("read stream header: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name.Space != xmpp.NSStream || t.Name.Local != "stream" {
				return xml.StartElement{}, fmt.Errorf("read stream header: unexpected <%s xmlns='%s'>", t.Name.Local, t.Name.Space)
			}
			s.rec.discard(s.dec.InputOffset())
			return t.Copy(), nil
		case xml.EndElement:
			return xml.StartElement{}, fmt.Errorf("read stream header: unexpected end tag")
		}
	}
}

// next returns the next top-level element. Character data between elements
// (whitespace keepalives) is skipped. The end of the stream gives errStreamEnd.
func (s *streamReader) next() (*element, error) {
	for {
		start := s.dec.InputOffset()
		tok, err := s.dec.Token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return nil, errStreamEnd
		case xml.StartElement:
			el := &element{Name: t.Name, Attr: append([]xml.Attr(nil), t.Attr...)}
			innerStart := s.dec.InputOffset()
			innerEnd := innerStart
			for depth := 1; depth > 0; {
				before := s.dec.InputOffset()
				tok, err := s.dec.Token()
				if err != nil {
					if err == io.EOF {
						err = io.ErrUnexpectedEOF
					}
					return nil, err
				}
				switch tok.(type) {
				case xml.StartElement:
					depth++
				case xml.EndElement:
					depth--
					if depth == 0 {
						innerEnd = before
					}
				}
				if len(s.rec.buf) > maxStanzaSize {
					return nil, fmt.Errorf("stanza <%s> larger than %d bytes", t.Name.Local, maxStanzaSize)
				}
			}
			end := s.dec.InputOffset()
			raw := bytes.Clone(s.rec.slice(start, end))
			el.Raw = raw
			el.Inner = raw[innerStart-start : innerEnd-start]
			s.rec.discard(end)
			return el, nil
		default:
			s.rec.discard(s.dec.InputOffset())
		}
	}
}

// node is an element of a parsed fragment, with its raw text.
type node struct {
	Name     xml.Name
	Attr     []xml.Attr
	Raw      []byte
	Inner    []byte
	Text     string // character data directly inside the element
	Children []*node
}

func (n *node) attr(local string) string { return attrValue(n.Attr, local) }

// child returns the first child with the given name; an empty space
// matches any namespace.
func (n *node) child(space, local string) *node {
	for _, c := range n.Children {
		if c.Name.Local == local && (space == "" || c.Name.Space == space) {
			return c
		}
	}
	return nil
}

// parseFragment parses a sequence of elements (the content of a stanza) into
// trees whose Raw and Inner slices point into b. Elements without a namespace
// of their own have an empty Name.Space.
func parseFragment(b []byte) ([]*node, error) {
	dec := xml.NewDecoder(bytes.NewReader(b))
	var roots, stack []*node
	var starts []int64
	for {
		before := dec.InputOffset()
		tok, err := dec.Token()
		if err == io.EOF {
			if len(stack) > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return roots, nil
		}
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			n := &node{Name: t.Name, Attr: append([]xml.Attr(nil), t.Attr...)}
			if len(stack) == 0 {
				roots = append(roots, n)
			} else {
				p := stack[len(stack)-1]
				p.Children = append(p.Children, n)
			}
			stack = append(stack, n)
			starts = append(starts, before, dec.InputOffset())
		case xml.EndElement:
			n := stack[len(stack)-1]
			s, is := starts[len(starts)-2], starts[len(starts)-1]
			n.Raw = b[s:dec.InputOffset()]
			n.Inner = b[is:before]
			stack = stack[:len(stack)-1]
			starts = starts[:len(starts)-2]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].Text += string(t)
			}
		}
	}
}

// escape returns s escaped for use in XML character data or in an attribute
// value delimited by either quote.
func escape(s string) string {
	if !strings.ContainsAny(s, "<>&'\"\r\n\t") {
		return s
	}
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
