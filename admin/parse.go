package admin

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pubpresence/pubpresence/internal/xmpp"
)

// Session is one online connection as the server reports it.
type Session struct {
	// JID is the full JID: bare + "/" + resource, the bare JID normalised by
	// the core (xmpp.ParseJID: local part and domain lower-cased, not full
	// stringprep) and the resource as the server gave it.
	JID string
	// Show is what Prosody's details report: "available", "away", "chat",
	// "dnd", "xa", or "unavailable" (the session has sent no presence yet).
	// "" when unknown (user-stats, or a value outside that list).
	Show string
	// Priority is the session's presence priority; HasPriority is false when
	// it is unset or unknown.
	Priority    int
	HasPriority bool
	// IP is the canonical text of the client's address (netip.Addr.String,
	// IPv4-mapped IPv6 unmapped to IPv4, no zone), "" when unknown.
	IP string
}

// CommandError is a command that completed with <note type='error'/>, or was
// canceled. Prosody reports user errors this way ("User does not exist"),
// not as IQ errors.
type CommandError struct {
	Node string // the command node
	Note string // the note's text, or "canceled" when there is none
}

func (e *CommandError) Error() string {
	return "admin: command " + e.Node + ": " + e.Note
}

// command is the part of an XEP-0050 <command/> answer that we read.
type command struct {
	Node      string      `xml:"node,attr"`
	Status    string      `xml:"status,attr"`
	SessionID string      `xml:"sessionid,attr"`
	Notes     []note      `xml:"note"`
	Forms     []xmpp.Form `xml:"jabber:x:data x"`
}

type note struct {
	Type string `xml:"type,attr"`
	Text string `xml:",chardata"`
}

// decodeCommand finds the first <command/> element in b (the inner XML of an
// IQ result) and decodes it. The namespace must be XEP-0050's or absent.
// The answers servers send are read by fastCommand (fastparse.go); the
// rest by encoding/xml (decodeCommandXML).
func decodeCommand(b []byte) (*command, error) {
	if c, ok := fastCommand(b); ok {
		return c, nil
	}
	return decodeCommandXML(b)
}

// decodeCommandXML is decodeCommand with encoding/xml.
func decodeCommandXML(b []byte) (*command, error) {
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return nil, errors.New("admin: no <command/> in answer")
		}
		if err != nil {
			return nil, fmt.Errorf("admin: read answer: %w", err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if se.Name.Local != "command" || (se.Name.Space != xmpp.NSCommands && se.Name.Space != "") {
			if err := d.Skip(); err != nil {
				return nil, fmt.Errorf("admin: read answer: %w", err)
			}
			continue
		}
		var c command
		if err := d.DecodeElement(&c, &se); err != nil {
			return nil, fmt.Errorf("admin: read <command/>: %w", err)
		}
		return &c, nil
	}
}

// completedForm checks that c completed without an error note and returns its
// first data form.
func completedForm(c *command) (*xmpp.Form, error) {
	for _, n := range c.Notes {
		if n.Type == "error" {
			return nil, &CommandError{Node: c.Node, Note: strings.TrimSpace(n.Text)}
		}
	}
	switch c.Status {
	case "completed", "": // a missing status is tolerated
	case "canceled":
		return nil, &CommandError{Node: c.Node, Note: "canceled"}
	default:
		return nil, fmt.Errorf("admin: command %s not completed (status %q)", c.Node, c.Status)
	}
	if len(c.Forms) == 0 {
		return nil, fmt.Errorf("admin: command %s: no result form", c.Node)
	}
	return &c.Forms[0], nil
}

// ParseOnlineUsers reads a completed get-online-users-list <command/> (field
// onlineuserjids). It returns the bare JIDs, lower-cased and without
// duplicates, in the server's order. When the answer has Prosody's details
// lines (" - <resource>: <show>(<prio>), IP: [<ip>]", each after the bare JID
// it belongs to), details is true and sessions holds one Session per line
// that could be read; a details line before any JID is ignored. A line is
// read from its right end (IP, then "(prio)", then show) so that resources
// containing ": " or "(" survive. A completed command with <note
// type='error'/> gives a *CommandError.
func ParseOnlineUsers(cmd []byte) (users []string, sessions []Session, details bool, err error) {
	c, err := decodeCommand(cmd)
	if err != nil {
		return nil, nil, false, err
	}
	form, err := completedForm(c)
	if err != nil {
		return nil, nil, false, err
	}
	f := form.Field("onlineuserjids")
	if f == nil {
		return nil, nil, false, errors.New("admin: get-online-users-list: no onlineuserjids field")
	}
	seen := make(map[string]bool)
	current := ""
	for _, raw := range f.Values {
		v := strings.TrimSpace(raw)
		if line, ok := strings.CutPrefix(v, "- "); ok {
			details = true
			if current == "" {
				continue
			}
			if s, ok := parseDetail(current, line); ok {
				sessions = append(sessions, s)
			}
			continue
		}
		bare, ok := normalizeBare(v)
		if !ok {
			current = ""
			continue
		}
		current = bare
		if !seen[bare] {
			seen[bare] = true
			users = append(users, bare)
		}
	}
	return users, sessions, details, nil
}

// knownShows are the show values Prosody's details report.
var knownShows = []string{"available", "away", "chat", "dnd", "xa", "unavailable"}

func isKnownShow(s string) bool {
	for _, k := range knownShows {
		if s == k {
			return true
		}
	}
	return false
}

// parseDetail reads "<resource>: <show>(<prio>), IP: [<ip>]" (the IP part is
// optional; Prosody writes "<unknown>" when the session has no IP) for the
// user bare.
func parseDetail(bare, line string) (Session, bool) {
	s := Session{}
	rest := line
	const ipMark = ", IP: ["
	if strings.HasSuffix(rest, "]") {
		if i := strings.LastIndex(rest, ipMark); i >= 0 {
			if a, err := parsePlainIP(rest[i+len(ipMark) : len(rest)-1]); err == nil {
				s.IP = a.String()
			}
			rest = rest[:i]
		}
	}
	if !strings.HasSuffix(rest, ")") {
		return Session{}, false
	}
	j := strings.LastIndexByte(rest, '(')
	if j < 0 {
		return Session{}, false
	}
	if p, err := strconv.Atoi(strings.TrimSpace(rest[j+1 : len(rest)-1])); err == nil {
		s.Priority, s.HasPriority = p, true
	}
	rest = rest[:j]
	// Prefer ": <known show>" at the end, so that a resource with ": " in it
	// is kept whole; otherwise split at the last ": ".
	k := -1
	for _, show := range knownShows {
		if strings.HasSuffix(rest, ": "+show) {
			k = len(rest) - len(show) - 2
			break
		}
	}
	if k < 0 {
		k = strings.LastIndex(rest, ": ")
	}
	if k <= 0 { // no separator, or an empty resource
		return Session{}, false
	}
	if show := rest[k+2:]; isKnownShow(show) {
		s.Show = show
	}
	s.JID = bare + "/" + rest[:k]
	return s, true
}

// ParseUserStats reads a completed user-stats <command/> for the account bare
// and returns one Session per online resource (field onlineresources), with
// the IP where it is known (field ipaddresses). Show and priority are not
// reported by user-stats and stay unknown. An offline user gives an empty
// slice and no error; Prosody's "User does not exist" note gives a
// *CommandError.
//
// IPs are paired with resources by index only when both lists have the same
// length; otherwise every IP is left "". Both servers build the two lists in
// one pass over the sessions, so equal lengths mean the same order
// (measured on Prosody 0.12 and ejabberd 23.01). But ejabberd drops the sessions whose
// IP is undefined (and a session that ends between its two look-ups) from
// ipaddresses only, and nothing tells which ones are missing: pairing a
// shorter list by index would give sessions someone else's IP, which is worse
// than no IP.
//
// Prosody writes plain IPs ("::1"); ejabberd writes "ip:port" with IPv6
// unbracketed ("::1:40012"). The list is read as ejabberd's when the form has
// ejabberd's accountjid field and every value splits at its last colon into
// an IP and a port; otherwise as plain IPs, which keeps a Prosody IPv6 address
// such as "2001:db8::1:2" whole.
func ParseUserStats(cmd []byte, bare string) ([]Session, error) {
	c, err := decodeCommand(cmd)
	if err != nil {
		return nil, err
	}
	form, err := completedForm(c)
	if err != nil {
		return nil, err
	}
	b, ok := normalizeBare(bare)
	if !ok {
		return nil, fmt.Errorf("admin: user-stats: bad account JID %q", bare)
	}
	resField := form.Field("onlineresources")
	if resField == nil {
		return nil, errors.New("admin: user-stats: no onlineresources field")
	}
	var resources []string
	for _, v := range resField.Values {
		if r := strings.TrimSpace(v); r != "" {
			resources = append(resources, r)
		}
	}
	var ips []string
	if f := form.Field("ipaddresses"); f != nil {
		for _, v := range f.Values {
			if ip := strings.TrimSpace(v); ip != "" {
				ips = append(ips, ip)
			}
		}
	}
	withPort := form.Field("accountjid") != nil && len(ips) > 0
	for _, ip := range ips {
		if _, ok := splitIPPort(ip); !ok {
			withPort = false
			break
		}
	}
	sessions := make([]Session, 0, len(resources))
	for i, r := range resources {
		s := Session{JID: b + "/" + r}
		if len(ips) == len(resources) {
			var a netip.Addr
			var err error
			if withPort {
				a, err = ParseAddr(ips[i])
			} else if a, err = parsePlainIP(ips[i]); err != nil {
				a, err = ParseAddr(ips[i])
			}
			if err == nil {
				s.IP = a.String()
			}
		}
		sessions = append(sessions, s)
	}
	return sessions, nil
}

// ParseAddr parses one IP address as the servers write it: a plain IP
// ("1.2.3.4", "::1"), a bracketed one ("[::1]", "[::1]:5222"), or ejabberd's
// "ip:port" with IPv6 unbracketed ("1.2.3.4:5222", "::1:5222",
// "::ffff:1.2.3.4:5222"). The part after the last colon is taken as a port
// only when it is a decimal port number and the rest is a valid IP, so "::1"
// stays "::1" while "::1:5222" is ::1 port 5222. An unbracketed IPv6 address
// whose last group is a decimal number ("2001:db8::1:2") is therefore read as
// ip:port; callers that know they have a plain IP should not use ParseAddr
// (ParseUserStats does not, for Prosody). The result is unmapped
// (::ffff:1.2.3.4 becomes 1.2.3.4) and has no zone. "" and garbage are
// errors.
func ParseAddr(s string) (netip.Addr, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return netip.Addr{}, errors.New("admin: empty IP address")
	}
	if strings.HasPrefix(t, "[") {
		if strings.HasSuffix(t, "]") {
			return parsePlainIP(t)
		}
		ap, err := netip.ParseAddrPort(t)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("admin: bad IP address %q", s)
		}
		return canonical(ap.Addr()), nil
	}
	if a, ok := splitIPPort(t); ok {
		return a, nil
	}
	a, err := parsePlainIP(t)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("admin: bad IP address %q", s)
	}
	return a, nil
}

// splitIPPort reads t as "<ip>:<port>" split at the last colon.
func splitIPPort(t string) (netip.Addr, bool) {
	i := strings.LastIndexByte(t, ':')
	if i < 0 || !isPort(t[i+1:]) {
		return netip.Addr{}, false
	}
	host := t[:i]
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return canonical(a), true
}

// isPort reports whether p is a decimal port number (0–65535).
func isPort(p string) bool {
	if p == "" || len(p) > 5 {
		return false
	}
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
		n = n*10 + int(p[i]-'0')
	}
	return n <= 65535
}

// parsePlainIP parses an IP with no port, optionally in brackets.
func parsePlainIP(s string) (netip.Addr, error) {
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "[") && strings.HasSuffix(t, "]") {
		t = strings.TrimSpace(t[1 : len(t)-1])
	}
	a, err := netip.ParseAddr(t)
	if err != nil {
		return netip.Addr{}, err
	}
	return canonical(a), nil
}

func canonical(a netip.Addr) netip.Addr {
	return a.Unmap().WithZone("")
}

// normalizeBare turns s, white space around it dropped, into a bare JID
// normalised by the core (xmpp.ParseJID); a resource is dropped. It
// reports false for what is not a JID.
func normalizeBare(s string) (string, bool) {
	b, err := xmpp.NormalBare(strings.TrimSpace(s))
	return b, err == nil
}

// ParseOnlineResources reads the disco#items answer of ejabberd's "online
// users" node: one <item jid='user@host/resource'/> per session. It returns
// the full JIDs with lower-cased local part and domain, without duplicates;
// items without a resource are skipped.
func ParseOnlineResources(query []byte) ([]string, error) {
	d := xml.NewDecoder(bytes.NewReader(query))
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return nil, errors.New("admin: no disco#items <query/> in answer")
		}
		if err != nil {
			return nil, fmt.Errorf("admin: read answer: %w", err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if se.Name.Local != "query" || se.Name.Space != xmpp.NSDiscoItems {
			if err := d.Skip(); err != nil {
				return nil, fmt.Errorf("admin: read answer: %w", err)
			}
			continue
		}
		var q struct {
			Items []struct {
				JID string `xml:"jid,attr"`
			} `xml:"item"`
		}
		if err := d.DecodeElement(&q, &se); err != nil {
			return nil, fmt.Errorf("admin: read disco#items: %w", err)
		}
		var out []string
		seen := make(map[string]bool)
		for _, it := range q.Items {
			full, err := xmpp.NormalFull(strings.TrimSpace(it.JID))
			if err != nil || xmpp.BareOf(full) == full { // no resource
				continue
			}
			if !seen[full] {
				seen[full] = true
				out = append(out, full)
			}
		}
		return out, nil
	}
}
