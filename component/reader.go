package component

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"gosrc.io/xmpp/stanza"

	"github.com/pubpresence/pubpresence/internal/xmltext"
)

// The inbound reader.
//
// encoding/xml costs some twenty allocations and several microseconds per
// stanza. The fast path reads the XML that servers actually send — elements
// with ASCII names, quoted attribute values, text, the five predefined
// entities and character references — straight from the input buffer, and
// checks it as encoding/xml would: it takes a top-level element only when it
// is sure encoding/xml would accept it and read the same Stanza from it.
// Anything else (comments, CDATA, processing instructions, a prefixed or
// <error/> top-level element, a prefixed id, type, from or to attribute, a
// carriage return in one of those, non-ASCII names, any syntax error, an
// element larger than inbufMax) goes to encoding/xml, which still reads
// every byte the fast path does not take, with the namespace context of the
// stream header, and has the last word on what is well-formed and on every
// error. FuzzReaderFastVsSlow checks that both read the same.
//
// The decoder does not see the bytes the fast path consumes; the only trace
// of them it would have kept is its line count, which goes into the
// messages of its syntax errors: the reader adds the newlines it consumed
// itself to those.

// itemKind says what the reader read.
type itemKind uint8

const (
	itemStanza      itemKind = iota // a top-level element other than a stream error
	itemEnd                         // the end of the stream (</stream:stream>)
	itemStreamError                 // <stream:error/>; its inner XML is in s.Inner
)

type item struct {
	kind itemKind
	s    Stanza
}

// reader reads the top-level elements of an authenticated stream.
type reader struct {
	in   *inbuf
	dec  *xml.Decoder // positioned inside the stream element
	fast bool         // try the fast path; false reads everything with dec
	// slow is set when dec may have read one byte ahead (after character
	// data): it must read the next token itself.
	slow    bool
	lines   int    // newlines the fast path consumed: dec did not count them
	name    string // the component's name: a To equal to it shares its string
	st      scanState
	scratch []byte
}

func newReader(in *inbuf, dec *xml.Decoder, name string) *reader {
	return &reader{in: in, dec: dec, fast: true, name: name, st: scanState{maxPartial: maxPartial}}
}

// next returns the next element of the stream, or the error that ends it,
// worded for Conn.Err.
func (r *reader) next() (item, error) {
	for {
		if r.fast && !r.slow {
			if it, ok := r.tryFast(); ok {
				return it, nil
			}
		}
		if it, ok, err := r.token(); err != nil || ok {
			return it, err
		}
	}
}

// token reads one token with encoding/xml, and the element it starts. ok
// is false for the tokens the stream ignores (text, comments, …).
func (r *reader) token() (it item, ok bool, err error) {
	tok, err := r.dec.Token()
	if err != nil {
		var se *xml.SyntaxError
		if errors.Is(err, io.EOF) || errors.As(err, &se) && se.Msg == "unexpected EOF" {
			err = errors.New("the server closed the connection without closing the stream")
		}
		return item{}, false, fmt.Errorf("read: %w", r.fixLine(err))
	}
	switch t := tok.(type) {
	case xml.EndElement: // </stream:stream>
		return item{kind: itemEnd}, true, nil
	case xml.StartElement:
		var e rawElement
		if err := r.dec.DecodeElement(&e, &t); err != nil {
			return item{}, false, fmt.Errorf("read: %w", r.fixLine(err))
		}
		r.slow = false
		if t.Name.Space == stanza.NSStream && t.Name.Local == "error" {
			return item{kind: itemStreamError, s: Stanza{Inner: e.Inner}}, true, nil
		}
		return item{kind: itemStanza, s: Stanza{
			Name:  e.XMLName.Local,
			ID:    e.attr("id"),
			Type:  e.attr("type"),
			From:  e.attr("from"),
			To:    e.attr("to"),
			Inner: e.Inner,
		}}, true, nil
	case xml.CharData:
		// Text stops at '<', which encoding/xml keeps for the next token.
		r.slow = true
	default:
		// Comments, processing instructions and directives end with '>'.
		r.slow = false
	}
	return item{}, false, nil
}

// fixLine adds to the line of a syntax error the lines dec did not see.
func (r *reader) fixLine(err error) error {
	if se, ok := err.(*xml.SyntaxError); ok && r.lines > 0 {
		return &xml.SyntaxError{Msg: se.Msg, Line: se.Line + r.lines}
	}
	return err
}

// rawElement captures one top-level element without interpreting its content.
type rawElement struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Inner   []byte     `xml:",innerxml"`
}

func (e *rawElement) attr(name string) string {
	for _, a := range e.Attrs {
		if a.Name.Local == name && (a.Name.Space == "" || name == "lang") {
			return a.Value
		}
	}
	return ""
}

// tryFast skips white space between elements and reads the next element if
// the fast path can; otherwise the decoder must read the next token.
func (r *reader) tryFast() (item, bool) {
	for {
		b := r.in.buffered()
		i := 0
		for i < len(b) && isSpace(b[i]) {
			if b[i] == '\n' {
				r.lines++
			}
			i++
		}
		r.in.discard(i)
		if i == len(b) {
			if !r.in.more() {
				return item{}, false
			}
			continue
		}
		b = b[i:]
		if b[0] != '<' {
			return item{}, false // text: encoding/xml checks and skips it
		}
		n, res := r.st.scan(b)
		switch res {
		case scanDone:
			it := r.build(b)
			r.lines += bytes.Count(b[:n], []byte{'\n'})
			r.in.discard(n)
			r.st.reset()
			return it, true
		case scanMore:
			if r.in.more() {
				continue
			}
		}
		r.st.reset()
		return item{}, false
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\t' || c == '\r' }

// build makes the Stanza of the element just scanned at the start of b.
// Its attribute strings share one allocation (none for the common type
// values and a To of the component itself), its Inner another.
func (r *reader) build(b []byte) item {
	st := &r.st
	s := Stanza{Name: internName(b[st.name.start:st.name.end])}
	if s.Name == "" {
		s.Name = string(b[st.name.start:st.name.end])
	}
	// Decoded values, and where each starts in scratch (-1: interned).
	r.scratch = r.scratch[:0]
	var at [attrCount]int
	var vals [attrCount]string
	for k := range attrCount {
		at[k] = -1
		if st.has&(1<<k) == 0 {
			continue
		}
		raw := b[st.attr[k].start:st.attr[k].end]
		if st.ent&(1<<k) == 0 {
			switch k {
			case attrType:
				vals[k] = internType(raw)
			case attrTo:
				if string(raw) == r.name {
					vals[k] = r.name
				}
			}
			if vals[k] != "" || len(raw) == 0 {
				continue
			}
		}
		at[k] = len(r.scratch)
		r.scratch = appendDecoded(r.scratch, raw)
	}
	if len(r.scratch) > 0 {
		all := string(r.scratch)
		for k := range attrCount {
			if at[k] < 0 {
				continue
			}
			end := len(all)
			for j := k + 1; j < attrCount; j++ {
				if at[j] >= 0 {
					end = at[j]
					break
				}
			}
			vals[k] = all[at[k]:end]
		}
	}
	s.ID, s.Type, s.From, s.To = vals[attrID], vals[attrType], vals[attrFrom], vals[attrTo]
	if !st.empty {
		inner := b[st.innerStart:st.innerEnd]
		if len(inner) == 0 {
			s.Inner = []byte{}
		} else {
			s.Inner = append(make([]byte, 0, len(inner)), inner...)
		}
	}
	return item{kind: itemStanza, s: s}
}

func internName(b []byte) string {
	switch string(b) {
	case "presence":
		return "presence"
	case "message":
		return "message"
	case "iq":
		return "iq"
	}
	return ""
}

func internType(b []byte) string {
	switch string(b) {
	case "result":
		return "result"
	case "error":
		return "error"
	case "get":
		return "get"
	case "set":
		return "set"
	case "unavailable":
		return "unavailable"
	case "probe":
		return "probe"
	case "subscribe":
		return "subscribe"
	case "subscribed":
		return "subscribed"
	case "unsubscribe":
		return "unsubscribe"
	case "unsubscribed":
		return "unsubscribed"
	case "chat":
		return "chat"
	case "normal":
		return "normal"
	case "headline":
		return "headline"
	case "groupchat":
		return "groupchat"
	}
	return ""
}

// appendDecoded appends an attribute value the scanner accepted, with its
// entities decoded.
func appendDecoded(dst, raw []byte) []byte {
	for {
		i := bytes.IndexByte(raw, '&')
		if i < 0 {
			return append(dst, raw...)
		}
		dst = append(dst, raw[:i]...)
		c, n, res := entity(raw[i:])
		if res != scanDone {
			panic("component: appendDecoded on a value the scanner did not accept")
		}
		dst = utf8.AppendRune(dst, c)
		raw = raw[i+n:]
	}
}

// The attributes a Stanza carries.
const (
	attrID = iota
	attrType
	attrFrom
	attrTo
	attrCount
)

// scanResult says how far scan got.
type scanResult uint8

const (
	scanDone   scanResult = iota // a whole element the fast path reads
	scanMore                     // the buffer ends inside the element so far accepted
	scanUnsure                   // encoding/xml must read it
)

type span struct{ start, end int }

// scanState is the fast path's progress through the element at the start
// of the buffer. When the buffer ends inside the element, scan keeps where
// the last complete piece of content ended (pos, with the open children in
// stack) and goes on from there once more has been read. Offsets are from
// the start of the element, which stays at the start of the unread bytes.
type scanState struct {
	started    bool // the start tag has been read
	empty      bool // <x/>
	name       span
	attr       [attrCount]span // raw values
	has, ent   uint8           // bit k: attr[k] is set; its value holds an entity
	innerStart int
	innerEnd   int
	pos        int
	stack      []span // names of the open children
	maxPartial int    // maxPartial, or less in tests
}

// maxFastDepth bounds the children the fast path keeps open; deeper
// elements go to encoding/xml, which has no limit of its own.
const maxFastDepth = 64

func (st *scanState) reset() {
	*st = scanState{stack: st.stack[:0], maxPartial: st.maxPartial}
}

// maxPartial bounds what scan reads again when more input arrives: a tag
// (or a start tag with all its attributes) longer than this that arrives in
// pieces goes to encoding/xml instead.
const maxPartial = 16 << 10

// scan reads the element at the start of b ('<'). With scanDone, n is its
// length and st describes it.
func (st *scanState) scan(b []byte) (n int, res scanResult) {
	n, res = st.scanFrom(b)
	if res == scanMore && len(b)-st.pos > st.maxPartial {
		return 0, scanUnsure
	}
	return n, res
}

func (st *scanState) scanFrom(b []byte) (n int, res scanResult) {
	if !st.started {
		if res = st.startTag(b); res != scanDone {
			return 0, res
		}
		st.started = true
		if st.empty {
			return st.pos, scanDone
		}
	}
	i := st.pos
	for {
		// Character data.
		for i < len(b) && b[i] != '<' {
			if textPlain[b[i]] {
				i++
				continue
			}
			if i, res = text(b, i); res != scanDone {
				st.pos = i
				return 0, res
			}
		}
		st.pos = i
		if i+1 >= len(b) {
			return 0, scanMore
		}
		switch b[i+1] {
		case '/':
			nEnd, end, res := endTag(b, i)
			if res != scanDone {
				return 0, res
			}
			open := st.name
			if len(st.stack) > 0 {
				open = st.stack[len(st.stack)-1]
			}
			if !bytes.Equal(b[i+2:nEnd], b[open.start:open.end]) {
				return 0, scanUnsure // encoding/xml's error
			}
			if len(st.stack) == 0 {
				st.innerEnd = i
				return end, scanDone
			}
			st.stack = st.stack[:len(st.stack)-1]
			i = end
		case '!', '?':
			return 0, scanUnsure // comment, CDATA, processing instruction
		default:
			name, end, empty, res := childTag(b, i)
			if res != scanDone {
				return 0, res
			}
			if !empty {
				if len(st.stack) >= maxFastDepth {
					return 0, scanUnsure
				}
				st.stack = append(st.stack, name)
			}
			i = end
		}
		st.pos = i
	}
}

// startTag reads the start tag of a top-level element and records its name,
// its id, type, from and to, and where its content starts.
func (st *scanState) startTag(b []byte) scanResult {
	if len(b) < 2 {
		return scanMore
	}
	end, colon, res := name(b, 1)
	if res != scanDone {
		return res
	}
	if colon >= 0 || string(b[1:end]) == "error" {
		// A prefixed element, or one that may be in the streams
		// namespace (<stream:error/>): encoding/xml knows the prefixes.
		return scanUnsure
	}
	st.name = span{1, end}
	i := end
	for {
		i = skipSpace(b, i)
		if i >= len(b) {
			return scanMore
		}
		switch b[i] {
		case '>':
			st.innerStart = i + 1
			st.pos = i + 1
			return scanDone
		case '/':
			if i+1 >= len(b) {
				return scanMore
			}
			if b[i+1] != '>' {
				return scanUnsure
			}
			st.empty = true
			st.pos = i + 2
			return scanDone
		}
		aStart := i
		aEnd, colon, res := name(b, i)
		if res != scanDone {
			return res
		}
		k := -1
		switch string(b[aStart:aEnd]) {
		case "id":
			k = attrID
		case "type":
			k = attrType
		case "from":
			k = attrFrom
		case "to":
			k = attrTo
		}
		if colon >= 0 {
			// encoding/xml gives a prefixed attribute the namespace its
			// prefix is bound to, which may be "": then it is the
			// attribute itself for Stanza. Only xml: and xmlns: are sure.
			prefix := string(b[aStart:colon])
			if prefix != "xml" && prefix != "xmlns" {
				switch string(b[colon+1 : aEnd]) {
				case "id", "type", "from", "to":
					return scanUnsure
				}
			}
		}
		vStart, vEnd, ent, res := attrValue(b, aEnd, k >= 0)
		if res != scanDone {
			return res
		}
		if k >= 0 && st.has&(1<<k) == 0 { // the first one counts
			st.has |= 1 << k
			st.attr[k] = span{vStart, vEnd}
			if ent {
				st.ent |= 1 << k
			}
		}
		i = vEnd + 1
	}
}

// childTag reads the start tag of an element inside a stanza at b[i].
func childTag(b []byte, i int) (nm span, end int, empty bool, res scanResult) {
	nEnd, _, res := name(b, i+1)
	if res != scanDone {
		return nm, 0, false, res
	}
	nm = span{i + 1, nEnd}
	i = nEnd
	for {
		i = skipSpace(b, i)
		if i >= len(b) {
			return nm, 0, false, scanMore
		}
		switch b[i] {
		case '>':
			return nm, i + 1, false, scanDone
		case '/':
			if i+1 >= len(b) {
				return nm, 0, false, scanMore
			}
			if b[i+1] != '>' {
				return nm, 0, false, scanUnsure
			}
			return nm, i + 2, true, scanDone
		}
		aEnd, _, res := name(b, i)
		if res != scanDone {
			return nm, 0, false, res
		}
		_, vEnd, _, res := attrValue(b, aEnd, false)
		if res != scanDone {
			return nm, 0, false, res
		}
		i = vEnd + 1
	}
}

// endTag reads the end tag at b[i] ("</") and returns where its name and
// the tag end.
func endTag(b []byte, i int) (nEnd, end int, res scanResult) {
	nEnd, _, res = name(b, i+2)
	if res != scanDone {
		return 0, 0, res
	}
	i = skipSpace(b, nEnd)
	if i >= len(b) {
		return 0, 0, scanMore
	}
	if b[i] != '>' {
		return 0, 0, scanUnsure
	}
	return nEnd, i + 1, scanDone
}

// name reads a name at b[i]: ASCII, starting with a letter or '_', with at
// most one ':' between two such names. colon is the index of the ':', or -1.
func name(b []byte, i int) (end, colon int, res scanResult) {
	colon = -1
	if i >= len(b) {
		return 0, colon, scanMore
	}
	if !isNameStart(b[i]) {
		return 0, colon, scanUnsure
	}
	for i++; i < len(b); i++ {
		c := b[i]
		switch {
		case isNameByte(c):
		case c == ':' && colon < 0:
			if i+1 >= len(b) {
				return 0, colon, scanMore
			}
			if !isNameStart(b[i+1]) {
				return 0, colon, scanUnsure
			}
			colon = i
		case c >= utf8.RuneSelf || c == ':':
			return 0, colon, scanUnsure // a non-ASCII name, or a second ':'
		default:
			return i, colon, scanDone
		}
	}
	return 0, colon, scanMore
}

func isNameStart(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_'
}

func isNameByte(c byte) bool {
	return isNameStart(c) || '0' <= c && c <= '9' || c == '.' || c == '-'
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// attrValue reads "= 'value'" at b[i] (white space allowed around '=') and
// returns where the value starts and ends (at its closing quote) and
// whether it holds an entity. With strict, a carriage return (which
// encoding/xml would turn into a newline) is left to encoding/xml.
func attrValue(b []byte, i int, strict bool) (start, end int, ent bool, res scanResult) {
	i = skipSpace(b, i)
	if i >= len(b) {
		return 0, 0, false, scanMore
	}
	if b[i] != '=' {
		return 0, 0, false, scanUnsure
	}
	i = skipSpace(b, i+1)
	if i >= len(b) {
		return 0, 0, false, scanMore
	}
	q := b[i]
	if q != '\'' && q != '"' {
		return 0, 0, false, scanUnsure
	}
	start = i + 1
	for i = start; i < len(b); {
		c := b[i]
		if attrPlain[c] {
			i++
			continue
		}
		switch {
		case c == q:
			return start, i, ent, scanDone
		case c == '<' || c == '\r' && strict:
			return 0, 0, false, scanUnsure
		case c == '&':
			_, n, res := entity(b[i:])
			if res != scanDone {
				return 0, 0, false, res
			}
			ent = true
			i += n
		default:
			n, res := char(b, i)
			if res != scanDone {
				return 0, 0, false, res
			}
			i += n
		}
	}
	return 0, 0, false, scanMore
}

// text reads one piece of character data at b[i] (not '<'): a character, an
// entity, or a ']' that does not start "]]>". It returns where the next
// piece starts.
func text(b []byte, i int) (next int, res scanResult) {
	switch b[i] {
	case '&':
		_, n, res := entity(b[i:])
		if res != scanDone {
			return i, res
		}
		return i + n, scanDone
	case ']':
		if i+2 >= len(b) {
			return i, scanMore
		}
		if b[i+1] == ']' && b[i+2] == '>' {
			return i, scanUnsure // an error outside CDATA
		}
		return i + 1, scanDone
	}
	n, res := char(b, i)
	if res != scanDone {
		return i, res
	}
	return i + n, scanDone
}

// textPlain and attrPlain hold the bytes that are whole characters in
// character data and in attribute values: ASCII characters that need no
// further look.
var textPlain, attrPlain = func() (text, attr [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		text[c], attr[c] = true, true
	}
	text['\t'], text['\n'], text['\r'] = true, true, true
	attr['\t'], attr['\n'] = true, true
	for _, c := range "<&]" {
		text[c] = false
	}
	for _, c := range "<&'\"" {
		attr[c] = false
	}
	return text, attr
}()

// char reads one character at b[i] and returns its length: any character
// XML allows.
func char(b []byte, i int) (int, scanResult) {
	c := b[i]
	switch {
	case c >= 0x20 && c < utf8.RuneSelf:
		return 1, scanDone
	case c < 0x20:
		if c == '\t' || c == '\n' || c == '\r' {
			return 1, scanDone
		}
		return 0, scanUnsure
	}
	if !utf8.FullRune(b[i:]) {
		return 0, scanMore
	}
	r, n := utf8.DecodeRune(b[i:])
	if r == utf8.RuneError && n == 1 || !xmltext.IsChar(r) {
		return 0, scanUnsure
	}
	return n, scanDone
}

// maxCharRef bounds the digits of a character reference on the fast path.
const maxCharRef = 12

// entity decodes the entity at the start of b ('&'): one of the five
// predefined ones, or a character reference to a character XML allows.
func entity(b []byte) (r rune, n int, res scanResult) {
	if len(b) < 2 {
		return 0, 0, scanMore
	}
	if b[1] != '#' {
		for _, e := range [...]struct {
			s string
			r rune
		}{{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&apos;", '\''}, {"&quot;", '"'}} {
			if bytes.HasPrefix(b, []byte(e.s)) {
				return e.r, len(e.s), scanDone
			}
			if len(b) < len(e.s) && bytes.HasPrefix([]byte(e.s), b) {
				return 0, 0, scanMore
			}
		}
		return 0, 0, scanUnsure
	}
	i, base := 2, rune(10)
	if i < len(b) && b[i] == 'x' {
		i, base = 3, 16
	}
	var v rune
	for digits := 0; ; i, digits = i+1, digits+1 {
		if i >= len(b) {
			return 0, 0, scanMore
		}
		c := b[i]
		var d rune
		switch {
		case '0' <= c && c <= '9':
			d = rune(c - '0')
		case base == 16 && 'a' <= c && c <= 'f':
			d = rune(c-'a') + 10
		case base == 16 && 'A' <= c && c <= 'F':
			d = rune(c-'A') + 10
		case c == ';' && digits > 0 && xmltext.IsChar(v):
			return v, i + 1, scanDone
		default:
			return 0, 0, scanUnsure
		}
		if digits >= maxCharRef {
			return 0, 0, scanUnsure
		}
		if v = v*base + d; v > utf8.MaxRune {
			return 0, 0, scanUnsure
		}
	}
}
