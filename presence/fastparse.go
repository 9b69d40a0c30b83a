package presence

import (
	"bytes"
	"unicode/utf8"

	"github.com/pubpresence/pubpresence/internal/xmltext"
)

// The fast path of ParsePresence.
//
// encoding/xml costs several microseconds and dozens of allocations for a
// typical presence. fastChildren reads the XML that servers actually send
// (plain elements, quoted attributes, the predefined entities and character
// references, ASCII names) without allocating, and gives up on anything
// else: comments, CDATA, processing instructions, prefixed element names,
// carriage returns, entities in attributes, any syntax error. Then
// decodeChildren reads the input again with encoding/xml, which has the last
// word on what is well-formed. FuzzParsePresence checks that both agree
// wherever the fast path answers.

// fastScanner walks inner XML.
type fastScanner struct {
	b []byte
	i int
}

// fastChildren reads the direct children of a presence like decodeChildren.
// It reports false when inner needs encoding/xml; pc must then be discarded.
func fastChildren(inner []byte, pc *presenceChildren) bool {
	s := fastScanner{b: inner}
	for {
		if _, ok := s.text(false); !ok {
			return false
		}
		if s.i >= len(s.b) {
			return true
		}
		if s.i+1 < len(s.b) && s.b[s.i+1] == '/' {
			return false // an end tag at the top
		}
		name, space, hasLang, empty, ok := s.startTag(true)
		if !ok {
			return false
		}
		k := classifyChild(space, name)
		var text []byte
		if !empty {
			collect := k == childShow || k == childPriority || k == childStatus
			if text, ok = s.content(name, collect); !ok {
				return false
			}
		}
		pc.add(k, text, !hasLang)
	}
}

// content reads up to and including the end tag of the element name whose
// start tag was just read. With collect, it returns the element's own
// character data (that of nested elements left out).
func (s *fastScanner) content(name []byte, collect bool) ([]byte, bool) {
	var out []byte
	pieces := 0
	var buf [16][]byte
	stack := append(buf[:0], name) // names of the open elements
	for {
		keep := collect && len(stack) == 1
		t, ok := s.text(keep)
		if !ok {
			return nil, false
		}
		if len(t) > 0 {
			switch pieces {
			case 0:
				out = t // may alias the input: never appended to
			case 1:
				out = append(append([]byte(nil), out...), t...)
			default:
				out = append(out, t...)
			}
			pieces++
		}
		if s.i >= len(s.b) {
			return nil, false // unclosed
		}
		if s.i+1 < len(s.b) && s.b[s.i+1] == '/' {
			s.i += 2
			end := s.name(false)
			s.space()
			if end == nil || s.i >= len(s.b) || s.b[s.i] != '>' {
				return nil, false
			}
			s.i++
			if !bytes.Equal(end, stack[len(stack)-1]) {
				return nil, false
			}
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return out, true
			}
			continue
		}
		child, _, _, empty, ok := s.startTag(false)
		if !ok {
			return nil, false
		}
		if !empty {
			stack = append(stack, child)
		}
	}
}

// startTag reads a start tag at s.i ('<'). It returns the element's name,
// the value of its xmlns attribute, whether it has a non-empty xml:lang and
// whether it is empty (<x/>). For a direct child of the presence (direct),
// prefixed attributes other than xml:… and xmlns:… are left to
// encoding/xml, since a prefix may be bound to the XML namespace.
func (s *fastScanner) startTag(direct bool) (name, space []byte, hasLang, empty, ok bool) {
	s.i++
	if name = s.name(false); name == nil {
		return
	}
	for {
		s.space()
		if s.i >= len(s.b) {
			return
		}
		switch s.b[s.i] {
		case '>':
			s.i++
			return name, space, hasLang, false, true
		case '/':
			if s.i+1 < len(s.b) && s.b[s.i+1] == '>' {
				s.i += 2
				return name, space, hasLang, true, true
			}
			return
		}
		attr := s.name(true)
		if attr == nil {
			return
		}
		s.space()
		if s.i >= len(s.b) || s.b[s.i] != '=' {
			return
		}
		s.i++
		s.space()
		v, vok := s.attrValue()
		if !vok {
			return
		}
		switch {
		case string(attr) == "xmlns":
			space = v
		case string(attr) == "xml:lang":
			hasLang = hasLang || len(v) > 0
		case direct && bytes.IndexByte(attr, ':') >= 0 &&
			!bytes.HasPrefix(attr, []byte("xml:")) && !bytes.HasPrefix(attr, []byte("xmlns:")):
			return
		}
	}
}

// name reads an ASCII XML name at s.i; with colon, it may hold one ':'
// between two non-empty parts. It returns nil, leaving the rest to
// encoding/xml, for anything else.
func (s *fastScanner) name(colon bool) []byte {
	start := s.i
	if s.i >= len(s.b) || !fastNameStart(s.b[s.i]) {
		return nil
	}
	s.i++
	colons := 0
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case fastNameStart(c) || '0' <= c && c <= '9' || c == '.' || c == '-':
		case c == ':' && colon && colons == 0:
			colons++
		case c >= utf8.RuneSelf || c == ':':
			return nil
		default:
			if s.b[s.i-1] == ':' {
				return nil
			}
			return s.b[start:s.i]
		}
		s.i++
	}
	return nil // input ends inside a tag
}

// fastNameStart reports whether c may start a name on the fast path.
func fastNameStart(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_'
}

// space skips white space inside a tag.
func (s *fastScanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// char steps over one character that needs no escaping in XML: a tab, a
// newline, or any other character XML allows at or above U+0020. It reports
// false, without moving, for anything else (encoding/xml must judge it).
func (s *fastScanner) char() bool {
	c := s.b[s.i]
	switch {
	case c < 0x20:
		if c != '\t' && c != '\n' {
			return false
		}
		s.i++
	case c < utf8.RuneSelf:
		s.i++
	default:
		r, n := utf8.DecodeRune(s.b[s.i:])
		if r == utf8.RuneError && n == 1 || !xmltext.IsChar(r) {
			return false
		}
		s.i += n
	}
	return true
}

// attrValue reads a quoted attribute value holding no entity and no carriage
// return.
func (s *fastScanner) attrValue() ([]byte, bool) {
	if s.i >= len(s.b) || s.b[s.i] != '\'' && s.b[s.i] != '"' {
		return nil, false
	}
	q := s.b[s.i]
	s.i++
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == q:
			v := s.b[start:s.i]
			s.i++
			return v, true
		case c == '<' || c == '&':
			return nil, false
		default:
			if !s.char() {
				return nil, false
			}
		}
	}
	return nil, false
}

// text reads character data up to the next '<' or the end of the input.
// With keep, it returns the data with entities decoded; the result aliases
// the input when there was no entity. It reports false for data that
// encoding/xml must judge: a carriage return, "]]>", an entity other than
// the predefined ones and valid character references, invalid UTF-8 or a
// character outside XML's range.
func (s *fastScanner) text(keep bool) ([]byte, bool) {
	start, last := s.i, s.i
	var dec []byte
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '<':
			goto done
		case c == '&':
			r, n := fastEntity(s.b[s.i:])
			if n == 0 {
				return nil, false
			}
			if keep {
				dec = append(dec, s.b[last:s.i]...)
				dec = utf8.AppendRune(dec, r)
			}
			s.i += n
			last = s.i
		case c == ']':
			if bytes.HasPrefix(s.b[s.i:], []byte("]]>")) {
				return nil, false
			}
			s.i++
		default:
			if !s.char() {
				return nil, false
			}
		}
	}
done:
	if !keep {
		return nil, true
	}
	if dec == nil {
		return s.b[start:s.i], true
	}
	return append(dec, s.b[last:s.i]...), true
}

// fastEntity decodes the entity at the start of b ('&'): one of the five
// predefined ones or a character reference to a character XML allows. n is
// 0 for anything else.
func fastEntity(b []byte) (r rune, n int) {
	for _, e := range [...]struct {
		s string
		r rune
	}{{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&apos;", '\''}, {"&quot;", '"'}} {
		if bytes.HasPrefix(b, []byte(e.s)) {
			return e.r, len(e.s)
		}
	}
	if len(b) < 4 || b[1] != '#' {
		return 0, 0
	}
	i, base := 2, uint32(10)
	if b[2] == 'x' {
		i, base = 3, 16
	}
	var v uint32
	for digits := 0; i < len(b); i, digits = i+1, digits+1 {
		c := b[i]
		var d uint32
		switch {
		case '0' <= c && c <= '9':
			d = uint32(c - '0')
		case base == 16 && 'a' <= c && c <= 'f':
			d = uint32(c-'a') + 10
		case base == 16 && 'A' <= c && c <= 'F':
			d = uint32(c-'A') + 10
		case c == ';' && digits > 0 && xmltext.IsChar(rune(v)):
			return rune(v), i + 1
		default:
			return 0, 0
		}
		if v = v*base + d; v > utf8.MaxRune {
			return 0, 0
		}
	}
	return 0, 0
}
