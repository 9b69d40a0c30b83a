package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// noEnv is a getenv for an empty environment.
func noEnv(string) string { return "" }

// envWith returns a getenv that knows only key=value.
func envWith(key, value string) func(string) string {
	return func(k string) string {
		if k == key {
			return value
		}
		return ""
	}
}

// problemsOf returns the problem lines of err, failing the test if err is
// not an *Error.
func problemsOf(t *testing.T, err error) []string {
	t.Helper()
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *config.Error", err, err)
	}
	return ce.Problems
}

func TestBadFiles(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"missing-component.toml", []string{`xmpp.component: required`}},
		{"missing-secret.toml", []string{`xmpp.secret: required (or set PUBPRESENCE_XMPP_SECRET)`}},
		{"bad-address-no-port.toml", []string{`xmpp.address: "127.0.0.1" is not host:port: missing port in address`}},
		{"bad-address-port.toml", []string{`xmpp.address: "127.0.0.1:70000" is not host:port: port must be a number from 1 to 65535`}},
		{"bad-address-list.toml", []string{
			`xmpp.address[1]: "node2.example.org" is not host:port: missing port in address`,
			`xmpp.address[2]: duplicate of xmpp.address[0] ("node1.example.org:5347")`,
		}},
		{"address-list-too-long.toml", []string{`xmpp.address: at most 16 addresses (one per cluster node), got 17`}},
		{"empty-domains.toml", []string{`xmpp.domains: required (at least one domain)`}},
		{"missing-domains.toml", []string{`xmpp.domains: required (at least one domain)`}},
		{"bad-domain.toml", []string{`xmpp.domains[0]: "example..org" is not a domain: empty label`}},
		{"duplicate-domain.toml", []string{`xmpp.domains[1]: duplicate of xmpp.domains[0] ("example.org")`}},
		{"component-with-at.toml", []string{`xmpp.component: "pubpresence@example.org" is not a domain JID: contains '@' (a domain JID has no localpart)`}},
		{"component-with-resource.toml", []string{`xmpp.component: "pubpresence.example.org/x" is not a domain JID: contains '/' (a domain JID has no resource)`}},
		{"bad-pubsub.toml", []string{`xmpp.pubsub: "pubsub@example.org" is not a domain JID: contains '@' (a domain JID has no localpart)`}},
		{"bad-duration.toml", []string{`xmpp.dial_timeout: invalid duration "10 seconds" (want a number with a unit, e.g. "500ms", "30s", "5m", "1h")`}},
		{"duration-as-integer.toml", []string{`xmpp.keepalive_interval: must be a duration string such as "30s", not an integer`}},
		{"zero-keepalive-timeout.toml", []string{`xmpp.keepalive_timeout: must be greater than 0, got "0s"`}},
		{"reconnect-max-too-short.toml", []string{`xmpp.reconnect_max: must be at least 1s, got "500ms"`}},
		{"bad-access-model.toml", []string{`nodes.access_model: must be "whitelist" or "open", got "public"`}},
		{"bad-reader-jid.toml", []string{`nodes.readers[0]: "monitor" is not a bare JID (local@domain): no '@'`}},
		{"reader-with-resource.toml", []string{`nodes.readers[0]: "monitor@example.org/laptop" is not a bare JID (local@domain): contains '/' (a bare JID has no resource)`}},
		{"reader-bad-localpart.toml", []string{`nodes.readers[0]: "mon itor@example.org" is not a bare JID (local@domain): character ' ' not allowed in the localpart`}},
		{"duplicate-reader.toml", []string{`nodes.readers[1]: duplicate of nodes.readers[0] ("monitor@example.org")`}},
		{"readers-not-strings.toml", []string{`nodes.readers: must be an array of strings`}},
		{"duplicate-node-names.toml", []string{`nodes.actual: same node as nodes.live ("presence"); the three node names must differ`}},
		{"empty-node-name.toml", []string{`nodes.status: must not be empty`}},
		{"publish-ip-string.toml", []string{`nodes.publish_ip: must be true or false, not a string`}},
		{"unknown-key.toml", []string{`nodes.acess_model: unknown key (did you mean nodes.access_model?)`}},
		{"unknown-section.toml", []string{`metrics: unknown table`}},
		{"section-not-table.toml", []string{`log: must be a table, not a string`}},
		{"negative-init-timeout.toml", []string{`sync.init_timeout: must be greater than 0, got "-5s"`}},
		{"negative-probe-grace.toml", []string{`sync.probe_grace: must not be negative, got "-1s"`}},
		{"reconcile-too-short.toml", []string{`sync.reconcile_interval: must be "0" (off) or at least 1s, got "500ms"`}},
		{"admin-concurrency-zero.toml", []string{`sync.admin_concurrency: must be from 1 to 1024, got 0`}},
		{"admin-concurrency-too-high.toml", []string{`sync.admin_concurrency: must be from 1 to 1024, got 5000`}},
		{"wrong-type.toml", []string{`sync.admin_concurrency: must be an integer, not a string`}},
		{"bad-tracking-mode.toml", []string{`tracking.mode: must be "auto", "privileged" or "roster"; got "everyone"`}},
		{"sessions-poll-too-short.toml", []string{`tracking.sessions_poll: must be "0" (off) or at least 1s, got "100ms"`}},
		{"bad-exclude.toml", []string{
			`tracking.exclude[0]: "alice" is not a bare JID or "*@domain": no '@'`,
			`tracking.exclude[1]: "*@bad domain" is not "*@" and a domain: character ' ' not allowed (letters, digits, '-' and '.' only)`,
			`tracking.exclude[3]: duplicate of tracking.exclude[2] ("bob@example.org")`,
		}},
		{"bad-api-url.toml", []string{`ejabberd.api_url: "ftp://admin:xxxxx@127.0.0.1/api" is not an http(s) URL (or "" to leave it off): scheme must be http or https`}},
		{"bad-listen.toml", []string{`http.listen: "9273" is not host:port (or "" to turn it off): missing port in address`}},
		{"bad-cors-origins.toml", []string{
			`http.cors_origins[1]: "https://Dash.example.org/" is not an origin like "https://dash.example.org": an origin has no user, path, query or trailing slash`,
			`http.cors_origins[2]: "*" is not an origin like "https://dash.example.org": scheme must be http or https`}},
		{"bad-http-api.toml", []string{
			`http.tokens_file: the API needs a listener: http.listen is ""`,
			`http.max_streams: must be 1…1000000, got 0`,
			`http.resume_events: must be 1…10000000, got -1`}},
		{"bad-log-level.toml", []string{`log.level: must be one of debug, info, warn, error; got "verbose"`}},
		{"bad-log-format.toml", []string{`log.format: must be "json" or "console", got "text"`}},
		{"syntax-error.toml", []string{`syntax error at line 3, column 17: strings cannot contain newlines`}},
		{"several-mistakes.toml", []string{
			`xmpp.address: "localhost" is not host:port: missing port in address`,
			`xmpp.component: "pubpresence@example.org" is not a domain JID: contains '@' (a domain JID has no localpart)`,
			`xmpp.secret: required (or set PUBPRESENCE_XMPP_SECRET)`,
			`xmpp.domains: required (at least one domain)`,
			`nodes.acess_model: unknown key (did you mean nodes.access_model?)`,
			`nodes.access_model: must be "whitelist" or "open", got "public"`,
			`sync.admin_concurrency: must be an integer, not a string`,
			`sync.init_timeout: must be greater than 0, got "0s"`,
			`log.level: must be one of debug, info, warn, error; got "verbose"`,
		}},
	}

	covered := map[string]bool{"good.toml": true}
	for _, tt := range tests {
		covered[tt.file] = true
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := Parse(data, noEnv)
			if err == nil {
				t.Fatalf("Parse succeeded, want problems %q; got %+v", tt.want, cfg)
			}
			if cfg != nil {
				t.Errorf("Parse returned a config with an error")
			}
			if got := problemsOf(t, err); !slices.Equal(got, tt.want) {
				t.Errorf("problems:\n got %q\nwant %q", got, tt.want)
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("Error() = %q, want %q", got, want)
			}
		})
	}

	// Every file in testdata is checked, so none is forgotten.
	files, err := filepath.Glob(filepath.Join("testdata", "*.toml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !covered[filepath.Base(f)] {
			t.Errorf("%s has no entry in the table", f)
		}
	}
}

func TestGoodFile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "good.toml"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(data, noEnv)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := Default()
	want.XMPP.Address = "[::1]:15347"
	want.XMPP.Addresses = []string{"[::1]:15347"}
	want.XMPP.Component = "pubpresence.example.org" // lower-cased
	want.XMPP.Secret = "s3cret"
	want.XMPP.Domains = []string{"example.org", "example.net"} // lower-cased
	want.XMPP.Pubsub = "pubsub.example.org"                    // from the first domain
	want.XMPP.ReconnectMax = Duration{2 * time.Minute}
	want.Nodes.AccessModel = AccessOpen
	want.Nodes.Readers = []string{"monitor@example.org", "ops@example.net"} // normalised, localpart too
	want.Sync.ReconcileInterval = Duration{0}
	want.Sync.ProbeGrace = Duration{0}
	want.HTTP.Listen = ":9273"
	want.Log = Log{Level: "debug", Format: "console"}
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("Parse(good.toml):\n got %+v\nwant %+v", *got, want)
	}
}

// minimal is the smallest valid file.
const minimal = `
[xmpp]
component = "pubpresence.example.org"
secret = "s3cret"
domains = ["example.org", "example.net"]
`

func TestDefaults(t *testing.T) {
	cfg, err := Parse([]byte(minimal), noEnv)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if !cfg.Nodes.PublishIP {
		t.Error("absent publish_ip: got false, want true")
	}
	if cfg.XMPP.Pubsub != "pubsub.example.org" {
		t.Errorf("absent pubsub: got %q, want pubsub.example.org", cfg.XMPP.Pubsub)
	}
	want := Default()
	want.XMPP.Addresses = []string{"127.0.0.1:5347"}
	want.XMPP.Component = "pubpresence.example.org"
	want.XMPP.Secret = "s3cret"
	want.XMPP.Domains = []string{"example.org", "example.net"}
	want.XMPP.Pubsub = "pubsub.example.org"
	if !reflect.DeepEqual(*cfg, want) {
		t.Errorf("minimal file:\n got %+v\nwant %+v", *cfg, want)
	}
}

func TestDefaultValues(t *testing.T) {
	d := Default()
	checks := []struct {
		name      string
		got, want any
	}{
		{"xmpp.address", d.XMPP.Address, "127.0.0.1:5347"},
		{"xmpp.dial_timeout", d.XMPP.DialTimeout.Duration, 10 * time.Second},
		{"xmpp.keepalive_interval", d.XMPP.KeepaliveInterval.Duration, 30 * time.Second},
		{"xmpp.keepalive_timeout", d.XMPP.KeepaliveTimeout.Duration, 10 * time.Second},
		{"xmpp.request_timeout", d.XMPP.RequestTimeout.Duration, 30 * time.Second},
		{"xmpp.reconnect_max", d.XMPP.ReconnectMax.Duration, 60 * time.Second},
		{"nodes.live", d.Nodes.Live, "presence/live"},
		{"nodes.actual", d.Nodes.Actual, "presence/actual"},
		{"nodes.status", d.Nodes.Status, "presence/status"},
		{"nodes.access_model", d.Nodes.AccessModel, "whitelist"},
		{"nodes.publish_ip", d.Nodes.PublishIP, true},
		{"sync.reconcile_interval", d.Sync.ReconcileInterval.Duration, 5 * time.Minute},
		{"sync.admin_concurrency", d.Sync.AdminConcurrency, 32},
		{"sync.init_timeout", d.Sync.InitTimeout.Duration, 30 * time.Second},
		{"sync.probe_grace", d.Sync.ProbeGrace.Duration, 2 * time.Second},
		{"sync.purge_stale", d.Sync.PurgeStale, false},
		{"tracking.mode", d.Tracking.Mode, "auto"},
		{"tracking.sessions_poll", d.Tracking.SessionsPoll.Duration, 10 * time.Second},
		{"ejabberd.api_url", d.Ejabberd.APIURL, ""},
		{"http.listen", d.HTTP.Listen, "127.0.0.1:9273"},
		{"log.level", d.Log.Level, "info"},
		{"log.format", d.Log.Format, "json"},
		{"xmpp.component", d.XMPP.Component, ""},
		{"xmpp.secret", d.XMPP.Secret, ""},
		{"xmpp.pubsub", d.XMPP.Pubsub, ""},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("Default() %s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if len(d.XMPP.Domains) != 0 {
		t.Errorf("Default() xmpp.domains = %q, want empty", d.XMPP.Domains)
	}
}

func TestValues(t *testing.T) {
	tests := []struct {
		name  string
		extra string // appended to minimal
		check func(*Config) bool
	}{
		{"publish_ip false", "[nodes]\npublish_ip = false\n", func(c *Config) bool { return !c.Nodes.PublishIP }},
		{"publish_ip true", "[nodes]\npublish_ip = true\n", func(c *Config) bool { return c.Nodes.PublishIP }},
		{"reconcile off", "[sync]\nreconcile_interval = \"0\"\n", func(c *Config) bool { return c.Sync.ReconcileInterval.Duration == 0 }},
		{"reconcile 1s", "[sync]\nreconcile_interval = \"1s\"\n", func(c *Config) bool { return c.Sync.ReconcileInterval.Duration == time.Second }},
		{"http off", "[http]\nlisten = \"\"\n", func(c *Config) bool { return c.HTTP.Listen == "" }},
		{"listen port 0", "[http]\nlisten = \"127.0.0.1:0\"\n", func(c *Config) bool { return c.HTTP.Listen == "127.0.0.1:0" }},
		{"empty pubsub is the default", "pubsub = \"\"\n", func(c *Config) bool { return c.XMPP.Pubsub == "pubsub.example.org" }},
		{"pubsub lower-cased", "pubsub = \"PubSub.Example.org\"\n", func(c *Config) bool { return c.XMPP.Pubsub == "pubsub.example.org" }},
		{"admin_concurrency 1024", "[sync]\nadmin_concurrency = 1024\n", func(c *Config) bool { return c.Sync.AdminConcurrency == 1024 }},
		{"probe_grace 0", "[sync]\nprobe_grace = \"0\"\n", func(c *Config) bool { return c.Sync.ProbeGrace.Duration == 0 }},
		{"purge_stale", "[sync]\npurge_stale = true\n", func(c *Config) bool { return c.Sync.PurgeStale }},
		{"reconnect_max 1s", "reconnect_max = \"1s\"\n", func(c *Config) bool { return c.XMPP.ReconnectMax.Duration == time.Second }},
		{"reader with utf-8 localpart", "[nodes]\nreaders = [\"jürgen@example.org\"]\n", func(c *Config) bool { return c.Nodes.Readers[0] == "jürgen@example.org" }},
		{"no readers", "[nodes]\nreaders = []\n", func(c *Config) bool { return len(c.Nodes.Readers) == 0 }},
		{"tracking roster", "[tracking]\nmode = \"roster\"\n", func(c *Config) bool { return c.Tracking.Mode == TrackRoster }},
		{"sessions_poll off", "[tracking]\nsessions_poll = \"0\"\n", func(c *Config) bool { return c.Tracking.SessionsPoll.Duration == 0 }},
		{"exclude lower-cased", "[tracking]\nexclude = [\"Alice@Example.ORG\", \"*@Other.Example.org\"]\n", func(c *Config) bool {
			return slices.Equal(c.Tracking.Exclude, []string{"alice@example.org", "*@other.example.org"})
		}},
		{"api_url", "[ejabberd]\napi_url = \"http://127.0.0.1:5280/api\"\n", func(c *Config) bool { return c.Ejabberd.APIURL == "http://127.0.0.1:5280/api" }},
		{"address as a string", "address = \"xmpp.example.org:5347\"\n", func(c *Config) bool {
			return c.XMPP.Address == "xmpp.example.org:5347" && slices.Equal(c.XMPP.Addresses, []string{"xmpp.example.org:5347"})
		}},
		{"address as an array", "address = [\"node1.example.org:5347\", \"[::1]:5348\"]\n", func(c *Config) bool {
			return c.XMPP.Address == "node1.example.org:5347" &&
				slices.Equal(c.XMPP.Addresses, []string{"node1.example.org:5347", "[::1]:5348"}) &&
				slices.Equal(c.XMPP.AddressList(), c.XMPP.Addresses)
		}},
		{"address as an array of one", "address = [\"node1.example.org:5347\"]\n", func(c *Config) bool {
			return c.XMPP.Address == "node1.example.org:5347" && slices.Equal(c.XMPP.Addresses, []string{"node1.example.org:5347"})
		}},
		{"16 addresses", "address = [" + addressList(16) + "]\n", func(c *Config) bool {
			return len(c.XMPP.Addresses) == 16
		}},
		{"domain with hyphen and digits", "pubsub = \"ps-1.example.org\"\n", func(c *Config) bool { return c.XMPP.Pubsub == "ps-1.example.org" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(minimal+tt.extra), noEnv)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !tt.check(cfg) {
				t.Errorf("unexpected config %+v", *cfg)
			}
		})
	}
}

// TestShapes checks TOML that is valid but shaped unusually.
func TestShapes(t *testing.T) {
	tests := []struct {
		name string
		data string
		want []string // nil: valid
	}{
		{"inline table section", `xmpp = { component = "c.example.org", secret = "s", domains = ["example.org"] }`, nil},
		{"dotted keys", "xmpp.component = \"c.example.org\"\nxmpp.secret = \"s\"\nxmpp.domains = [\"example.org\"]\n", nil},
		{"array of tables section", minimal + "[[log]]\nlevel = \"info\"\n", []string{"log: must be a table, not an array of tables"}},
		{"table under a value", minimal + "[http.listen]\nport = 1\n", []string{"http.listen: must be a string, not a table"}},
		{"unknown table in a section", minimal + "[nodes.extra]\nx = 1\n", []string{"nodes.extra: unknown table"}},
		{"key case matters", minimal + "[log]\nLevel = \"debug\"\n", []string{"log.Level: unknown key (did you mean log.level?)"}},
		{"unknown top-level key", "verbose = true\n" + minimal, []string{"verbose: unknown key"}},
		{"float for int", minimal + "[sync]\nadmin_concurrency = 1.5\n", []string{"sync.admin_concurrency: must be an integer, not a float"}},
		{"date for duration", minimal + "[sync]\ninit_timeout = 2026-01-01\n", []string{`sync.init_timeout: must be a duration string such as "30s", not a date/time`}},
		{"string for array", "[xmpp]\ncomponent = \"c.example.org\"\nsecret = \"s\"\ndomains = \"example.org\"\n", []string{"xmpp.domains: must be an array of strings, not a string"}},
		{"empty file", "", []string{"xmpp.component: required", "xmpp.secret: required (or set PUBPRESENCE_XMPP_SECRET)", "xmpp.domains: required (at least one domain)"}},
		{"domain too long", "[xmpp]\ncomponent = \"c.example.org\"\nsecret = \"s\"\ndomains = [\"" + strings.Repeat("a.", 512) + "org\"]\n",
			[]string{`xmpp.domains[0]: "` + strings.Repeat("a.", 512) + `org" is not a domain: longer than 1023 bytes`}},
		{"domain with underscore", "[xmpp]\ncomponent = \"c.example.org\"\nsecret = \"s\"\ndomains = [\"ex_ample.org\"]\n",
			[]string{`xmpp.domains[0]: "ex_ample.org" is not a domain: character '_' not allowed (letters, digits, '-' and '.' only)`}},
		{"bad first domain gives no pubsub problem", "[xmpp]\ncomponent = \"c.example.org\"\nsecret = \"s\"\ndomains = [\".org\"]\n",
			[]string{`xmpp.domains[0]: ".org" is not a domain: empty label`}},
		{"empty localpart", minimal + "[nodes]\nreaders = [\"@example.org\"]\n", []string{`nodes.readers[0]: "@example.org" is not a bare JID (local@domain): empty localpart`}},
		{"reader bad domain", minimal + "[nodes]\nreaders = [\"a@\"]\n", []string{`nodes.readers[0]: "a@" is not a bare JID (local@domain): domainpart: empty`}},
		{"reader quote", minimal + "[nodes]\nreaders = [\"a'b@example.org\"]\n", []string{`nodes.readers[0]: "a'b@example.org" is not a bare JID (local@domain): character '\'' not allowed in the localpart`}},
		{"address without host", minimal + "address = \":5347\"\n", []string{`xmpp.address: ":5347" is not host:port: missing host`}},
		{"address service name", minimal + "address = \"localhost:xmpp\"\n", []string{`xmpp.address: "localhost:xmpp" is not host:port: port must be a number from 1 to 65535`}},
		{"address port 0", minimal + "address = \"localhost:0\"\n", []string{`xmpp.address: "localhost:0" is not host:port: port must be a number from 1 to 65535`}},
		{"address empty array", minimal + "address = []\n", []string{`xmpp.address: required: "host:port", or an array of them (one per cluster node)`}},
		{"address integer", minimal + "address = 5347\n", []string{`xmpp.address: must be a string ("host:port") or an array of strings (one per cluster node), not an integer`}},
		{"address array of other types", minimal + "address = [\"a:1\", 2]\n", []string{`xmpp.address: must be a string ("host:port") or an array of strings (one per cluster node)`}},
		{"address table", minimal + "[xmpp.address]\nhost = \"a\"\n", []string{`xmpp.address: must be a string ("host:port") or an array of strings (one per cluster node), not a table`}},
		{"address element without host", minimal + "address = [\"a:1\", \":5347\"]\n", []string{`xmpp.address[1]: ":5347" is not host:port: missing host`}},
		{"all three node names equal", minimal + "[nodes]\nlive = \"n\"\nactual = \"n\"\nstatus = \"n\"\n", []string{
			`nodes.actual: same node as nodes.live ("n"); the three node names must differ`,
			`nodes.status: same node as nodes.live ("n"); the three node names must differ`,
		}},
		{"negative durations", minimal + "dial_timeout = \"-1s\"\nrequest_timeout = \"0\"\n", []string{
			`xmpp.dial_timeout: must be greater than 0, got "-1s"`,
			`xmpp.request_timeout: must be greater than 0, got "0s"`,
		}},
		{"wrongly typed component is not also required", "[xmpp]\ncomponent = 5\nsecret = \"s\"\ndomains = [\"example.org\"]\n",
			[]string{"xmpp.component: must be a string, not an integer"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.data), noEnv)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if cfg.XMPP.Component != "c.example.org" || cfg.XMPP.Pubsub != "pubsub.example.org" {
					t.Errorf("unexpected config %+v", *cfg)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse succeeded, want %q", tt.want)
			}
			if got := problemsOf(t, err); !slices.Equal(got, tt.want) {
				t.Errorf("problems:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// addressList returns n distinct host:port strings, quoted and separated
// by commas, for a TOML array.
func addressList(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "\"node%d.example.org:5347\"", i+1)
	}
	return b.String()
}

func TestAddressList(t *testing.T) {
	x := XMPP{Address: "a:1"}
	if got := x.AddressList(); !slices.Equal(got, []string{"a:1"}) {
		t.Errorf("Address only: %q", got)
	}
	x.Addresses = []string{"a:1", "b:2"}
	got := x.AddressList()
	if !slices.Equal(got, []string{"a:1", "b:2"}) {
		t.Errorf("Address and Addresses: %q", got)
	}
	got[0] = "changed"
	if x.Addresses[0] != "a:1" {
		t.Error("AddressList shares its slice with Addresses")
	}
	x.Address = "c:3" // changed by hand after Parse: Address wins
	if got := x.AddressList(); !slices.Equal(got, []string{"c:3"}) {
		t.Errorf("Address changed by hand: %q", got)
	}
}

func TestEnvSecret(t *testing.T) {
	noSecret := "[xmpp]\ncomponent = \"c.example.org\"\ndomains = [\"example.org\"]\n"
	withSecret := noSecret + "secret = \"from-file\"\n"
	tests := []struct {
		name   string
		data   string
		getenv func(string) string
		want   string // "" means a missing-secret error
	}{
		{"env fills", noSecret, envWith(EnvSecret, "from-env"), "from-env"},
		{"env overrides", withSecret, envWith(EnvSecret, "from-env"), "from-env"},
		{"empty env ignored", withSecret, envWith(EnvSecret, ""), "from-file"},
		{"other env ignored", withSecret, envWith("SECRET", "x"), "from-file"},
		{"nil getenv", withSecret, nil, "from-file"},
		{"neither", noSecret, noEnv, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.data), tt.getenv)
			if tt.want == "" {
				want := []string{"xmpp.secret: required (or set PUBPRESENCE_XMPP_SECRET)"}
				if got := problemsOf(t, err); !slices.Equal(got, want) {
					t.Errorf("problems %q, want %q", got, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if cfg.XMPP.Secret != tt.want {
				t.Errorf("secret = %q, want %q", cfg.XMPP.Secret, tt.want)
			}
		})
	}
}

const examplePath = "../config.example.toml"

func TestExampleParses(t *testing.T) {
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(data, noEnv)
	if err != nil {
		t.Fatalf("Parse(%s): %v", examplePath, err)
	}
	// The example shows every default; only the keys without a default
	// carry example values.
	want := Default()
	want.XMPP.Addresses = []string{"127.0.0.1:5347"}
	want.XMPP.Component = "pubpresence.example.org"
	want.XMPP.Secret = "change-me"
	want.XMPP.Domains = []string{"example.org"}
	want.XMPP.Pubsub = "pubsub.example.org"
	want.Nodes.Readers = []string{"monitor@example.org"}
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("%s does not show the defaults:\n got %+v\nwant %+v", examplePath, *got, want)
	}
}

// TestExampleHasEveryKey keeps config.example.toml from drifting: every key
// of Config must be set in it.
func TestExampleHasEveryKey(t *testing.T) {
	var raw map[string]any
	md, err := toml.DecodeFile(examplePath, &raw)
	if err != nil {
		t.Fatal(err)
	}
	ct := reflect.TypeFor[Config]()
	n := 0
	for i := range ct.NumField() {
		sf := ct.Field(i)
		section := tomlName(sf)
		for j := range sf.Type.NumField() {
			key := tomlName(sf.Type.Field(j))
			if key == "-" {
				continue // set from another key
			}
			n++
			if !md.IsDefined(section, key) {
				t.Errorf("%s does not set %s.%s", examplePath, section, key)
			}
		}
	}
	if n < 20 {
		t.Errorf("walked only %d keys; is the struct walk broken?", n)
	}
}

func TestLoad(t *testing.T) {
	t.Run("missing file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "nope.toml")
		_, err := Load(path)
		if err == nil {
			t.Fatal("Load succeeded on a missing file")
		}
		if !strings.Contains(err.Error(), path) {
			t.Errorf("error %q does not name %s", err, path)
		}
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("error %q is not os.ErrNotExist", err)
		}
	})
	t.Run("good file", func(t *testing.T) {
		t.Setenv(EnvSecret, "from-env")
		cfg, err := Load(filepath.Join("testdata", "good.toml"))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.XMPP.Secret != "from-env" {
			t.Errorf("secret = %q, want the environment's", cfg.XMPP.Secret)
		}
	})
	t.Run("bad file", func(t *testing.T) {
		t.Setenv(EnvSecret, "")
		_, err := Load(filepath.Join("testdata", "missing-secret.toml"))
		want := []string{"xmpp.secret: required (or set PUBPRESENCE_XMPP_SECRET)"}
		if got := problemsOf(t, err); !slices.Equal(got, want) {
			t.Errorf("problems %q, want %q", got, want)
		}
	})
}

func TestRedacted(t *testing.T) {
	cfg := Default()
	cfg.XMPP.Secret = "s3cret"
	cfg.XMPP.Domains = []string{"example.org"}
	r := cfg.Redacted()
	if r.XMPP.Secret != "***" {
		t.Errorf("redacted secret = %q", r.XMPP.Secret)
	}
	if cfg.XMPP.Secret != "s3cret" {
		t.Errorf("Redacted changed the original secret to %q", cfg.XMPP.Secret)
	}
	r.XMPP.Domains[0] = "changed"
	if cfg.XMPP.Domains[0] != "example.org" {
		t.Error("Redacted shares the domains slice with the original")
	}
	cfg.Ejabberd.APIURL = "http://admin%40localhost:hunter2@127.0.0.1:5280/api"
	if got := cfg.Redacted().Ejabberd.APIURL; strings.Contains(got, "hunter2") || !strings.Contains(got, "127.0.0.1:5280/api") {
		t.Errorf("redacted api_url = %q", got)
	}
	if got := Default().Redacted().XMPP.Secret; got != "" {
		t.Errorf("empty secret redacted to %q, want it left empty", got)
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"30s", 30 * time.Second, true},
		{"5m", 5 * time.Minute, true},
		{"1h30m", 90 * time.Minute, true},
		{"0", 0, true},
		{"-2s", -2 * time.Second, true},
		{"", 0, false},
		{"30", 0, false},
		{"five minutes", 0, false},
	}
	for _, tt := range tests {
		var d Duration
		err := d.UnmarshalText([]byte(tt.in))
		if (err == nil) != tt.ok {
			t.Errorf("UnmarshalText(%q) error = %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if tt.ok && d.Duration != tt.want {
			t.Errorf("UnmarshalText(%q) = %v, want %v", tt.in, d.Duration, tt.want)
		}
		if tt.ok {
			text, err := d.MarshalText()
			if err != nil {
				t.Fatal(err)
			}
			var back Duration
			if err := back.UnmarshalText(text); err != nil || back != d {
				t.Errorf("round trip of %q via %q gave %v, %v", tt.in, text, back, err)
			}
		}
	}
}

func TestErrorJoinsLines(t *testing.T) {
	e := &Error{Problems: []string{"a.b: one", "c.d: two"}}
	if got := e.Error(); got != "a.b: one\nc.d: two" {
		t.Errorf("Error() = %q", got)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte(""))
	f.Add([]byte("[xmpp]\ncomponent = 5\n[nodes]\nreaders = [1, \"a@b\"]\n[[log]]\n"))
	f.Add([]byte("xmpp = { domains = [\"A.org\", \"a.ORG\"] }\n[nodes.x]\ny = 1\n\"a\\nb\" = 2\n"))
	f.Add([]byte("[sync]\nreconcile_interval = 0\ninit_timeout = 2026-01-01T00:00:00Z\n"))
	if data, err := os.ReadFile(examplePath); err == nil {
		f.Add(data)
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "*.toml"))
	for _, name := range files {
		if data, err := os.ReadFile(name); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, noEnv)
		if err != nil {
			if cfg != nil {
				t.Fatal("config returned with an error")
			}
			var ce *Error
			if !errors.As(err, &ce) || len(ce.Problems) == 0 {
				t.Fatalf("error %v is not a *Error with problems", err)
			}
			for _, p := range ce.Problems {
				if p == "" || strings.Contains(p, "\n") {
					t.Fatalf("problem %q is not one non-empty line", p)
				}
			}
			return
		}
		// A config that passed must pass again: Parse normalises only
		// idempotently and never accepts what validation rejects.
		p := newProblems()
		again := cfg.Redacted()
		again.XMPP.Secret = cfg.XMPP.Secret
		validate(&again, p)
		if len(p.lines) > 0 {
			t.Fatalf("accepted config fails validation: %q", p.lines)
		}
		if !reflect.DeepEqual(again, *cfg) {
			t.Fatalf("validation is not idempotent:\n%+v\n%+v", *cfg, again)
		}
		if cfg.XMPP.Pubsub == "" || cfg.XMPP.Component == "" || len(cfg.XMPP.Domains) == 0 {
			t.Fatalf("accepted config lacks required values: %+v", *cfg)
		}
	})
}
