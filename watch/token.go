package watch

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// maxTokenFile bounds what ReadToken reads: a tokens file is small.
const maxTokenFile = 1 << 20

// ReadToken returns the bearer token in the file at path (ParseToken).
// Its errors name the file and the line, never the token.
func ReadToken(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(io.LimitReader(f, maxTokenFile+1)); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if b.Len() > maxTokenFile {
		return "", fmt.Errorf("%s: more than %d bytes: not a tokens file", path, maxTokenFile)
	}
	tok, err := ParseToken(b.Bytes())
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return tok, nil
}

// ParseToken returns the token of a file in the format of the service's
// http.tokens_file: the first line that is neither blank nor a comment
// (starting with #) is "NAME TOKEN" or "TOKEN"; the token is its last
// field. The token must be an RFC 6750 b64token (A-Z a-z 0-9 - . _ ~ + /,
// then "=" only at the end), as the service's are. Lines may end in LF or
// CRLF; a byte order mark at the start is ignored. Errors name the line,
// never the token.
func ParseToken(data []byte) (string, error) {
	data = bytes.TrimPrefix(data, []byte("\uFEFF"))
	for i, line := range bytes.Split(data, []byte("\n")) {
		n := i + 1
		line = bytes.TrimSpace(line) // a CR of CRLF included
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		fields := strings.Fields(string(line))
		switch {
		case len(fields) > 2:
			return "", fmt.Errorf(`line %d: want "NAME TOKEN" or "TOKEN", got %d fields`, n, len(fields))
		case len(fields) == 0:
			// Only white space that bytes.TrimSpace does not know of.
			return "", fmt.Errorf("line %d: no token", n)
		}
		token := fields[len(fields)-1]
		if err := checkToken(token); err != nil {
			return "", fmt.Errorf("line %d: %w", n, err)
		}
		return token, nil
	}
	return "", errors.New(`no token in it (a line "NAME TOKEN" or "TOKEN"; # starts a comment)`)
}

// checkToken reports whether s is an RFC 6750 b64token of at most 4096
// bytes. The error never contains s.
func checkToken(s string) error {
	if len(s) > 4096 {
		return fmt.Errorf("a token of %d characters: too long", len(s))
	}
	body := strings.TrimRight(s, "=")
	if body == "" {
		return errors.New("the token is only '='")
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~+/", c) >= 0) {
			return errors.New("a token is made of A-Z a-z 0-9 - . _ ~ + / and a trailing '='")
		}
	}
	return nil
}
