package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pubpresence/pubpresence/internal/xmpp"
)

// maxJIDPart is the largest domainpart or localpart RFC 7622 allows, in bytes.
const maxJIDPart = 1023

// validate checks cfg, records every problem in p, fills the defaults that
// depend on other values (xmpp.pubsub) and lower-cases domains.
func validate(cfg *Config, p *problems) {
	validateXMPP(&cfg.XMPP, p)
	validateNodes(&cfg.Nodes, p)
	validateSync(&cfg.Sync, p)
	validateTracking(&cfg.Tracking, p)
	if u := cfg.Ejabberd.APIURL; u != "" {
		if err := checkAPIURL(u); err != nil {
			p.add("ejabberd.api_url", `%q is not an http(s) URL (or "" to leave it off): %v`, redactURL(u), err)
		}
	}
	validateHTTP(&cfg.HTTP, p)
	switch cfg.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		p.add("log.level", "must be one of debug, info, warn, error; got %q", cfg.Log.Level)
	}
	switch cfg.Log.Format {
	case "json", "console":
	default:
		p.add("log.format", `must be "json" or "console", got %q`, cfg.Log.Format)
	}
}

func validateXMPP(x *XMPP, p *problems) {
	validateAddresses(x, p)

	if x.Component == "" {
		p.add("xmpp.component", "required")
	} else if err := checkDomainJID(x.Component); err != nil {
		p.add("xmpp.component", "%q is not a domain JID: %v", x.Component, err)
	} else {
		x.Component = normalJID(x.Component)
	}

	if x.Secret == "" {
		p.add("xmpp.secret", "required (or set %s)", EnvSecret)
	}

	if len(x.Domains) == 0 {
		p.add("xmpp.domains", "required (at least one domain)")
	}
	firstValid := len(x.Domains) > 0
	seen := make(map[string]int, len(x.Domains))
	for i, d := range x.Domains {
		key := fmt.Sprintf("xmpp.domains[%d]", i)
		if err := checkDomain(d); err != nil {
			p.add(key, "%q is not a domain: %v", d, err)
			firstValid = firstValid && i != 0
			continue
		}
		d = normalJID(d)
		x.Domains[i] = d
		if j, dup := seen[d]; dup {
			p.add(key, "duplicate of xmpp.domains[%d] (%q)", j, d)
			continue
		}
		seen[d] = i
	}

	switch {
	case x.Pubsub != "":
		if err := checkDomainJID(x.Pubsub); err != nil {
			p.add("xmpp.pubsub", "%q is not a domain JID: %v", x.Pubsub, err)
		} else {
			x.Pubsub = normalJID(x.Pubsub)
		}
	case firstValid:
		x.Pubsub = "pubsub." + x.Domains[0]
	}

	positive("xmpp.dial_timeout", x.DialTimeout, p)
	positive("xmpp.keepalive_interval", x.KeepaliveInterval, p)
	positive("xmpp.keepalive_timeout", x.KeepaliveTimeout, p)
	positive("xmpp.request_timeout", x.RequestTimeout, p)
	if x.ReconnectMax.Duration < time.Second {
		p.add("xmpp.reconnect_max", "must be at least 1s, got %q", x.ReconnectMax)
	}
}

// validateAddresses checks xmpp.address: one host:port (Addresses nil,
// from a string), then Addresses becomes [Address]; or an array of them,
// one per cluster node, each checked under its index, then Address is the
// first.
func validateAddresses(x *XMPP, p *problems) {
	if x.Addresses == nil {
		if err := checkHostPort(x.Address, true, 1); err != nil {
			p.add("xmpp.address", "%q is not host:port: %v", x.Address, err)
		}
		x.Addresses = []string{x.Address}
		return
	}
	switch n := len(x.Addresses); {
	case n == 0:
		p.add("xmpp.address", `required: "host:port", or an array of them (one per cluster node)`)
	case n > MaxAddresses:
		p.add("xmpp.address", "at most %d addresses (one per cluster node), got %d", MaxAddresses, n)
	}
	seen := make(map[string]int, len(x.Addresses))
	for i, a := range x.Addresses {
		key := fmt.Sprintf("xmpp.address[%d]", i)
		if err := checkHostPort(a, true, 1); err != nil {
			p.add(key, "%q is not host:port: %v", a, err)
			continue
		}
		norm := strings.ToLower(a) // host names are case-insensitive
		if j, dup := seen[norm]; dup {
			p.add(key, "duplicate of xmpp.address[%d] (%q)", j, x.Addresses[j])
			continue
		}
		seen[norm] = i
	}
	x.Address = ""
	if len(x.Addresses) > 0 {
		x.Address = x.Addresses[0]
	}
}

func validateNodes(n *Nodes, p *problems) {
	names := []struct{ key, value string }{
		{"nodes.live", n.Live},
		{"nodes.actual", n.Actual},
		{"nodes.status", n.Status},
	}
	for i, a := range names {
		if a.value == "" {
			p.add(a.key, "must not be empty")
			continue
		}
		for _, b := range names[:i] {
			if a.value == b.value {
				p.add(a.key, "same node as %s (%q); the three node names must differ", b.key, a.value)
				break
			}
		}
	}

	switch n.AccessModel {
	case AccessWhitelist, AccessOpen:
	default:
		p.add("nodes.access_model", `must be "whitelist" or "open", got %q`, n.AccessModel)
	}

	seen := make(map[string]int, len(n.Readers))
	for i, r := range n.Readers {
		key := fmt.Sprintf("nodes.readers[%d]", i)
		if err := checkBareJID(r); err != nil {
			p.add(key, "%q is not a bare JID (local@domain): %v", r, err)
			continue
		}
		j, err := xmpp.ParseJID(r)
		if err != nil {
			p.add(key, "%q is not a bare JID (local@domain): %v", r, err)
			continue
		}
		r = j.Bare()
		n.Readers[i] = r
		if j, dup := seen[r]; dup {
			p.add(key, "duplicate of nodes.readers[%d] (%q)", j, r)
			continue
		}
		seen[r] = i
	}
}

func validateSync(s *Sync, p *problems) {
	if d := s.ReconcileInterval.Duration; d != 0 && d < time.Second {
		p.add("sync.reconcile_interval", `must be "0" (off) or at least 1s, got %q`, s.ReconcileInterval)
	}
	if c := s.AdminConcurrency; c < 1 || c > 1024 {
		p.add("sync.admin_concurrency", "must be from 1 to 1024, got %d", c)
	}
	positive("sync.init_timeout", s.InitTimeout, p)
	if s.ProbeGrace.Duration < 0 {
		p.add("sync.probe_grace", "must not be negative, got %q", s.ProbeGrace)
	}
}

func validateTracking(t *Tracking, p *problems) {
	switch t.Mode {
	case TrackAuto, TrackPrivileged, TrackRoster:
	default:
		p.add("tracking.mode", `must be "auto", "privileged" or "roster"; got %q`, t.Mode)
	}
	if d := t.SessionsPoll.Duration; d != 0 && d < time.Second {
		p.add("tracking.sessions_poll", `must be "0" (off) or at least 1s, got %q`, t.SessionsPoll)
	}
	seen := make(map[string]int)
	for i, e := range t.Exclude {
		key := fmt.Sprintf("tracking.exclude[%d]", i)
		if domain, ok := strings.CutPrefix(e, "*@"); ok {
			if err := checkDomain(domain); err != nil {
				p.add(key, "%q is not \"*@\" and a domain: %v", e, err)
				continue
			}
		} else if err := checkBareJID(e); err != nil {
			p.add(key, `%q is not a bare JID or "*@domain": %v`, e, err)
			continue
		}
		e = strings.ToLower(e)
		if strings.HasPrefix(e, "*@") {
			e = "*@" + normalJID(e[2:])
		} else {
			e = normalJID(e)
		}
		t.Exclude[i] = e
		if j, ok := seen[e]; ok {
			p.add(key, "duplicate of tracking.exclude[%d] (%q)", j, e)
			continue
		}
		seen[e] = i
	}
}

// checkAPIURL checks an http or https URL with a host.
func checkAPIURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("does not parse")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("scheme must be http or https")
	}
	if u.Host == "" {
		return errors.New("missing host")
	}
	return nil
}

// redactURL hides a password in s, when s parses as a URL.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return "(unparsable URL)"
}

func positive(key string, d Duration, p *problems) {
	if d.Duration <= 0 {
		p.add(key, "must be greater than 0, got %q", d)
	}
}

// checkHostPort checks that s is host:port with a numeric port of at least
// minPort. The host may be empty only when needHost is false (":9273"
// listens on every address).
func checkHostPort(s string, needHost bool, minPort int) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return errors.New(ae.Err)
		}
		return err
	}
	if needHost && host == "" {
		return errors.New("missing host")
	}
	if strings.ContainsFunc(host, unicode.IsSpace) {
		return errors.New("host contains whitespace")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < minPort || n > 65535 || strings.TrimLeft(port, "0123456789") != "" {
		return fmt.Errorf("port must be a number from %d to 65535", minPort)
	}
	return nil
}

// checkDomain checks a domainpart, simply and strictly: labels of ASCII
// letters, digits and '-', separated by single dots, at most 1023 bytes.
func checkDomain(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if len(s) > maxJIDPart {
		return fmt.Errorf("longer than %d bytes", maxJIDPart)
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" {
			return errors.New("empty label")
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("character %q not allowed (letters, digits, '-' and '.' only)", r)
			}
		}
	}
	return nil
}

// normalJID returns s normalised as the core normalises every JID
// (xmpp.ParseJID): s has passed checkDomain or checkDomainJID, so it
// parses.
func normalJID(s string) string {
	if j, err := xmpp.ParseJID(s); err == nil {
		return j.Full()
	}
	return s
}

// checkDomainJID checks a JID that is only a domain: no localpart, no
// resource.
func checkDomainJID(s string) error {
	if strings.Contains(s, "@") {
		return errors.New("contains '@' (a domain JID has no localpart)")
	}
	if strings.Contains(s, "/") {
		return errors.New("contains '/' (a domain JID has no resource)")
	}
	return checkDomain(s)
}

// checkBareJID checks a local@domain JID without a resource.
func checkBareJID(s string) error {
	if strings.Contains(s, "/") {
		return errors.New("contains '/' (a bare JID has no resource)")
	}
	local, domain, ok := strings.Cut(s, "@")
	if !ok {
		return errors.New("no '@'")
	}
	if local == "" {
		return errors.New("empty localpart")
	}
	if len(local) > maxJIDPart {
		return fmt.Errorf("localpart longer than %d bytes", maxJIDPart)
	}
	if !utf8.ValidString(local) {
		return errors.New("localpart is not valid UTF-8")
	}
	for _, r := range local {
		if unicode.IsSpace(r) || unicode.IsControl(r) || strings.ContainsRune(`"&'/:<>@`, r) {
			return fmt.Errorf("character %q not allowed in the localpart", r)
		}
	}
	if err := checkDomain(domain); err != nil {
		return fmt.Errorf("domainpart: %w", err)
	}
	return nil
}

func validateHTTP(h *HTTP, p *problems) {
	if h.Listen != "" {
		if err := checkHostPort(h.Listen, false, 0); err != nil {
			p.add("http.listen", `%q is not host:port (or "" to turn it off): %v`, h.Listen, err)
		}
	}
	if h.TokensFile != "" && h.Listen == "" {
		p.add("http.tokens_file", `the API needs a listener: http.listen is ""`)
	}
	for i, o := range h.CORSOrigins {
		if err := checkOrigin(o); err != nil {
			p.add(fmt.Sprintf("http.cors_origins[%d]", i), "%q is not an origin like \"https://dash.example.org\": %v", o, err)
		}
	}
	if h.MaxStreams < 1 || h.MaxStreams > 1000000 {
		p.add("http.max_streams", "must be 1…1000000, got %d", h.MaxStreams)
	}
	if h.ResumeEvents < 1 || h.ResumeEvents > 10000000 {
		p.add("http.resume_events", "must be 1…10000000, got %d", h.ResumeEvents)
	}
}

// checkOrigin reports whether o is a web origin as browsers send it:
// scheme "http" or "https", a host, an optional port, nothing else.
func checkOrigin(o string) error {
	u, err := url.Parse(o)
	if err != nil {
		return err
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New("scheme must be http or https")
	case u.Host == "" || u.Hostname() == "":
		return errors.New("no host")
	case u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(o, "/"):
		return errors.New("an origin has no user, path, query or trailing slash")
	case strings.ToLower(o) != o:
		return errors.New("write it in lower case, as browsers send it")
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port %q", port)
		}
	}
	return nil
}
