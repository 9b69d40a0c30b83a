package xmpptest

import (
	"bytes"
	"fmt"
	"io"
)

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
	values values // where the start tag's attribute values are
}

// values are where the attribute values of a start tag are: at[i] is the
// i-th value's start and end in the tag, for the first len(at) of the n
// values. Element.RawAttr reads them instead of the tag.
type values struct {
	n  int
	at [8][2]int32
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
		it := item{kind: itemElement}
		k, selfClosing := tagEnd(rest, &it.values)
		if k == 0 {
			return item{}, 0, nil
		}
		name, _ := splitTag(rest[:k])
		if len(name) == 0 {
			return item{}, 0, fmt.Errorf("xmpptest: a tag without a name: %.40q", rest[:k])
		}
		if !selfClosing && (string(name) == "stream" || bytes.HasSuffix(name, []byte(":stream"))) {
			return item{kind: itemHeader, raw: rest[:k]}, i + k, nil
		}
		end := k
		if !selfClosing {
			if end, err = elementEnd(rest, k, name); end == 0 || err != nil {
				return item{}, 0, err
			}
		}
		it.raw, it.tagLen = rest[:end], k
		return it, i + end, nil
	}
}

// elementEnd returns the length of the element named name that starts b,
// whose start tag is b[:k], or 0 when b does not hold all of it.
func elementEnd(b []byte, k int, name []byte) (int, error) {
	if n, ok := elementEndFast(b, k, name); ok {
		return n, nil
	}
	return elementEndWalk(b, k)
}

// elementEndFast is elementEnd for content without CDATA sections,
// comments, processing instructions or an element named name: ok is false
// when it finds one of those. '<' starts markup everywhere but in the
// first three, and only an element of the same name nests in the count,
// so without them the first </name> ends the element. Looking only at what
// follows each '<' is much cheaper than reading every tag.
func elementEndFast(b []byte, k int, name []byte) (n int, ok bool) {
	for i := k; ; {
		j := bytes.IndexByte(b[i:], '<')
		if j < 0 {
			return 0, true
		}
		i += j + 1
		if len(b)-i < len(name)+2 {
			return 0, true
		}
		c := b[i]
		if c == '!' || c == '?' {
			return 0, false
		}
		if c == '/' {
			i++
		}
		if b[i] != name[0] || !bytes.HasPrefix(b[i:], name) {
			continue
		}
		if d := b[i+len(name)]; c != '/' && (isSpace(d) || d == '>' || d == '/') {
			return 0, false // a nested element of the same name
		} else if c == '/' && (isSpace(d) || d == '>') {
			m := bytes.IndexByte(b[i:], '>')
			if m < 0 {
				return 0, true
			}
			return i + m + 1, true
		}
	}
}

// elementEndWalk is elementEnd reading every tag of the content.
func elementEndWalk(b []byte, k int) (int, error) {
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
			m, selfClosing := tagEnd(rest, nil)
			if m == 0 {
				return 0, nil
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
// is self-closing, or 0 when b does not hold all of it. Its quoted
// attribute values may hold '>'. It notes where they are in vals, unless
// nil.
func tagEnd(b []byte, vals *values) (n int, selfClosing bool) {
	gt, sq, dq := -1, -1, -1 // the next '>', and the next quotes before it (gt when none)
	for k := 1; ; {
		if gt < k {
			if gt = indexFrom(b, k, '>'); gt < 0 {
				return 0, false
			}
		}
		if sq < k {
			if sq = indexFrom(b[:gt], k, '\''); sq < 0 {
				sq = gt
			}
		}
		if dq < k {
			if dq = indexFrom(b[:gt], k, '"'); dq < 0 {
				dq = gt
			}
		}
		q := min(sq, dq)
		if q == gt {
			return gt + 1, b[gt-1] == '/'
		}
		c := indexFrom(b, q+1, b[q])
		if c < 0 {
			return 0, false
		}
		if vals != nil {
			if vals.n < len(vals.at) {
				vals.at[vals.n] = [2]int32{int32(q + 1), int32(c)}
			}
			vals.n++
		}
		k = c + 1
	}
}

// indexFrom returns the index in b of the first c at or after from, or -1.
func indexFrom(b []byte, from int, c byte) int {
	if i := bytes.IndexByte(b[from:], c); i >= 0 {
		return from + i
	}
	return -1
}
