package web

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"os"
	"strings"
)

// Bounds of a token: RFC 6750's b64token, at least 16 characters (a
// guessable token is no protection), at most 256.
const (
	minToken = 16
	maxToken = 256
)

// Tokens are the API's bearer tokens, as read from http.tokens_file. The
// tokens themselves are kept only as SHA-256 hashes.
type Tokens struct {
	names  []string
	hashes [][sha256.Size]byte
}

// Len returns the number of tokens.
func (t *Tokens) Len() int { return len(t.names) }

// ReadTokens reads and parses the tokens file at path.
func ReadTokens(path string) (*Tokens, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t, err := ParseTokens(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// ParseTokens reads the tokens file's format: one token per line, "NAME
// TOKEN" or "TOKEN" (then named "line N"), blank lines and lines starting
// with # ignored. Names are letters, digits and - . _ @; tokens are
// RFC 6750 b64token (A-Z a-z 0-9 - . _ ~ + / then "=" only at the end), 16
// to 256 characters. A file with no token, a repeated name or token is an
// error. Errors name the line, never the token.
func ParseTokens(data []byte) (*Tokens, error) {
	t := &Tokens{}
	seen := make(map[[sha256.Size]byte]int)
	names := make(map[string]int)
	for i, line := range bytes.Split(data, []byte("\n")) {
		n := i + 1
		line = bytes.TrimSpace(bytes.TrimSuffix(line, []byte("\r")))
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		fields := strings.Fields(string(line))
		var name, token string
		switch len(fields) {
		case 1:
			name, token = fmt.Sprintf("line %d", n), fields[0]
		case 2:
			name, token = fields[0], fields[1]
			if !validName(name) {
				return nil, fmt.Errorf("line %d: the name must be 1 to 64 letters, digits or - . _ @", n)
			}
		default:
			return nil, fmt.Errorf(`line %d: want "NAME TOKEN" or "TOKEN", got %d fields`, n, len(fields))
		}
		if err := checkToken(token); err != nil {
			return nil, fmt.Errorf("line %d (%s): %w", n, name, err)
		}
		h := sha256.Sum256([]byte(token))
		if prev, dup := seen[h]; dup {
			return nil, fmt.Errorf("line %d (%s): the same token as line %d", n, name, prev)
		}
		if prev, dup := names[name]; dup {
			return nil, fmt.Errorf("line %d: the name %q is also on line %d", n, name, prev)
		}
		seen[h], names[name] = n, n
		t.names = append(t.names, name)
		t.hashes = append(t.hashes, h)
	}
	if len(t.names) == 0 {
		return nil, fmt.Errorf("no token (one per line, \"NAME TOKEN\" or \"TOKEN\")")
	}
	return t, nil
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._@", c) >= 0) {
			return false
		}
	}
	return true
}

// checkToken reports whether s is an acceptable token (RFC 6750 b64token,
// 16 to 256 characters). The error never contains s.
func checkToken(s string) error {
	if len(s) < minToken || len(s) > maxToken {
		return fmt.Errorf("a token is %d to %d characters, this one %d", minToken, maxToken, len(s))
	}
	body := strings.TrimRight(s, "=")
	if body == "" {
		return fmt.Errorf("a token is not only '='")
	}
	for _, c := range []byte(body) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~+/", c) >= 0) {
			return fmt.Errorf("a token is made of A-Z a-z 0-9 - . _ ~ + / and a trailing '='")
		}
	}
	return nil
}

// Match returns the name of the token equal to token, or "" and false. It
// compares the SHA-256 of token with every token's, in constant time, and
// always with all of them: the time taken says nothing of the tokens.
func (t *Tokens) Match(token string) (string, bool) {
	h := sha256.Sum256([]byte(token))
	found := -1
	for i := range t.hashes {
		if subtle.ConstantTimeCompare(h[:], t.hashes[i][:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return "", false
	}
	return t.names[found], true
}
