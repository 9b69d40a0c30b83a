package xmpp

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/pubpresence/pubpresence/internal/xmltext"
)

// maxJIDPart is the longest localpart, domainpart or resourcepart, in bytes (RFC 7622 §3).
const maxJIDPart = 1023

// JID is a parsed, normalised Jabber ID.
type JID struct{ Local, Domain, Resource string }

// ParseJID parses s ("local@domain/resource", "domain", "local@domain",
// "domain/res"). Local and Domain are lower-cased (strings.ToLower, no full
// stringprep) and a trailing dot of the domain is dropped; Resource is kept as
// is. It fails with a *JIDError for an empty domain, an empty local before '@' or resource after '/', a part longer than
// 1023 bytes, invalid UTF-8, a control character or another one XML cannot
// carry (U+FFFE, U+FFFF), a localpart holding whitespace or any of
// "&'/:<>@, and a domain holding whitespace or '@'.
func ParseJID(s string) (JID, error) {
	if !utf8.ValidString(s) {
		return JID{}, jidError(s, "invalid UTF-8")
	}
	var j JID
	rest := s
	if i := strings.IndexByte(s, '/'); i >= 0 {
		rest, j.Resource = s[:i], s[i+1:]
		if j.Resource == "" {
			return JID{}, jidError(s, "empty resource")
		}
	}
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		j.Local, j.Domain = rest[:i], rest[i+1:]
		if j.Local == "" {
			return JID{}, jidError(s, "empty local part")
		}
	} else {
		j.Domain = rest
	}
	j.Domain = strings.TrimSuffix(j.Domain, ".") // one final dot is allowed (RFC 7622 §3.2)
	if j.Domain == "" {
		return JID{}, jidError(s, "empty domain")
	}
	if j.Domain[0] == '.' || j.Domain[len(j.Domain)-1] == '.' || strings.Contains(j.Domain, "..") {
		return JID{}, jidError(s, "empty label in domain")
	}
	j.Local = strings.ToLower(j.Local)
	j.Domain = strings.ToLower(j.Domain)
	if len(j.Local) > maxJIDPart || len(j.Domain) > maxJIDPart || len(j.Resource) > maxJIDPart {
		return JID{}, jidError(s, "part longer than 1023 bytes")
	}
	if !jidPartOK(j.Local, &localBad) {
		return JID{}, jidError(s, "forbidden character in local part")
	}
	if !jidPartOK(j.Domain, &domainBad) {
		return JID{}, jidError(s, "forbidden character in domain")
	}
	for _, r := range j.Resource {
		if unicode.IsControl(r) || !xmltext.IsChar(r) {
			return JID{}, jidError(s, "control character in resource")
		}
	}
	return j, nil
}

// asciiBad marks the ASCII bytes a JID part may not hold: whitespace,
// control characters, and those of forbidden.
type asciiBad [utf8.RuneSelf]bool

func newASCIIBad(forbidden string) (t asciiBad) {
	for c := 0; c <= ' '; c++ {
		t[c] = true
	}
	t[0x7f] = true
	for i := 0; i < len(forbidden); i++ {
		t[forbidden[i]] = true
	}
	return t
}

// What a localpart and a domainpart may not hold, besides non-ASCII
// whitespace and control characters.
var (
	localBad  = newASCIIBad("\"&'/:<>@")
	domainBad = newASCIIBad("@/")
)

// jidPartOK reports whether part has no whitespace, no control character and
// none of the bytes bad marks: a table lookup per byte, every JID of every
// presence goes through it.
func jidPartOK(part string, bad *asciiBad) bool {
	for i := 0; i < len(part); i++ {
		c := part[i]
		if c >= utf8.RuneSelf {
			return jidPartOKUnicode(part, bad)
		}
		if bad[c] {
			return false
		}
	}
	return true
}

// jidPartOKUnicode is jidPartOK for parts that are not pure ASCII.
func jidPartOKUnicode(part string, bad *asciiBad) bool {
	for _, r := range part {
		if unicode.IsSpace(r) || unicode.IsControl(r) || !xmltext.IsChar(r) || r < utf8.RuneSelf && bad[r] {
			return false
		}
	}
	return true
}

// JIDError is a string that is not a usable JID.
type JIDError struct {
	JID string // the string, cut to 64 bytes
	Why string
}

func (e *JIDError) Error() string { return strconv.Quote(e.JID) + ": " + e.Why }

// jidError builds the error for a JID that cannot be used.
func jidError(s, why string) error {
	const max = 64
	if len(s) > max {
		s = strings.ToValidUTF8(s[:max], "") + "…"
	}
	return &JIDError{JID: s, Why: why}
}

// Bare returns "local@domain", or "domain" when there is no local part.
func (j JID) Bare() string {
	if j.Local == "" {
		return j.Domain
	}
	return j.Local + "@" + j.Domain
}

// Full returns Bare()+"/"+Resource, or Bare() when Resource is empty.
func (j JID) Full() string {
	if j.Resource == "" {
		return j.Bare()
	}
	if j.Local == "" {
		return j.Domain + "/" + j.Resource
	}
	return j.Local + "@" + j.Domain + "/" + j.Resource
}

// FullIn returns j.Full(): s itself when s spells it, as the string j was
// parsed from does when it was normal already (what servers send), so
// that it allocates nothing.
func (j JID) FullIn(s string) string {
	if j.spells(s) {
		return s
	}
	return j.Full()
}

// String returns the full JID.
func (j JID) String() string { return j.Full() }

// BareOf returns the bare part of a JID string that is already normalised,
// such as JID.Full() wrote it: everything before the first '/'.
func BareOf(jid string) string {
	if i := strings.IndexByte(jid, '/'); i >= 0 {
		return jid[:i]
	}
	return jid
}

// NormalFull returns ParseJID(s).Full(): s itself, not a copy, when s is
// normal already, as what servers send is, so that normalising it
// allocates nothing.
func NormalFull(s string) (string, error) {
	j, err := ParseJID(s)
	if err != nil {
		return "", err
	}
	if j.spells(s) {
		return s, nil
	}
	return j.Full(), nil
}

// NormalBare returns ParseJID(s).Bare(): the bare part of s itself when it
// is normal already (see NormalFull).
func NormalBare(s string) (string, error) {
	j, err := ParseJID(s)
	if err != nil {
		return "", err
	}
	j.Resource = ""
	if b := BareOf(s); j.spells(b) {
		return b, nil
	}
	return j.Bare(), nil
}

// spells reports whether s is exactly j.Full().
func (j JID) spells(s string) bool {
	if j.Local != "" {
		n := len(j.Local)
		if len(s) <= n || s[:n] != j.Local || s[n] != '@' {
			return false
		}
		s = s[n+1:]
	}
	n := len(j.Domain)
	if len(s) < n || s[:n] != j.Domain {
		return false
	}
	s = s[n:]
	if j.Resource == "" {
		return s == ""
	}
	return len(s) == len(j.Resource)+1 && s[0] == '/' && s[1:] == j.Resource
}
