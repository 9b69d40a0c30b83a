// Why not gosrc.io/xmpp here
//
// gosrc.io/xmpp v0.5.1 stays where it is correct: the component's
// handshake (stanza.NextPacket with its Handshake and StreamError types, a
// cold path; component/conn.go) and stanza.StreamClose. The stream header,
// which its stanza.InitStream read before, is read by the Reader, whose
// fast path must know the default namespace the header declares. Its
// reader and router cannot carry a session. Its reader (Component.recv)
// decodes every stanza into typed structs and ends the stream on the first
// one it cannot decode: a <priority> out of int8 range is enough, and any
// user's client can send one. Its router calls the handlers synchronously
// on the reader's goroutine, so one slow handler stalls the whole stream,
// IQ answers included. Its SendIQ registers the route of an IQ's answer
// only after sending the request, so a fast answer can arrive before
// anyone waits for it and be lost. Hence this Reader, which never ends a
// stream over one stanza's content and leaves routing to its caller, and
// Calls (calls.go), which registers a request before it is sent.
package xmpp

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"unsafe"
)

// The Reader.
//
// encoding/xml costs some twenty allocations and several microseconds per
// stanza. The fast path reads the XML that servers actually send — elements
// with ASCII names, quoted attribute values, text, the five predefined
// entities and character references — straight from the input buffer, and
// checks it as encoding/xml would (scan.go): it takes a top-level element
// only when it is sure encoding/xml would accept it and read the same
// Element from it. Anything else (comments, CDATA, processing
// instructions, a prefixed or <error/> top-level element, a prefixed id,
// type, from or to attribute, a carriage return in one of those or in
// xmlns, non-ASCII names, any syntax error, an element larger than
// inbufMax, 1 GiB) goes to encoding/xml, which still reads every byte the fast
// path does not take, with the namespace context of the stream header, and
// has the last word on what is well-formed and on every error.
// FuzzReaderFastVsSlow checks that both read the same.
//
// The decoder does not see the bytes the fast path consumes; the only trace
// of them it would have kept is its line count, which goes into the
// messages of its syntax errors: the reader adds the newlines it consumed
// itself to those.

// ErrStreamEnd is what Reader.Next returns at the end of the stream
// (</stream:stream>).
var ErrStreamEnd = errors.New("xmpp: end of stream")

// Element is one top-level element of a stream: a stanza, or a stream-level
// element such as <stream:features/> or <stream:error/>.
type Element struct {
	// Name is the element's name and namespace: the one it declares, its
	// prefix's, or the stream's default (jabber:client,
	// jabber:component:accept).
	Name xml.Name
	// The attributes stanzas carry ("" when absent; the first one counts).
	ID, Type, From, To string
	// Inner is the raw XML between the start and end tags; nil for an
	// empty-element tag (<x/>).
	Inner []byte
	// Raw is the whole element as received, with Reader.Raw set; Inner
	// then points into it.
	Raw []byte
}

// IsStreamError reports whether e is a <stream:error/>, which ends the
// stream (RFC 6120 §4.9); ParseStreamError reads its Inner.
func (e *Element) IsStreamError() bool {
	return e.Name.Space == NSStream && e.Name.Local == "error"
}

// Reader reads one XMPP stream: its header, then its top-level elements.
// It is not safe for concurrent use.
type Reader struct {
	// Self is the stream's own address (the component's name, the
	// client's JID): a To equal to it shares Self's string.
	Self string
	// Raw keeps each element's whole text in Element.Raw.
	Raw bool
	// NoFast reads every element with encoding/xml, the fast path's
	// reference: for tests and benchmarks.
	NoFast bool
	// TransientAnswers lets the fast path leave the ID, From and To of an
	// <iq/> of type result or error in a buffer of the Reader, which the
	// next call of Next overwrites: the caller must copy what it keeps of
	// them. An IQ table reads them once (Calls.Deliver), and a stream of
	// requests gets one answer per request: this saves an allocation per
	// answer. Inner is the caller's, as always.
	TransientAnswers bool

	in    *inbuf
	dec   *xml.Decoder // positioned inside the stream element
	space string       // the default namespace the header declares
	// slow is set when dec may have read one byte ahead (after character
	// data): it must read the next token itself.
	slow bool
	// decBase is the input offset of dec's offset 0 plus the bytes the
	// fast path consumed: dec.InputOffset()+decBase is where dec stands.
	decBase int64
	lines   int // newlines the fast path consumed: dec did not count them
	st      scanState
	scratch []byte
}

// NewReader returns a Reader of src, which it buffers; Header must be
// called first.
func NewReader(src io.Reader) *Reader {
	in := newInbuf(src)
	return &Reader{in: in, dec: xml.NewDecoder(in), st: scanState{maxPartial: maxPartial}}
}

// Decoder returns the encoding/xml decoder of the stream, for a caller
// that reads an element on a cold path itself (the component's handshake)
// between two calls of Next. It must leave the decoder after an element's
// end, as Decoder.DecodeElement does.
func (r *Reader) Decoder() *xml.Decoder { return r.dec }

// Buffered returns how many bytes the Reader has read from its source and
// not yet consumed.
func (r *Reader) Buffered() int { return r.in.w - r.in.r }

// Restart makes r read a new stream on the same input, as after SASL (RFC
// 6120 §6.4.6): its header, then its elements. The bytes already read
// from the source stay.
func (r *Reader) Restart() {
	r.dec = xml.NewDecoder(r.in)
	r.decBase = r.in.off + int64(r.in.r)
	r.space, r.slow, r.lines = "", false, 0
	r.st.reset()
}

// Header reads up to and including the stream header, the
// <stream:stream> start tag, and returns it.
func (r *Reader) Header() (xml.StartElement, error) {
	if r.Raw {
		r.in.max = min(r.in.max, r.in.rawMax) // MaxRaw bounds every element kept whole
	}
	for {
		tok, err := r.dec.Token()
		if err != nil {
			return xml.StartElement{}, err
		}
		t, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if t.Name.Space != NSStream || t.Name.Local != "stream" {
			return xml.StartElement{}, fmt.Errorf("xmpp: expected <stream:stream>, got <%s xmlns='%s'>", t.Name.Local, t.Name.Space)
		}
		for _, a := range t.Attr {
			if a.Name.Space == "" && a.Name.Local == "xmlns" {
				r.space = a.Value // the last one counts, as for encoding/xml
			}
		}
		return t.Copy(), nil
	}
}

// Next reads the next top-level element of the stream into el, all of
// whose fields it sets: a read loop passes the same one each time, and
// copies nothing. Text between elements (white space keepalives) is
// skipped. At the end of the stream it returns ErrStreamEnd; when the
// input ends before, io.ErrUnexpectedEOF; for XML that is not well-formed,
// encoding/xml's error, with the line counted from the stream's start.
func (r *Reader) Next(el *Element) error {
	for {
		if !r.NoFast && !r.slow && r.tryFast(el) {
			return nil
		}
		if ok, err := r.token(el); err != nil || ok {
			return err
		}
	}
}

// token reads one token with encoding/xml, and the element it starts into
// el. ok is false for the tokens the stream ignores (text, comments, …).
func (r *Reader) token(el *Element) (ok bool, err error) {
	var start int64
	if r.Raw {
		start = r.dec.InputOffset() + r.decBase
		r.in.keep = start
		defer r.in.release()
	}
	tok, err := r.dec.Token()
	if err != nil {
		var se *xml.SyntaxError
		if errors.Is(err, io.EOF) || errors.As(err, &se) && se.Msg == "unexpected EOF" {
			return false, io.ErrUnexpectedEOF
		}
		return false, r.fixLine(err)
	}
	switch t := tok.(type) {
	case xml.EndElement: // </stream:stream>
		return false, ErrStreamEnd
	case xml.StartElement:
		var e rawElement
		if err := r.dec.DecodeElement(&e, &t); err != nil {
			return false, r.fixLine(err)
		}
		r.slow = false
		*el = Element{
			Name:  t.Name,
			ID:    e.attr("id"),
			Type:  e.attr("type"),
			From:  e.attr("from"),
			To:    e.attr("to"),
			Inner: e.Inner,
		}
		if r.Raw {
			el.Raw = bytes.Clone(r.in.kept(start, r.dec.InputOffset()+r.decBase))
		}
		return true, nil
	case xml.CharData:
		// Text stops at '<', which encoding/xml keeps for the next token.
		r.slow = true
	default:
		// Comments, processing instructions and directives end with '>'.
		r.slow = false
	}
	return false, nil
}

// fixLine adds to the line of a syntax error the lines dec did not see.
func (r *Reader) fixLine(err error) error {
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
		if a.Name.Local == name && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}

// tryFast skips white space between elements and reads the next element
// into el if the fast path can; otherwise the decoder must read the next
// token.
func (r *Reader) tryFast(el *Element) bool {
	for {
		b := r.in.buffered()
		i := 0
		for i < len(b) && IsSpace(b[i]) {
			if b[i] == '\n' {
				r.lines++
			}
			i++
		}
		r.discard(i)
		if i == len(b) {
			if !r.in.more() {
				return false
			}
			continue
		}
		b = b[i:]
		if b[0] != '<' {
			return false // text: encoding/xml checks and skips it
		}
		n, res := r.st.scan(b)
		switch res {
		case ScanDone:
			r.build(el, b, n)
			r.lines += bytes.Count(b[:n], []byte{'\n'})
			r.discard(n)
			r.in.shrink()
			r.st.reset()
			return true
		case ScanMore:
			if r.in.more() {
				continue
			}
		}
		r.st.reset()
		return false
	}
}

// discard consumes n buffered bytes that dec does not see.
func (r *Reader) discard(n int) {
	r.in.discard(n)
	r.decBase += int64(n)
}

// build sets every field of el to the Element of the n bytes just scanned
// at the start of b.
// Its attribute strings share one allocation (none for the common type
// values, a To equal to Self and an xmlns equal to the stream's default),
// its Inner (or Raw) another.
func (r *Reader) build(el *Element, b []byte, n int) {
	st := &r.st
	el.Name = xml.Name{Space: r.space, Local: internName(b[st.name.start:st.name.end])}
	if el.Name.Local == "" {
		el.Name.Local = string(b[st.name.start:st.name.end])
	}
	// Decoded values, and where each of those in scratch starts.
	r.scratch = r.scratch[:0]
	var vals [attrCount]string
	var at [attrCount]int
	var inScratch uint8 // bit k: vals[k] is in scratch
	for has := st.has; has != 0; has &= has - 1 {
		k := bits.TrailingZeros8(has)
		raw := b[st.attr[k].start:st.attr[k].end]
		if st.ent&(1<<k) == 0 {
			switch k {
			case attrType:
				vals[k] = internType(raw)
			case attrTo:
				if string(raw) == r.Self {
					vals[k] = r.Self
				}
			case attrXMLNS:
				if string(raw) == r.space {
					vals[k] = r.space
				}
			}
			if vals[k] != "" || len(raw) == 0 {
				continue
			}
		}
		at[k] = len(r.scratch)
		inScratch |= 1 << k
		r.scratch = AppendDecoded(r.scratch, raw)
	}
	if inScratch != 0 {
		// The values are in scratch in the order of k: each ends where
		// the next one starts.
		var all string
		if r.TransientAnswers && el.Name.Local == "iq" && (vals[attrType] == "result" || vals[attrType] == "error") {
			all = unsafe.String(unsafe.SliceData(r.scratch), len(r.scratch))
		} else {
			all = string(r.scratch)
		}
		end := len(all)
		for m := inScratch; m != 0; m &^= 1 << uint(7-bits.LeadingZeros8(m)) {
			k := 7 - bits.LeadingZeros8(m)
			vals[k] = all[at[k]:end]
			end = at[k]
		}
	}
	el.ID, el.Type, el.From, el.To = vals[attrID], vals[attrType], vals[attrFrom], vals[attrTo]
	if st.has&(1<<attrXMLNS) != 0 {
		el.Name.Space = vals[attrXMLNS]
	}
	el.Inner, el.Raw = nil, nil
	switch {
	case r.Raw:
		el.Raw = append(make([]byte, 0, n), b[:n]...)
		if !st.empty {
			el.Inner = el.Raw[st.innerStart:st.innerEnd:st.innerEnd]
		}
	case st.empty:
	case st.innerEnd == st.innerStart:
		el.Inner = []byte{}
	default:
		inner := b[st.innerStart:st.innerEnd]
		el.Inner = append(make([]byte, 0, len(inner)), inner...)
	}
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

// The attributes an Element carries.
const (
	attrID = iota
	attrType
	attrFrom
	attrTo
	attrXMLNS
	attrCount
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

// scan reads the element at the start of b ('<'). With ScanDone, n is its
// length and st describes it.
func (st *scanState) scan(b []byte) (n int, res ScanResult) {
	n, res = st.scanFrom(b)
	if res == ScanMore && len(b)-st.pos > st.maxPartial {
		return 0, ScanUnsure
	}
	return n, res
}

func (st *scanState) scanFrom(b []byte) (n int, res ScanResult) {
	if !st.started {
		if res = st.startTag(b); res != ScanDone {
			return 0, res
		}
		st.started = true
		if st.empty {
			return st.pos, ScanDone
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
			if i, res = ScanText(b, i); res != ScanDone {
				st.pos = i
				return 0, res
			}
		}
		st.pos = i
		if i+1 >= len(b) {
			return 0, ScanMore
		}
		switch b[i+1] {
		case '/':
			nEnd, end, res := endTag(b, i)
			if res != ScanDone {
				return 0, res
			}
			open := st.name
			if len(st.stack) > 0 {
				open = st.stack[len(st.stack)-1]
			}
			if !bytes.Equal(b[i+2:nEnd], b[open.start:open.end]) {
				return 0, ScanUnsure // encoding/xml's error
			}
			if len(st.stack) == 0 {
				st.innerEnd = i
				return end, ScanDone
			}
			st.stack = st.stack[:len(st.stack)-1]
			i = end
		case '!', '?':
			return 0, ScanUnsure // comment, CDATA, processing instruction
		default:
			name, end, empty, res := childTag(b, i)
			if res != ScanDone {
				return 0, res
			}
			if !empty {
				if len(st.stack) >= maxFastDepth {
					return 0, ScanUnsure
				}
				st.stack = append(st.stack, name)
			}
			i = end
		}
		st.pos = i
	}
}

// startTag reads the start tag of a top-level element and records its name,
// its id, type, from, to and xmlns, and where its content starts.
func (st *scanState) startTag(b []byte) ScanResult {
	if len(b) < 2 {
		return ScanMore
	}
	end, colon, res := ScanName(b, 1)
	if res != ScanDone {
		return res
	}
	switch {
	case colon >= 0, string(b[1:end]) == "error":
		// A prefixed element, or one that may be in the streams
		// namespace (<stream:error/>): encoding/xml knows the prefixes.
		return ScanUnsure
	case string(b[1:end]) == "xmlns":
		return ScanUnsure // encoding/xml gives it no namespace at all
	}
	st.name = span{1, end}
	i := end
	for {
		i = SkipSpace(b, i)
		if i >= len(b) {
			return ScanMore
		}
		switch b[i] {
		case '>':
			st.innerStart = i + 1
			st.pos = i + 1
			return ScanDone
		case '/':
			if i+1 >= len(b) {
				return ScanMore
			}
			if b[i+1] != '>' {
				return ScanUnsure
			}
			st.empty = true
			st.pos = i + 2
			return ScanDone
		}
		aStart := i
		aEnd, colon, res := ScanName(b, i)
		if res != ScanDone {
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
		case "xmlns":
			k = attrXMLNS
		}
		if colon >= 0 {
			// encoding/xml gives a prefixed attribute the namespace its
			// prefix is bound to, which may be "": then it is the
			// attribute itself for Element. Only xml: and xmlns: are sure.
			prefix := string(b[aStart:colon])
			if prefix != "xml" && prefix != "xmlns" {
				switch string(b[colon+1 : aEnd]) {
				case "id", "type", "from", "to":
					return ScanUnsure
				}
			}
		}
		vStart, vEnd, ent, res := ScanAttrValue(b, aEnd, k >= 0)
		if res != ScanDone {
			return res
		}
		// The first id, type, from or to counts, as for encoding/xml's
		// readers; the last xmlns, as for its namespaces.
		if k >= 0 && (st.has&(1<<k) == 0 || k == attrXMLNS) {
			st.has |= 1 << k
			st.attr[k] = span{vStart, vEnd}
			st.ent &^= 1 << k
			if ent {
				st.ent |= 1 << k
			}
		}
		i = vEnd + 1
	}
}

// childTag reads the start tag of an element inside a stanza at b[i].
func childTag(b []byte, i int) (nm span, end int, empty bool, res ScanResult) {
	nEnd, _, res := ScanName(b, i+1)
	if res != ScanDone {
		return nm, 0, false, res
	}
	nm = span{i + 1, nEnd}
	i = nEnd
	for {
		i = SkipSpace(b, i)
		if i >= len(b) {
			return nm, 0, false, ScanMore
		}
		switch b[i] {
		case '>':
			return nm, i + 1, false, ScanDone
		case '/':
			if i+1 >= len(b) {
				return nm, 0, false, ScanMore
			}
			if b[i+1] != '>' {
				return nm, 0, false, ScanUnsure
			}
			return nm, i + 2, true, ScanDone
		}
		aEnd, _, res := ScanName(b, i)
		if res != ScanDone {
			return nm, 0, false, res
		}
		_, vEnd, _, res := ScanAttrValue(b, aEnd, false)
		if res != ScanDone {
			return nm, 0, false, res
		}
		i = vEnd + 1
	}
}

// endTag reads the end tag at b[i] ("</") and returns where its name and
// the tag end.
func endTag(b []byte, i int) (nEnd, end int, res ScanResult) {
	nEnd, _, res = ScanName(b, i+2)
	if res != ScanDone {
		return 0, 0, res
	}
	i = SkipSpace(b, nEnd)
	if i >= len(b) {
		return 0, 0, ScanMore
	}
	if b[i] != '>' {
		return 0, 0, ScanUnsure
	}
	return nEnd, i + 1, ScanDone
}

// FirstChild returns the start tag of the first element in inner, the
// inner XML of a stanza: the request an IQ get or set carries. ok is false
// when there is none, or inner does not parse up to it.
func FirstChild(inner []byte) (se xml.StartElement, ok bool) {
	d := xml.NewDecoder(bytes.NewReader(inner))
	for {
		tok, err := d.Token()
		if err != nil {
			return xml.StartElement{}, false
		}
		if t, ok := tok.(xml.StartElement); ok {
			return t, true
		}
	}
}
