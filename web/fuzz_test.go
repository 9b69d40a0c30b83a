package web

import (
	"strconv"
	"strings"
	"testing"

	"github.com/pubpresence/pubpresence/internal/xmpp"
)

// FuzzParseUserPath: the JID of /api/v1/presence/{jid} never panics the
// parser; what it accepts is a normal bare JID with a localpart, which it
// accepts again unchanged.
func FuzzParseUserPath(f *testing.F) {
	for _, s := range []string{"alice@example.org", "Alice@Example.ORG", "alice@example.org/laptop", "example.org",
		"@example.org", "a@b@c", "", "ünïcode@例え.jp", "a@b.c/", "%2F@x", strings.Repeat("a", 1100) + "@x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		bare, err := ParseUserPath(s)
		if err != nil {
			if bare != "" {
				t.Fatalf("%q: %q with error %v", s, bare, err)
			}
			return
		}
		j, err := xmpp.ParseJID(bare)
		if err != nil || j.Resource != "" || j.Local == "" || j.Bare() != bare {
			t.Fatalf("%q accepted as %q: %+v %v", s, bare, j, err)
		}
		if again, err := ParseUserPath(bare); err != nil || again != bare {
			t.Fatalf("%q: %q, then %q %v", s, bare, again, err)
		}
	})
}

// FuzzParseLastEventID: only decimal seqs are read, exactly.
func FuzzParseLastEventID(f *testing.F) {
	for _, s := range []string{"0", "1764763200000001", " 42 ", "-1", "+1", "1e3", "0x10", "18446744073709551615", "18446744073709551616", "", "١٢"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := ParseLastEventID(s)
		if !ok {
			return
		}
		trimmed := strings.TrimSpace(s)
		back, err := strconv.ParseUint(trimmed, 10, 64)
		if err != nil || back != n || strings.TrimLeft(trimmed, "0123456789") != "" {
			t.Fatalf("%q read as %d", s, n)
		}
	})
}

// FuzzParseTokens: the tokens file parser never panics, every token it
// accepts matches under its name, and its errors never contain a token.
func FuzzParseTokens(f *testing.F) {
	for _, s := range []string{
		"ops 0123456789abcdef0123\n", "0123456789abcdef0123", "# c\n\nops 0123456789abcdef0123\r\nweb abcdefghijklmnop==\n",
		"ops short\n", "a b c\n", "ops 0123456789abcdef0123\nops 0123456789abcdef0124\n", "x 0123456789abcdef0123\ny 0123456789abcdef0123\n",
		"bad/name 0123456789abcdef0123", "====================", "", "\x00\xff",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tokens, err := ParseTokens(data)
		var lines [][]string
		for _, line := range strings.Split(string(data), "\n") {
			line = strings.TrimSpace(strings.TrimSuffix(line, "\r"))
			if line == "" || line[0] == '#' {
				continue
			}
			lines = append(lines, strings.Fields(line))
		}
		if err != nil {
			names := map[string]bool{}
			for _, fields := range lines {
				if len(fields) == 2 {
					names[fields[0]] = true
				}
			}
			// The error may name a line by its NAME, which may happen to
			// contain another line's token: such a token is the name's.
			inName := func(tok string) bool {
				for name := range names {
					if strings.Contains(name, tok) {
						return true
					}
				}
				return false
			}
			for _, fields := range lines {
				tok := fields[len(fields)-1]
				if len(tok) >= minToken && !inName(tok) && strings.Contains(err.Error(), tok) {
					t.Fatalf("the error shows a token: %v", err)
				}
			}
			return
		}
		if tokens.Len() != len(lines) || tokens.Len() == 0 {
			t.Fatalf("%d tokens from %d lines", tokens.Len(), len(lines))
		}
		for i, fields := range lines {
			name, ok := tokens.Match(fields[len(fields)-1])
			if !ok || (len(fields) == 2 && name != fields[0]) {
				t.Fatalf("line %d's token matches %q %v", i, name, ok)
			}
		}
	})
}
