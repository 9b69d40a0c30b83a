package xmpptest

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"

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
	values  values // where its attribute values are in tag
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
	if e.values.n <= len(e.values.at) { // the reader found them all
		for _, v := range e.values.at[:e.values.n] {
			if string(attrName(e.tag, int(v[0])-1)) == local {
				return e.tag[v[0]:v[1]]
			}
		}
		return nil
	}
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
		Raw:    raw,
		Inner:  raw[innerAt : innerAt+len(e.Inner) : innerAt+len(e.Inner)],
		tag:    raw[:len(e.tag):len(e.tag)],
		values: e.values,
		hdr:    e.hdr,
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

// attrName returns the name of the attribute whose value's opening quote
// is tag[q], or nil.
func attrName(tag []byte, q int) []byte {
	i := q - 1
	for i > 0 && isSpace(tag[i]) {
		i--
	}
	if i <= 0 || tag[i] != '=' {
		return nil
	}
	for i--; i > 0 && isSpace(tag[i]); i-- {
	}
	end := i + 1
	for i > 0 && !isSpace(tag[i]) {
		i--
	}
	return tag[i+1 : end]
}

// nextAttr reads one name='value' from b (the rest of a start tag after
// its name): name is nil when there is none left. It calls IndexByte only
// for the value: names are short.
func nextAttr(b []byte) (name, value, rest []byte) {
	i := 0
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	n := i
	for n < len(b) && b[n] != '=' && !isSpace(b[n]) && b[n] != '>' && b[n] != '/' {
		n++
	}
	j := n
	for j < len(b) && isSpace(b[j]) {
		j++
	}
	if j == len(b) || b[j] != '=' || n == i {
		return nil, nil, nil
	}
	for j++; j < len(b) && isSpace(b[j]); j++ {
	}
	if j == len(b) || (b[j] != '\'' && b[j] != '"') {
		return nil, nil, nil
	}
	q := bytes.IndexByte(b[j+1:], b[j])
	if q < 0 {
		return nil, nil, nil
	}
	return b[i:n], b[j+1 : j+1+q], b[j+1+q+1:]
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }
