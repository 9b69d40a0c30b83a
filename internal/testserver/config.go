package testserver

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"text/template"
)

// The configs the harness writes. They are kept in their own files so the
// docs can show the same text.
var (
	//go:embed prosody.cfg.lua.tmpl
	prosodyConfig string
	//go:embed ejabberd.yml.tmpl
	ejabberdConfig string
)

var templates = map[Kind]*template.Template{
	Prosody: template.Must(template.New("prosody").Funcs(template.FuncMap{
		"lua":     luaString,
		"luaList": luaList,
	}).Parse(prosodyConfig)),
	Ejabberd: template.Must(template.New("ejabberd").Funcs(template.FuncMap{
		"yaml": yamlString,
	}).Parse(ejabberdConfig)),
}

// Option changes how Start and New configure the server.
type Option func(*options)

type options struct {
	admin           bool
	maxItems        int
	storage         string
	component       string
	secret          string
	conflictResolve string
	dir             string
	hosts           []string // extra VirtualHosts (WithHost)
	sharedRoster    bool
	tls             bool // WithTLS
	c2sPort         int  // fixed ports (WithPorts); 0: pick free ones
	componentPort   int
}

// The fixed names of every server the harness writes a config for.
const (
	defaultDomain = "localhost"
	defaultPubsub = "pubsub.localhost"
	harnessName   = "harness.localhost"
)

func defaultOptions() options {
	return options{
		admin:     true,
		maxItems:  10000,
		storage:   "sql",
		component: "pubpresence.localhost",
		secret:    "s3cret",
	}
}

// WithoutAdmin makes the component an ordinary component: not in admins, so no
// XEP-0133 commands and no owner rights on pubsub. By default it is a global admin.
func WithoutAdmin() Option { return func(o *options) { o.admin = false } }

// WithMaxItems sets what pubsub#max_items=max means (default 10000):
// Prosody's pubsub_max_items (and storage_archive_item_limit to ten times
// that, at least 100000), ejabberd's max_items_node.
func WithMaxItems(n int) Option { return func(o *options) { o.maxItems = n } }

// WithStorage selects Prosody's storage backend: "sql" (SQLite, the
// default) or "internal" (flat files). ejabberd always uses Mnesia.
func WithStorage(s string) Option { return func(o *options) { o.storage = s } }

// WithComponent sets the component's name and secret (default
// "pubpresence.localhost" and "s3cret").
func WithComponent(name, secret string) Option {
	return func(o *options) { o.component, o.secret = name, secret }
}

// WithConflictResolve sets Prosody's component_conflict_resolve ("kick_new"
// or "kick_old"). By default it is left out, which means kick_new.
func WithConflictResolve(s string) Option { return func(o *options) { o.conflictResolve = s } }

// WithDir makes the server use dir (created if missing) instead of a fresh
// t.TempDir(). Existing data in it is kept. New ignores it: its dir
// argument wins.
func WithDir(dir string) Option { return func(o *options) { o.dir = dir } }

// WithSharedRoster puts the component in the roster of every user of the
// domain, subscribed both ways, through the server's shared roster
// (Prosody's mod_groups), so users are tracked without subscribing.
func WithSharedRoster() Option { return func(o *options) { o.sharedRoster = true } }

// WithHost adds a VirtualHost for domain (e.g. "other.localhost") that the
// component does not serve, so a test can have a user of a foreign domain
// on the same server. CreateUsersOn creates users there. It may be given
// more than once.
func WithHost(domain string) Option {
	return func(o *options) { o.hosts = append(o.hosts, domain) }
}

// WithPorts makes the server listen on the given c2s and component ports
// (on 127.0.0.1, and ::1 when the machine has an IPv6 loopback) instead of
// free ones picked at random. ejabberd also takes component+1 on 127.0.0.1
// for the harness. StartProsody does not retry with other ports
// when these are taken.
func WithPorts(c2s, component int) Option {
	return func(o *options) { o.c2sPort, o.componentPort = c2s, component }
}

func (o options) validate(kind Kind) error {
	if err := o.checkKind(kind); err != nil {
		return err
	}
	if o.maxItems < 1 {
		return fmt.Errorf("pubsub max items %d: must be at least 1", o.maxItems)
	}
	switch o.storage {
	case "sql", "internal":
	default:
		return fmt.Errorf("storage %q: want \"sql\" or \"internal\"", o.storage)
	}
	switch o.conflictResolve {
	case "", "kick_new", "kick_old":
	default:
		return fmt.Errorf("component_conflict_resolve %q: want \"kick_new\" or \"kick_old\"", o.conflictResolve)
	}
	if o.component == "" || strings.ContainsAny(o.component, "@/ \t\r\n") {
		return fmt.Errorf("component name %q: want a bare domain", o.component)
	}
	if o.secret == "" {
		return fmt.Errorf("component %s: empty secret", o.component)
	}
	if o.c2sPort != 0 || o.componentPort != 0 {
		for _, p := range []int{o.c2sPort, o.componentPort} {
			if p < 1 || p > 65535 {
				return fmt.Errorf("ports %d and %d: want both in 1..65535", o.c2sPort, o.componentPort)
			}
		}
		if o.c2sPort == o.componentPort {
			return fmt.Errorf("ports %d and %d: want two different ports", o.c2sPort, o.componentPort)
		}
	}
	taken := map[string]string{
		defaultDomain:                "the domain",
		defaultPubsub:                "the pubsub service",
		harnessName:                  "the harness component",
		strings.ToLower(o.component): "the component",
	}
	for _, h := range o.hosts {
		if h == "" || strings.ContainsAny(h, "@/ \t\r\n") {
			return fmt.Errorf("extra host %q: want a bare domain", h)
		}
		if what, ok := taken[strings.ToLower(h)]; ok {
			return fmt.Errorf("extra host %q: already used as %s", h, what)
		}
		taken[strings.ToLower(h)] = "an extra host"
	}
	return nil
}

// configData is what the template needs.
type configData struct {
	Dir, PidFile, DataPath, CertsPath, LogFile, LogLevel string

	Interfaces                          []string
	C2SPort, ComponentPort, HarnessPort int

	Storage                string
	MaxItems, ArchiveLimit int

	ComponentAdmin bool
	Admins         []string

	Domain, Pubsub, Component, Secret, ConflictResolve string
	Harness, HarnessSecret                             string
	GroupsFile                                         string   // mod_groups file, "" without WithSharedRoster
	Hosts                                              []string // extra VirtualHosts
	// TLSCA, TLSCert and TLSKey are the CA certificate, the c2s
	// certificate and its key of WithTLS, "" without it (no TLS).
	TLSCA, TLSCert, TLSKey string
}

func (s *Server) configData() configData {
	ifaces := []string{"127.0.0.1"}
	if s.C2SAddr6 != "" {
		ifaces = append(ifaces, "::1")
	}
	level := "info"
	if debugLog() {
		level = "debug"
	}
	var admins []string
	if s.opts.admin {
		admins = append(admins, s.Component)
	}
	admins = append(admins, s.harness)
	var ca, cert, key string
	if s.tls != nil {
		ca, cert, key = s.tls.ca, s.tls.cert, s.tls.key
	}
	return configData{
		TLSCA:           ca,
		TLSCert:         cert,
		TLSKey:          key,
		Dir:             s.Dir,
		PidFile:         filepath.Join(s.Dir, "prosody.pid"),
		DataPath:        filepath.Join(s.Dir, "data"),
		CertsPath:       filepath.Join(s.Dir, "certs"),
		LogFile:         s.LogPath,
		LogLevel:        level,
		Interfaces:      ifaces,
		C2SPort:         s.c2sPort,
		ComponentPort:   s.componentPort,
		HarnessPort:     s.harnessPort,
		Storage:         s.opts.storage,
		MaxItems:        s.opts.maxItems,
		ArchiveLimit:    max(100000, 10*s.opts.maxItems),
		ComponentAdmin:  s.opts.admin,
		Admins:          admins,
		Domain:          s.Domain,
		Pubsub:          s.Pubsub,
		Component:       s.Component,
		Secret:          s.Secret,
		ConflictResolve: s.opts.conflictResolve,
		Harness:         s.harness,
		GroupsFile:      s.groupsFile(),
		HarnessSecret:   s.harnessSecret,
		Hosts:           s.Hosts,
	}
}

// renderConfig returns the whole prosody.cfg.lua or ejabberd.yml for d.
func renderConfig(kind Kind, d configData) (string, error) {
	name := map[Kind]string{Prosody: "prosody.cfg.lua", Ejabberd: "ejabberd.yml"}[kind]
	var b strings.Builder
	if err := templates[kind].ExecuteTemplate(&b, name, d); err != nil {
		return "", fmt.Errorf("render %s config: %w", kind, err)
	}
	return b.String(), nil
}

// renderSnippet returns only the lines an operator adds for the component:
// the template's blocks named in snippetParts, each under its heading.
func renderSnippet(kind Kind, d configData) (string, error) {
	d.Admins = nil
	if d.ComponentAdmin {
		d.Admins = []string{d.Component}
	}
	d.Harness, d.HarnessSecret = "", ""
	var out strings.Builder
	for i, part := range snippetParts(kind, d) {
		var b strings.Builder
		if err := templates[kind].ExecuteTemplate(&b, part.block, d); err != nil {
			return "", fmt.Errorf("render config snippet: %w", err)
		}
		if i > 0 {
			out.WriteString("\n")
		}
		out.WriteString(part.heading + "\n" + strings.Trim(b.String(), "\n") + "\n")
	}
	return out.String(), nil
}

// snippetPart is one block of the operator's snippet.
type snippetPart struct{ heading, block string }

func snippetParts(kind Kind, d configData) []snippetPart {
	if kind == Ejabberd {
		return []snippetPart{
			{"# Under listen:", "component-listen"},
			{"# Under acl:", "component-acl"},
			{"# Under access_rules: (merge with an existing configure rule)", "component-access"},
			{"# Under modules:", "component-modules"},
		}
	}
	parts := []snippetPart{
		{"-- In the global section, before the first VirtualHost or Component line:", "component-global"},
		{"-- After the VirtualHost " + luaString(d.Domain) + " section:", "component-hosts"},
	}
	if d.GroupsFile != "" {
		parts = append(parts, snippetPart{"-- Optional, in the VirtualHost " + luaString(d.Domain) + " section:", "component-roster"})
	}
	return parts
}

// renderGroups returns the mod_groups file of the shared roster.
func renderGroups(d configData) (string, error) {
	var b strings.Builder
	if err := templates[Prosody].ExecuteTemplate(&b, "groups-file", d); err != nil {
		return "", fmt.Errorf("render groups file: %w", err)
	}
	return b.String(), nil
}

// docData is the example configuration of the docs.
func docData() configData {
	return configData{
		Interfaces:     []string{"127.0.0.1", "::1"},
		ComponentPort:  5347,
		Storage:        "sql",
		MaxItems:       10000,
		ArchiveLimit:   100000,
		ComponentAdmin: true,
		Domain:         "example.org",
		Pubsub:         "pubsub.example.org",
		Component:      "pubpresence.example.org",
		Secret:         "change-me",
		GroupsFile:     "/etc/prosody/pubpresence-groups.txt",
	}
}

// DocGroupsFile returns the mod_groups file docs/prosody.md shows for the
// optional shared roster, rendered as the tests write it.
func DocGroupsFile() string {
	s, err := renderGroups(docData())
	if err != nil {
		panic(err)
	}
	return s
}

// yamlString quotes s as a YAML double-quoted scalar (JSON's string syntax
// is a subset of it).
func yamlString(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err) // a string always marshals
	}
	return string(b)
}

// luaString quotes s as a Lua string literal. Bytes outside printable ASCII
// are written as decimal escapes, which every Lua version reads.
func luaString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&b, "\\%03d", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// luaList writes a Lua table of strings: { "a", "b" }.
func luaList(items []string) string {
	if len(items) == 0 {
		return "{ }"
	}
	quoted := make([]string, len(items))
	for i, it := range items {
		quoted[i] = luaString(it)
	}
	return "{ " + strings.Join(quoted, ", ") + " }"
}

// DocSnippet returns the configuration an operator adds to the server of
// kind for pubpresence, rendered from the same template blocks as the
// servers the tests run, with the documentation's example values
// (docs/prosody.md and docs/ejabberd.md hold it verbatim, and a test checks
// that they do).
func DocSnippet(kind Kind) string {
	s, err := renderSnippet(kind, docData())
	if err != nil {
		panic(err) // the template is embedded: a failure is a bug caught by tests
	}
	return s
}
