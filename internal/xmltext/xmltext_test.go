package xmltext

import (
	"bytes"
	"encoding/xml"
	"testing"
)

func TestAppendMatchesEncodingXML(t *testing.T) {
	for _, s := range []string{
		"", "plain", "&<>\"'\t\n\r", "é ☺ 😀", "a\x00b", "\xff\xfe", "\uFFFE\uFFFF", "\uFFFD", "\xed\xa0\x80", // a surrogate
		"x\x7fy", "\u0085\u2028",
	} {
		var want bytes.Buffer
		xml.EscapeText(&want, []byte(s))
		if got := string(Append(nil, s)); got != want.String() {
			t.Errorf("Append(%q) = %q, xml.EscapeText %q", s, got, want.String())
		}
	}
}

func TestEscape(t *testing.T) {
	for _, s := range []string{"", "plain text", "a<b>&'\"\t\n\r", "ünï\x00\xff"} {
		if got, want := Escape(s), string(Append(nil, s)); got != want {
			t.Errorf("Escape(%q) = %q, want %q", s, got, want)
		}
	}
}
