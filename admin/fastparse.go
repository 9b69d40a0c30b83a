package admin

import (
	"bytes"

	"github.com/pubpresence/pubpresence/internal/xmpp"
)

// The fast path of decodeCommand: the answers the servers send (a
// <command/> with notes and one data form of fields and values) read with
// the scanner of internal/xmpp, without encoding/xml. On ejabberd the
// roster way asks user-stats once per user, and encoding/xml's reading of
// 10 000 answers was a third of a warm start's CPU in process
// (BenchmarkWarmStartUserStats). Anything outside that shape (another
// element, a namespace prefix, a comment, CDATA, a carriage return, a
// repeated attribute) makes fastCommand give up, and encoding/xml reads
// the answer; FuzzFastCommand checks that both read the same.

// fastCommand reads b when it starts (after white space) with a <command/>
// of the shape above. ok is false when it gives up; c is then nil.
func fastCommand(b []byte) (c *command, ok bool) {
	p := fastParser{b: b}
	p.i = xmpp.SkipSpace(b, 0)
	c = &command{}
	empty, ok := p.startTag("command", func(name, value []byte) bool {
		switch string(name) {
		case "xmlns":
			return string(value) == xmpp.NSCommands
		case "node":
			c.Node = string(value)
		case "status":
			c.Status = string(value)
		case "sessionid":
			c.SessionID = string(value)
		}
		return true
	})
	if !ok {
		return nil, false
	}
	if empty {
		return c, true
	}
	for {
		name, end, ok := p.child("command")
		switch {
		case !ok:
			return nil, false
		case end:
			return c, true
		case name == "note":
			if !p.note(c) {
				return nil, false
			}
		case name == "x":
			if !p.form(c) {
				return nil, false
			}
		default:
			return nil, false
		}
	}
}

// fastParser reads b from i.
type fastParser struct {
	b    []byte
	i    int
	seen [][]byte // the names of the attributes of the start tag being read
}

// hasAt reports whether b holds s at i.
func hasAt(b []byte, i int, s string) bool {
	return i+len(s) <= len(b) && string(b[i:i+len(s)]) == s
}

// startTag reads the start tag <name …> or <name …/> at p.i, handing each
// attribute's name and decoded value to attr (which returns false to give
// up). Prefixed names other than xml:lang, and a repeated attribute, give
// up. empty reports "/>".
func (p *fastParser) startTag(name string, attr func(name, value []byte) bool) (empty, ok bool) {
	b := p.b
	if !hasAt(b, p.i, "<") || !hasAt(b, p.i+1, name) {
		return false, false
	}
	p.i += 1 + len(name)
	p.seen = p.seen[:0]
	for {
		j := xmpp.SkipSpace(b, p.i)
		if j >= len(b) {
			return false, false
		}
		switch b[j] {
		case '>':
			p.i = j + 1
			return false, true
		case '/':
			if j+1 < len(b) && b[j+1] == '>' {
				p.i = j + 2
				return true, true
			}
			return false, false
		}
		if j == p.i { // no space before the attribute
			return false, false
		}
		end, colon, res := xmpp.ScanName(b, j)
		if res != xmpp.ScanDone {
			return false, false
		}
		an := b[j:end]
		if colon >= 0 && string(an) != "xml:lang" {
			return false, false
		}
		for _, s := range p.seen {
			if bytes.Equal(s, an) {
				return false, false
			}
		}
		p.seen = append(p.seen, an)
		vs, ve, ent, res := xmpp.ScanAttrValue(b, end, true)
		if res != xmpp.ScanDone {
			return false, false
		}
		v := b[vs:ve]
		if ent {
			v = xmpp.AppendDecoded(nil, v)
		}
		if !attr(an, v) {
			return false, false
		}
		p.i = ve + 1
	}
}

// child reads up to the next child element of parent: white space, then
// either a start tag's name (p.i left at its '<') or parent's end tag
// (end; p.i after it).
func (p *fastParser) child(parent string) (name string, end, ok bool) {
	b := p.b
	p.i = xmpp.SkipSpace(b, p.i)
	if p.i+1 >= len(b) || b[p.i] != '<' {
		return "", false, false
	}
	if b[p.i+1] == '/' {
		return "", true, p.endTag(parent)
	}
	e, colon, res := xmpp.ScanName(b, p.i+1)
	if res != xmpp.ScanDone || colon >= 0 {
		return "", false, false
	}
	return string(b[p.i+1 : e]), false, true
}

// children reads parent's child elements up to its end tag: each must be a
// want, read by read; anything else gives up.
func (p *fastParser) children(parent, want string, read func() bool) bool {
	for {
		name, end, ok := p.child(parent)
		switch {
		case !ok:
			return false
		case end:
			return true
		case name != want || !read():
			return false
		}
	}
}

// endTag reads </name> at p.i.
func (p *fastParser) endTag(name string) bool {
	b := p.b
	if !hasAt(b, p.i, "</") || !hasAt(b, p.i+2, name) {
		return false
	}
	j := xmpp.SkipSpace(b, p.i+2+len(name))
	if j >= len(b) || b[j] != '>' {
		return false
	}
	p.i = j + 1
	return true
}

// text reads character data up to the next '<' and returns it decoded.
// A carriage return (which encoding/xml turns into a newline) gives up.
func (p *fastParser) text() (s string, ok bool) {
	b := p.b
	start, ent := p.i, false
	for p.i < len(b) && b[p.i] != '<' {
		c := b[p.i]
		if c == '\r' {
			return "", false
		}
		if xmpp.IsTextPlain(c) {
			p.i++
			continue
		}
		next, res := xmpp.ScanText(b, p.i)
		if res != xmpp.ScanDone {
			return "", false
		}
		ent = ent || c == '&'
		p.i = next
	}
	if p.i >= len(b) {
		return "", false
	}
	if !ent {
		return string(b[start:p.i]), true
	}
	return string(xmpp.AppendDecoded(nil, b[start:p.i])), true
}

// textElement reads <name>text</name> or <name/> at p.i, with attributes
// handed to attr; child elements give up.
func (p *fastParser) textElement(name string, attr func(name, value []byte) bool) (string, bool) {
	empty, ok := p.startTag(name, attr)
	if !ok {
		return "", false
	}
	if empty {
		return "", true
	}
	s, ok := p.text()
	if !ok || !p.endTag(name) {
		return "", false
	}
	return s, true
}

// noAttr gives up on any attribute but xml:lang.
func noAttr(name, _ []byte) bool { return string(name) == "xml:lang" }

// note reads a <note/> of c.
func (p *fastParser) note(c *command) bool {
	var n note
	text, ok := p.textElement("note", func(name, value []byte) bool {
		switch string(name) {
		case "xmlns":
			return false
		case "type":
			n.Type = string(value)
		}
		return true
	})
	if !ok {
		return false
	}
	n.Text = text
	c.Notes = append(c.Notes, n)
	return true
}

// form reads an <x xmlns='jabber:x:data'/> of c: fields of values.
func (p *fastParser) form(c *command) bool {
	var f xmpp.Form
	hasNS := false
	empty, ok := p.startTag("x", func(name, value []byte) bool {
		switch string(name) {
		case "xmlns":
			hasNS = string(value) == xmpp.NSData
			return hasNS
		case "type":
			f.Type = string(value)
		}
		return true
	})
	if !ok || !hasNS {
		return false
	}
	if !empty && !p.children("x", "field", func() bool { return p.field(&f) }) {
		return false
	}
	c.Forms = append(c.Forms, f)
	return true
}

// field reads a <field/> of f: its values.
func (p *fastParser) field(f *xmpp.Form) bool {
	var fd xmpp.Field
	empty, ok := p.startTag("field", func(name, value []byte) bool {
		switch string(name) {
		case "xmlns":
			return false
		case "var":
			fd.Var = string(value)
		case "type":
			fd.Type = string(value)
		}
		return true
	})
	if !ok {
		return false
	}
	if !empty && !p.children("field", "value", func() bool {
		v, ok := p.textElement("value", noAttr)
		fd.Values = append(fd.Values, v)
		return ok
	}) {
		return false
	}
	f.Fields = append(f.Fields, fd)
	return true
}
