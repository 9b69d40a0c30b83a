package presence

import (
	"bytes"
	"unicode/utf8"

	"github.com/pubpresence/pubpresence/internal/xmpp"
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
// wherever the fast path answers. The names, attribute values, characters
// and entities are read by the core's scanner primitives
// (internal/xmpp/scan.go), which the stream's Reader uses too; the input
// here is whole, so a piece they would need more input for is given up on.

// fastScanner walks inner XML.
type fastScanner struct {
	b   []byte
	i   int
	tag int // where the last start tag began
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
		if timed(k) {
			pc.addTime(k, s.attr(timeAttr(name)))
		}
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

// attr returns the value of the attribute name (no prefix) of the start
// tag startTag read last: the last one if repeated, as encoding/xml does,
// or nil. Only the rare children that have a time are read twice;
// startTag does not look for it in every tag.
func (s *fastScanner) attr(name string) []byte {
	t := fastScanner{b: s.b, i: s.tag + 1}
	t.name(false)
	var v []byte
	for {
		t.i = xmpp.SkipSpace(t.b, t.i)
		if t.i >= len(t.b) || t.b[t.i] == '>' || t.b[t.i] == '/' {
			return v
		}
		a := t.name(true)
		av, ok := t.attrValue()
		if a == nil || !ok {
			return v // not reached: startTag read this tag
		}
		if string(a) == name {
			v = av
		}
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
			s.i = xmpp.SkipSpace(s.b, s.i)
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
	s.tag = s.i
	s.i++
	if name = s.name(false); name == nil {
		return
	}
	for {
		s.i = xmpp.SkipSpace(s.b, s.i)
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
	end, c, res := xmpp.ScanName(s.b, s.i)
	if res != xmpp.ScanDone || c >= 0 && !colon {
		return nil
	}
	s.i = end
	return s.b[start:end]
}

// attrValue reads "= 'value'" (white space allowed around '=') at s.i: a
// quoted attribute value holding no entity and no carriage return.
func (s *fastScanner) attrValue() ([]byte, bool) {
	start, end, ent, res := xmpp.ScanAttrValue(s.b, s.i, true)
	if res != xmpp.ScanDone || ent {
		return nil, false
	}
	s.i = end + 1
	return s.b[start:end], true
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
		case c == '\r':
			return nil, false // encoding/xml makes it a newline
		case xmpp.IsTextPlain(c):
			s.i++
		case c == '&':
			r, n, res := xmpp.DecodeEntity(s.b[s.i:])
			if res != xmpp.ScanDone {
				return nil, false
			}
			if keep {
				dec = append(dec, s.b[last:s.i]...)
				dec = utf8.AppendRune(dec, r)
			}
			s.i += n
			last = s.i
		default: // ']', or not ASCII
			next, res := xmpp.ScanText(s.b, s.i)
			if res != xmpp.ScanDone {
				return nil, false
			}
			s.i = next
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
