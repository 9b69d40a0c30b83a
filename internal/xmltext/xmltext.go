// Package xmltext escapes text for XML character data and quoted
// attribute values, the one way every package of pubpresence writes XML
// by hand.
package xmltext

import "unicode/utf8"

// Append appends s to b escaped as xml.EscapeText does: & < > " '
// and \t \n \r become references; invalid UTF-8 and characters outside
// XML's range become U+FFFD.
func Append(b []byte, s string) []byte {
	i := 0
	for i < len(s) && plain[s[i]] {
		i++
	}
	if i == len(s) {
		return append(b, s...)
	}
	return appendEscaped(b, s, i)
}

// appendEscaped is Append for s whose first i bytes are plain.
func appendEscaped(b []byte, s string, i int) []byte {
	last := 0
	for i < len(s) {
		c := s[i]
		if plain[c] {
			i++
			continue
		}
		var esc string
		width := 1
		switch c {
		case '&':
			esc = "&amp;"
		case '<':
			esc = "&lt;"
		case '>':
			esc = "&gt;"
		case '"':
			esc = "&#34;"
		case '\'':
			esc = "&#39;"
		case '\t':
			esc = "&#x9;"
		case '\n':
			esc = "&#xA;"
		case '\r':
			esc = "&#xD;"
		default:
			if c < 0x20 {
				esc = "\uFFFD"
				break
			}
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 || !IsChar(r) {
				esc = "\uFFFD"
				width = n
				break
			}
			i += n
			continue
		}
		b = append(b, s[last:i]...)
		b = append(b, esc...)
		i += width
		last = i
	}
	return append(b, s[last:]...)
}

// plain holds the bytes Append copies as they are.
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = true
	}
	for _, c := range "&<>\"'" {
		t[c] = false
	}
	return t
}()

// IsChar reports whether r is a character XML 1.0 allows.
func IsChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}

// Escape returns s escaped as Append does; s itself when nothing needs
// escaping.
func Escape(s string) string {
	for i := 0; i < len(s); i++ {
		if !plain[s[i]] {
			return string(Append(make([]byte, 0, len(s)+16), s))
		}
	}
	return s
}
