package xmpp

import (
	"bytes"
	"unicode/utf8"

	"github.com/pubpresence/pubpresence/internal/xmltext"
)

// The scanner primitives of the fast paths: the Reader's (reader.go) and
// presence's (presence/fastparse.go). Each reads one piece of XML at an
// index of a buffer and accepts only what encoding/xml would accept and
// read the same way: ASCII names, quoted attribute values, character data,
// the five predefined entities and character references. What they cannot
// be sure of they leave to encoding/xml (ScanUnsure); when the buffer ends
// inside the piece they say so (ScanMore), for a caller that may read more.
// A caller whose input is complete takes ScanMore as ScanUnsure.

// ScanResult says how far a scanner primitive got.
type ScanResult uint8

const (
	ScanDone   ScanResult = iota // the piece is read
	ScanMore                     // the buffer ends inside the piece so far accepted
	ScanUnsure                   // encoding/xml must read it
)

// ScanName reads a name at b[i]: ASCII, starting with a letter or '_', with
// at most one ':' between two such names. colon is the index of the ':',
// or -1.
func ScanName(b []byte, i int) (end, colon int, res ScanResult) {
	colon = -1
	if i >= len(b) {
		return 0, colon, ScanMore
	}
	if !isNameStart(b[i]) {
		return 0, colon, ScanUnsure
	}
	for i++; i < len(b); i++ {
		c := b[i]
		switch {
		case isNameByte(c):
		case c == ':' && colon < 0:
			if i+1 >= len(b) {
				return 0, colon, ScanMore
			}
			if !isNameStart(b[i+1]) {
				return 0, colon, ScanUnsure
			}
			colon = i
		case c >= utf8.RuneSelf || c == ':':
			return 0, colon, ScanUnsure // a non-ASCII name, or a second ':'
		default:
			return i, colon, ScanDone
		}
	}
	return 0, colon, ScanMore
}

func isNameStart(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_'
}

func isNameByte(c byte) bool {
	return isNameStart(c) || '0' <= c && c <= '9' || c == '.' || c == '-'
}

// IsSpace reports whether c is XML white space.
func IsSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\t' || c == '\r' }

// SkipSpace returns the index of the first byte at or after b[i] that is
// not white space, or len(b).
func SkipSpace(b []byte, i int) int {
	for i < len(b) && IsSpace(b[i]) {
		i++
	}
	return i
}

// ScanAttrValue reads "= 'value'" at b[i] (white space allowed around '=')
// and returns where the value starts and ends (at its closing quote) and
// whether it holds an entity (AppendDecoded decodes it). With strict, a
// carriage return (which encoding/xml would turn into a newline) is left
// to encoding/xml.
func ScanAttrValue(b []byte, i int, strict bool) (start, end int, ent bool, res ScanResult) {
	i = SkipSpace(b, i)
	if i >= len(b) {
		return 0, 0, false, ScanMore
	}
	if b[i] != '=' {
		return 0, 0, false, ScanUnsure
	}
	i = SkipSpace(b, i+1)
	if i >= len(b) {
		return 0, 0, false, ScanMore
	}
	q := b[i]
	if q != '\'' && q != '"' {
		return 0, 0, false, ScanUnsure
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
			return start, i, ent, ScanDone
		case c == '<' || c == '\r' && strict:
			return 0, 0, false, ScanUnsure
		case c == '&':
			_, n, res := DecodeEntity(b[i:])
			if res != ScanDone {
				return 0, 0, false, res
			}
			ent = true
			i += n
		default:
			n, res := ScanChar(b, i)
			if res != ScanDone {
				return 0, 0, false, res
			}
			i += n
		}
	}
	return 0, 0, false, ScanMore
}

// AppendDecoded appends an attribute value that ScanAttrValue accepted,
// with its entities decoded.
func AppendDecoded(dst, raw []byte) []byte {
	for {
		i := bytes.IndexByte(raw, '&')
		if i < 0 {
			return append(dst, raw...)
		}
		dst = append(dst, raw[:i]...)
		c, n, res := DecodeEntity(raw[i:])
		if res != ScanDone {
			panic("xmpp: AppendDecoded on a value the scanner did not accept")
		}
		dst = utf8.AppendRune(dst, c)
		raw = raw[i+n:]
	}
}

// ScanText reads one piece of character data at b[i] (not '<'): a
// character, an entity, or a ']' that does not start "]]>". It returns
// where the next piece starts. A carriage return is a character here:
// whoever keeps the text as encoding/xml would must turn it into a newline
// or leave it to encoding/xml.
func ScanText(b []byte, i int) (next int, res ScanResult) {
	switch b[i] {
	case '&':
		_, n, res := DecodeEntity(b[i:])
		if res != ScanDone {
			return i, res
		}
		return i + n, ScanDone
	case ']':
		if i+2 >= len(b) {
			return i, ScanMore
		}
		if b[i+1] == ']' && b[i+2] == '>' {
			return i, ScanUnsure // an error outside CDATA
		}
		return i + 1, ScanDone
	}
	n, res := ScanChar(b, i)
	if res != ScanDone {
		return i, res
	}
	return i + n, ScanDone
}

// IsTextPlain reports whether c is a whole character of character data
// that needs no further look: ASCII, not '<', '&' or ']', and allowed by XML
// (a tab, a newline, a carriage return, or at least U+0020).
func IsTextPlain(c byte) bool { return textPlain[c] }

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

// ScanChar reads one character at b[i] and returns its length: any
// character XML allows.
func ScanChar(b []byte, i int) (int, ScanResult) {
	c := b[i]
	switch {
	case c >= 0x20 && c < utf8.RuneSelf:
		return 1, ScanDone
	case c < 0x20:
		if c == '\t' || c == '\n' || c == '\r' {
			return 1, ScanDone
		}
		return 0, ScanUnsure
	}
	if !utf8.FullRune(b[i:]) {
		return 0, ScanMore
	}
	r, n := utf8.DecodeRune(b[i:])
	if r == utf8.RuneError && n == 1 || !xmltext.IsChar(r) {
		return 0, ScanUnsure
	}
	return n, ScanDone
}

// maxCharRef bounds the digits of a character reference on the fast paths.
const maxCharRef = 12

// DecodeEntity decodes the entity at the start of b ('&'): one of the five
// predefined ones, or a character reference to a character XML allows.
func DecodeEntity(b []byte) (r rune, n int, res ScanResult) {
	if len(b) < 2 {
		return 0, 0, ScanMore
	}
	if b[1] != '#' {
		for _, e := range [...]struct {
			s string
			r rune
		}{{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&apos;", '\''}, {"&quot;", '"'}} {
			if bytes.HasPrefix(b, []byte(e.s)) {
				return e.r, len(e.s), ScanDone
			}
			if len(b) < len(e.s) && bytes.HasPrefix([]byte(e.s), b) {
				return 0, 0, ScanMore
			}
		}
		return 0, 0, ScanUnsure
	}
	i, base := 2, rune(10)
	if i < len(b) && b[i] == 'x' {
		i, base = 3, 16
	}
	var v rune
	for digits := 0; ; i, digits = i+1, digits+1 {
		if i >= len(b) {
			return 0, 0, ScanMore
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
			return v, i + 1, ScanDone
		default:
			return 0, 0, ScanUnsure
		}
		if digits >= maxCharRef {
			return 0, 0, ScanUnsure
		}
		if v = v*base + d; v > utf8.MaxRune {
			return 0, 0, ScanUnsure
		}
	}
}
