package watch

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testToken = "Zm9vYmFyYmF6cXV4LXRlc3QtdG9rZW4="

func TestParseToken(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     string // the token, or "" for an error
		err      string
	}{
		{name: "token alone", in: testToken + "\n", want: testToken},
		{name: "name and token", in: "monitor " + testToken, want: testToken},
		{name: "as the integration tests write it", in: "# the integration tests' reader\ntests " + testToken + "\n", want: testToken},
		{name: "comments, blanks, CRLF, tabs, BOM", in: "\uFEFF# tokens\r\n\r\n   \r\n\t# indented comment\r\n\tdash\t" + testToken + "  \r\nother second-token-aaaaaaaa\r\n",
			want: testToken},
		{name: "the first token wins", in: "a " + testToken + "\nb other-token-bbbbbbbbbb\n", want: testToken},
		{name: "a later bad line is not read", in: testToken + "\nthree fields here\n", want: testToken},
		{name: "empty", in: "", err: "no token in it"},
		{name: "only comments", in: "# a\n\n#b " + testToken + "\n", err: "no token in it"},
		{name: "three fields", in: "# x\na b " + testToken + "\n", err: `line 2: want "NAME TOKEN" or "TOKEN", got 3 fields`},
		{name: "bad characters", in: "name tok\u00e9n-aaaaaaaaaaaaaa\n", err: "line 1: a token is made of"},
		{name: "quotes", in: `"` + testToken + `"`, err: "line 1: a token is made of"},
		{name: "only =", in: "====", err: "only '='"},
		{name: "= inside", in: "abc=def", err: "a token is made of"},
		{name: "too long", in: strings.Repeat("a", 5000), err: "too long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseToken([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %q, %v; want the error %q", got, err, tc.err)
				}
				if strings.Contains(err.Error(), "aaaaaaaa") || strings.Contains(err.Error(), testToken) {
					t.Errorf("the error shows the token: %v", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestReadToken(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "tokens")
	if err := os.WriteFile(good, []byte("watch "+testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if tok, err := ReadToken(good); err != nil || tok != testToken {
		t.Errorf("ReadToken = %q, %v", tok, err)
	}
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("a b c-"+testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadToken(bad); err == nil || !strings.HasPrefix(err.Error(), bad+": line 1:") || strings.Contains(err.Error(), testToken) {
		t.Errorf("bad file: %v", err)
	}
	huge := filepath.Join(dir, "huge")
	if err := os.WriteFile(huge, bytes.Repeat([]byte("#\n"), maxTokenFile), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadToken(huge); err == nil || !strings.Contains(err.Error(), "not a tokens file") {
		t.Errorf("huge file: %v", err)
	}
	if _, err := ReadToken(filepath.Join(dir, "none")); !os.IsNotExist(err) {
		t.Errorf("missing file: %v", err)
	}
}

// FuzzTokenFile: ParseToken never panics; a token is the last field of
// the first line that is not blank or a comment, a valid b64token; CRLF
// reads as LF; an error never shows a field of the file long enough to
// be a token.
func FuzzTokenFile(f *testing.F) {
	f.Add([]byte("# the integration tests' reader\ntests " + testToken + "\n"))
	f.Add([]byte(testToken))
	f.Add([]byte("\uFEFF\r\n# c\r\nname\t" + testToken + "=\r\n"))
	f.Add([]byte("a b c\n"))
	f.Add([]byte("n tøken-with-utf8-aaaaaa\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := ParseToken(data)
		crlf, err2 := ParseToken(bytes.ReplaceAll(data, []byte("\n"), []byte("\r\n")))
		if tok != crlf || (err == nil) != (err2 == nil) {
			t.Fatalf("LF: %q %v; CRLF: %q %v", tok, err, crlf, err2)
		}
		if err != nil {
			for _, field := range strings.Fields(string(data)) {
				if len(field) >= 16 && strings.Contains(err.Error(), field) {
					t.Fatalf("the error %q shows %q", err, field)
				}
			}
			return
		}
		if checkToken(tok) != nil || strings.ContainsFunc(tok, func(r rune) bool { return r <= ' ' || r > '~' }) {
			t.Fatalf("token %q", tok)
		}
		var first []string
		for _, line := range strings.Split(strings.TrimPrefix(string(data), "\uFEFF"), "\n") {
			line = strings.TrimSpace(line)
			if line != "" && line[0] != '#' {
				first = strings.Fields(line)
				break
			}
		}
		if len(first) == 0 || first[len(first)-1] != tok {
			t.Fatalf("token %q is not the last field of the first line %q", tok, first)
		}
	})
}
