// Package config reads, defaults and validates the pubpresence TOML
// configuration file.
//
// Parse checks everything at load time and reports every problem it finds,
// one line per problem, each starting with the dotted key it is about
// ("xmpp.secret: required (or set PUBPRESENCE_XMPP_SECRET)"). Unknown keys
// are problems too, so a misspelt key never silently falls back to a default.
//
// Values are kept as written, with one exception: JIDs are normalised as
// everywhere in pubpresence (internal/xmpp's ParseJID): xmpp.domains,
// xmpp.component, xmpp.pubsub and every nodes.readers JID are lower-cased,
// localparts included (servers compare them case-insensitively too).
// Duplicates in xmpp.domains and nodes.readers are detected after that
// normalisation.
package config

import (
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
)

// EnvSecret is the environment variable that, when set and non-empty,
// overrides xmpp.secret.
const EnvSecret = "PUBPRESENCE_XMPP_SECRET"

// Access models accepted for nodes.access_model.
const (
	AccessWhitelist = "whitelist"
	AccessOpen      = "open"
)

// Duration is a time.Duration read from a TOML string ("30s", "5m", "0").
type Duration struct{ time.Duration }

// UnmarshalText parses a duration in time.ParseDuration syntax.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := time.ParseDuration(string(text))
	if err != nil {
		return fmt.Errorf(`invalid duration %q (want a number with a unit, e.g. "500ms", "30s", "5m", "1h")`, text)
	}
	d.Duration = v
	return nil
}

// MarshalText formats the duration as time.Duration.String does ("5m0s").
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(d.Duration.String()), nil
}

// Config is the whole configuration file.
type Config struct {
	XMPP     XMPP     `toml:"xmpp"`
	Nodes    Nodes    `toml:"nodes"`
	Sync     Sync     `toml:"sync"`
	Tracking Tracking `toml:"tracking"`
	Ejabberd Ejabberd `toml:"ejabberd"`
	HTTP     HTTP     `toml:"http"`
	Log      Log      `toml:"log"`
}

// MaxAddresses is the most component addresses xmpp.address takes: one
// per node of a cluster.
const MaxAddresses = 16

// XMPP is the [xmpp] section: how to reach and authenticate with the server.
type XMPP struct {
	// Address is the server's component listener, host:port; default
	// "127.0.0.1:5347". In the file, xmpp.address is this string or an
	// array of them, one per node of a cluster (at most MaxAddresses, no
	// duplicates): then Address is the first, and Addresses all of them.
	Address string `toml:"address"`
	// Addresses are every address of xmpp.address, in order: Parse sets
	// it from either form ([Address] for a string). A Config made by
	// hand may leave it nil; AddressList reads both.
	Addresses         []string `toml:"-" key:"address"`
	Component         string   `toml:"component"`          // required; a domain JID (no '@', no '/')
	Secret            string   `toml:"secret"`             // required unless PUBPRESENCE_XMPP_SECRET is set (env wins)
	Domains           []string `toml:"domains"`            // required, ≥1, valid domains, no duplicates
	Pubsub            string   `toml:"pubsub"`             // default "pubsub." + Domains[0]
	DialTimeout       Duration `toml:"dial_timeout"`       // default 10s; > 0; dial + handshake bound
	KeepaliveInterval Duration `toml:"keepalive_interval"` // default 30s; > 0; XEP-0199 ping period
	KeepaliveTimeout  Duration `toml:"keepalive_timeout"`  // default 10s; > 0; nothing read this long after a ping = dead peer
	RequestTimeout    Duration `toml:"request_timeout"`    // default 30s; > 0; silence that fails an IQ (up to 10× while the server answers others)
	ReconnectMax      Duration `toml:"reconnect_max"`      // default 60s; >= 1s; cap of the reconnect backoff
}

// AddressList returns the component addresses to connect to: Addresses,
// or only Address when Addresses is empty or does not start with it (a
// Config made or changed by hand).
func (x *XMPP) AddressList() []string {
	if len(x.Addresses) == 0 || x.Addresses[0] != x.Address {
		return []string{x.Address}
	}
	return slices.Clone(x.Addresses)
}

// Nodes is the [nodes] section: the three pubsub nodes and who may read them.
type Nodes struct {
	Live        string   `toml:"live"`         // default "presence/live"
	Actual      string   `toml:"actual"`       // default "presence/actual"
	Status      string   `toml:"status"`       // default "presence/status"; the three non-empty and distinct
	AccessModel string   `toml:"access_model"` // "whitelist" (default) or "open"
	Readers     []string `toml:"readers"`      // bare JIDs, affiliated as members when whitelist
	PublishIP   bool     `toml:"publish_ip"`   // default true
}

// Sync is the [sync] section: discovery and reconciliation of online users.
type Sync struct {
	ReconcileInterval Duration `toml:"reconcile_interval"` // default 5m; 0 turns it off; else >= 1s
	AdminConcurrency  int      `toml:"admin_concurrency"`  // default 32; 1..1024
	InitTimeout       Duration `toml:"init_timeout"`       // default 30s; > 0
	ProbeGrace        Duration `toml:"probe_grace"`        // default 2s; >= 0; quiet time after the last probe answer
	// PurgeStale: at a start, purge the actual node in one request when
	// most of it is to be retracted (docs/operations.md, "A start that
	// finds the node stale"). Default false.
	PurgeStale bool `toml:"purge_stale"`
}

// Tracking modes accepted for tracking.mode.
const (
	TrackAuto       = "auto"       // privileged presence when the server grants it, else roster
	TrackPrivileged = "privileged" // require the grant (XEP-0356)
	TrackRoster     = "roster"     // ignore any grant: only users with the component in their roster
)

// Tracking is the [tracking] section: how presence reaches the service and
// whose is kept.
type Tracking struct {
	Mode string `toml:"mode"` // "auto" (default), "privileged" or "roster"
	// Exclude lists bare JIDs ("alice@example.org") and whole domains
	// ("*@example.org") never tracked, published, logged or counted by
	// name; lower-cased like every JID.
	Exclude []string `toml:"exclude"`
	// SessionsPoll is how often the server's session list is read while
	// presence is privileged (the server may report no end of a session),
	// or while a stream of several is down (a cluster node's users may be
	// gone without a word); default 10s; 0 turns it off; else >= 1s.
	SessionsPoll Duration `toml:"sessions_poll"`
}

// Ejabberd is the [ejabberd] section: what only ejabberd offers.
type Ejabberd struct {
	// APIURL is the base URL of ejabberd's HTTP API (mod_http_api), e.g.
	// "http://127.0.0.1:5280/api": connected_users_info tells the show,
	// text and priority of sessions that were online before the service
	// connected. "" (default): not used.
	APIURL string `toml:"api_url"`
}

// HTTP is the [http] section: the listener of the metrics, health, and
// the HTTP face (the API and the page; docs/http.md).
type HTTP struct {
	Listen string `toml:"listen"` // default "127.0.0.1:9273"; "" turns it off; else host:port
	// TokensFile holds the API's bearer tokens, one per line, "NAME TOKEN"
	// or "TOKEN"; read again on SIGHUP. "" (default) leaves the API and the
	// page off.
	TokensFile string `toml:"tokens_file"`
	// CORSOrigins are the browser origins ("https://dash.example.org")
	// allowed to call the API from their pages; default none.
	CORSOrigins []string `toml:"cors_origins"`
	MaxStreams  int      `toml:"max_streams"` // concurrent event streams; default 1000
	// ResumeEvents is how many recent changes are kept for event streams
	// that reconnect with Last-Event-ID; default 10000.
	ResumeEvents int `toml:"resume_events"`
}

// Log is the [log] section.
type Log struct {
	Level  string `toml:"level"`  // debug|info|warn|error, default info
	Format string `toml:"format"` // json (default) | console
}

// Default returns the configuration with every default filled in. Component,
// Secret and Domains are empty, and Pubsub is empty because its default
// depends on Domains.
func Default() Config {
	return Config{
		XMPP: XMPP{
			Address:           "127.0.0.1:5347",
			DialTimeout:       Duration{10 * time.Second},
			KeepaliveInterval: Duration{30 * time.Second},
			KeepaliveTimeout:  Duration{10 * time.Second},
			RequestTimeout:    Duration{30 * time.Second},
			ReconnectMax:      Duration{60 * time.Second},
		},
		Nodes: Nodes{
			Live:        "presence/live",
			Actual:      "presence/actual",
			Status:      "presence/status",
			AccessModel: AccessWhitelist,
			PublishIP:   true,
		},
		Sync: Sync{
			ReconcileInterval: Duration{5 * time.Minute},
			AdminConcurrency:  32,
			InitTimeout:       Duration{30 * time.Second},
			ProbeGrace:        Duration{2 * time.Second},
		},
		Tracking: Tracking{Mode: TrackAuto, Exclude: []string{}, SessionsPoll: Duration{10 * time.Second}},
		HTTP:     HTTP{Listen: "127.0.0.1:9273", CORSOrigins: []string{}, MaxStreams: 1000, ResumeEvents: 10000},
		Log:      Log{Level: "info", Format: "json"},
	}
}

// Error is returned by Parse and Load when the configuration is invalid. It
// lists every problem found, one per line, each starting with the dotted key
// it is about.
type Error struct{ Problems []string }

// Error returns the problems joined by newlines.
func (e *Error) Error() string { return strings.Join(e.Problems, "\n") }

// Parse reads TOML data, applies the defaults and the environment (getenv
// may be os.Getenv; nil means an empty environment) and validates the result.
// An invalid configuration yields a nil Config and an *Error.
func Parse(data []byte, getenv func(string) string) (*Config, error) {
	cfg := Default()
	p := newProblems()
	if !decode(data, &cfg, p) {
		return nil, &Error{Problems: p.lines}
	}
	if getenv != nil {
		if s := getenv(EnvSecret); s != "" {
			cfg.XMPP.Secret = s
		}
	}
	validate(&cfg, p)
	if len(p.lines) > 0 {
		sortBySection(p.lines)
		return nil, &Error{Problems: p.lines}
	}
	return &cfg, nil
}

// Load reads the file at path and calls Parse with os.Getenv. A file that
// cannot be read is an error naming the path; an invalid one is an *Error.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(data, os.Getenv)
}

// Redacted returns a copy safe to log: the secret is replaced by "***" if
// set, and slices are copied so the result shares nothing with c.
func (c Config) Redacted() Config {
	if c.XMPP.Secret != "" {
		c.XMPP.Secret = "***"
	}
	c.XMPP.Addresses = slices.Clone(c.XMPP.Addresses)
	c.XMPP.Domains = slices.Clone(c.XMPP.Domains)
	c.Nodes.Readers = slices.Clone(c.Nodes.Readers)
	c.Tracking.Exclude = slices.Clone(c.Tracking.Exclude)
	if u, err := url.Parse(c.Ejabberd.APIURL); err == nil && u.User != nil {
		c.Ejabberd.APIURL = u.Redacted()
	}
	return c
}
