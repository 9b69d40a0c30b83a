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
	privilege       privilege // WithPrivilege, WithPrivilegeMisconfigured
	tls             bool      // WithTLS
	c2sPort         int       // fixed ports (WithPorts); 0: pick free ones
	rosterOnDisc    bool      // WithRosterOnDisc
	generationalGC  bool      // WithGenerationalGC
	erlFlags        []string  // WithErlangFlags
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

// privilege is what XEP-0356 privileges the server's config grants the
// component.
type privilege int

const (
	noPrivilege        privilege = iota
	privilegeGranted             // WithPrivilege
	privilegeMisplaced           // WithPrivilegeMisconfigured
)

// WithPrivilege makes the server grant the component privileged presence
// (XEP-0356 presence "managed_entity", plus roster "get") for the users of
// Domain, so that it gets every user's presence with no roster item. On
// Prosody this is mod_privilege from Debian's prosody-modules, loaded on
// the VirtualHost (with privileged_entities there) and in the component's
// own section; on ejabberd its built-in mod_privilege, with an access rule
// that matches the component's domain.
func WithPrivilege() Option { return func(o *options) { o.privilege = privilegeGranted } }

// WithPrivilegeMisconfigured (Prosody only) loads mod_privilege on the
// VirtualHost and the component as WithPrivilege does, but puts
// privileged_entities in the component's section, where the module does
// not read it: Prosody then sends the component no privilege message and
// no presence, and logs nothing about it. It is for tests of how the
// service copes with that silent failure. ejabberd rejects it.
func WithPrivilegeMisconfigured() Option {
	return func(o *options) { o.privilege = privilegeMisplaced }
}

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
// for the harness and component+2 for the HTTP API (APIURL). StartProsody
// does not retry with other ports when these are taken.
func WithPorts(c2s, component int) Option {
	return func(o *options) { o.c2sPort, o.componentPort = c2s, component }
}

// mnesiaSchemaFile is the file in ejabberd's Mnesia directory (the spool)
// where ejabberd_mnesia reads the storage type of its tables when it
// creates or opens them; mnesiaSchema is what the harness writes there.
// ejabberd 23.01 keeps the roster (and its index on the user) in dets, on
// disc only: every roster read and write is a call to one dets process per
// table. With 10 000 users subscribing at once that process's queue held
// thousands of requests, and the component's own connection process, which
// writes the user's roster item for every subscription stanza the
// component sends, waited in it for minutes (docs/ejabberd.md, "10 000
// users in roster mode"). disc_copies keeps the table in RAM and logs
// every write to disc: same durability, reads from memory. The index must
// be named: without it ejabberd drops the table's index on the user when
// it changes the type.
const (
	mnesiaSchemaFile = "ejabberd.schema"
	mnesiaSchema     = `roster:
  storage_type: disc_copies
  index: [us]
`
)

// DocMnesiaSchema returns the ejabberd.schema the harness writes for
// ejabberd (unless WithRosterOnDisc), for docs/ejabberd.md.
func DocMnesiaSchema() string { return mnesiaSchema }

// WithRosterOnDisc (ejabberd) leaves ejabberd's roster table in its default
// storage, dets (disc only), instead of the RAM copy with a disc log the
// harness asks for in ejabberd.schema (mnesiaSchema). It is for measuring
// the difference. Prosody ignores it.
func WithRosterOnDisc() Option { return func(o *options) { o.rosterOnDisc = true } }

// WithGenerationalGC (Prosody) sets Lua 5.4's generational garbage
// collector (gc = { mode = "generational" }) instead of Prosody 0.12's
// default, an incremental collector that starts a cycle each time the heap
// grows by 5 %. It is for the 10 000-user rows of the performance test
// (docs/prosody.md, "Garbage collection"). ejabberd ignores it.
func WithGenerationalGC() Option { return func(o *options) { o.generationalGC = true } }

// WithErlangFlags (ejabberd) adds flags to the Erlang VM's command line,
// e.g. "+sbwt", "none" (schedulers that do not spin while idle), for
// measuring what they change. Prosody ignores them.
func WithErlangFlags(flags ...string) Option {
	return func(o *options) { o.erlFlags = append(o.erlFlags, flags...) }
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
	GenerationalGC         bool

	ComponentAdmin bool
	Admins         []string

	Domain, Pubsub, Component, Secret, ConflictResolve string
	Harness, HarnessSecret                             string
	GroupsFile                                         string   // mod_groups file, "" without WithSharedRoster
	Hosts                                              []string // extra VirtualHosts

	// Privilege loads mod_privilege (WithPrivilege, and on Prosody
	// WithPrivilegeMisconfigured); PrivilegeMisplaced puts Prosody's
	// privileged_entities in the component's section instead of the
	// VirtualHost's (WithPrivilegeMisconfigured).
	Privilege, PrivilegeMisplaced bool
	// HostModules is Prosody's modules_enabled of the VirtualHost Domain:
	// one list for every option that needs one there, since a second
	// modules_enabled line in a section replaces the first.
	HostModules []string
	// APIPort is ejabberd's HTTP API listener (mod_http_api, loopback).
	APIPort int
	// Cluster is set on the nodes of a Cluster: the HTTP API also allows
	// list_cluster, for the harness.
	Cluster bool
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
	d := configData{
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
		GenerationalGC:  s.opts.generationalGC,
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
		APIPort:         s.apiPort,
		Cluster:         s.dist != nil,
	}
	d.setPrivilege(s.opts.privilege)
	return d
}

// setPrivilege sets the fields of the privilege p and the VirtualHost's
// modules, which depend on it.
func (d *configData) setPrivilege(p privilege) {
	d.Privilege = p != noPrivilege
	d.PrivilegeMisplaced = p == privilegeMisplaced
	d.HostModules = nil
	if d.GroupsFile != "" {
		d.HostModules = append(d.HostModules, "groups")
	}
	if d.Privilege {
		d.HostModules = append(d.HostModules, "privilege")
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
// the template's blocks of the parts of snippetParts that are in set, each
// part under its heading.
func renderSnippet(kind Kind, d configData, set partSet) (string, error) {
	d.Admins = nil
	if d.ComponentAdmin {
		d.Admins = []string{d.Component}
	}
	d.Harness, d.HarnessSecret = "", ""
	var out strings.Builder
	for _, part := range snippetParts(kind, d) {
		if set != allParts && part.set != set {
			continue
		}
		var b strings.Builder
		for _, block := range part.blocks {
			if err := templates[kind].ExecuteTemplate(&b, block, d); err != nil {
				return "", fmt.Errorf("render config snippet: %w", err)
			}
		}
		if out.Len() > 0 {
			out.WriteString("\n")
		}
		out.WriteString(part.heading + "\n" + strings.Trim(b.String(), "\n") + "\n")
	}
	return out.String(), nil
}

// partSet names a group of snippet parts, which the docs show in
// different places.
type partSet int

const (
	allParts       partSet = iota
	componentParts         // the component itself: listener, admin, pubsub
	privilegeParts         // XEP-0356 privileged presence
	apiParts               // ejabberd's HTTP API
)

// snippetPart is one block of the operator's snippet: the named template
// blocks, rendered one after the other under heading.
type snippetPart struct {
	set     partSet
	heading string
	blocks  []string
}

func snippetParts(kind Kind, d configData) []snippetPart {
	if kind == Ejabberd {
		parts := []snippetPart{
			{componentParts, "# Under listen:", []string{"component-listen"}},
			{componentParts, "# Under acl:", []string{"component-acl"}},
			{componentParts, "# Under access_rules: (merge with an existing configure rule)", []string{"component-access"}},
			{componentParts, "# Under modules:", []string{"component-modules"}},
		}
		if d.Privilege {
			parts = append(parts,
				snippetPart{privilegeParts, "# Under access_rules:", []string{"privilege-access"}},
				snippetPart{privilegeParts, "# Under modules:", []string{"privilege-modules"}})
		}
		if d.APIPort != 0 {
			parts = append(parts,
				snippetPart{apiParts, "# Under listen:", []string{"api-listen"}},
				snippetPart{apiParts, "# Under api_permissions: (the key replaces ejabberd's default rules: keep those you use)", []string{"api-permissions"}},
				snippetPart{apiParts, "# Under modules:", []string{"api-modules"}})
		}
		return parts
	}
	host := "VirtualHost " + luaString(d.Domain)
	parts := []snippetPart{
		{componentParts, "-- In the global section, before the first VirtualHost or Component line:", []string{"component-global"}},
		{componentParts, "-- After the " + host + " section:", []string{"component-hosts"}},
	}
	switch {
	case d.Privilege:
		blocks := []string{"host-modules"}
		if d.GroupsFile != "" {
			blocks = append(blocks, "component-roster")
		}
		if !d.PrivilegeMisplaced {
			blocks = append(blocks, "privilege-host")
		}
		parts = append(parts,
			snippetPart{privilegeParts, "-- In the " + host + " section (one modules_enabled per section: a second one replaces the first):", blocks},
			snippetPart{privilegeParts, "-- In the Component " + luaString(d.Component) + " section:", []string{"privilege-component"}})
	case d.GroupsFile != "":
		parts = append(parts, snippetPart{componentParts, "-- Optional, in the " + host + " section:",
			[]string{"host-modules", "component-roster"}})
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
	d := configData{
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
		APIPort:        5280,
	}
	d.setPrivilege(noPrivilege)
	return d
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
	return docSnippet(kind, docData(), componentParts)
}

// DocPrivilegeSnippet is DocSnippet for what WithPrivilege adds: the
// server grants the component privileged presence (XEP-0356).
func DocPrivilegeSnippet(kind Kind) string {
	d := docData()
	d.GroupsFile = ""
	d.setPrivilege(privilegeGranted)
	return docSnippet(kind, d, privilegeParts)
}

// DocAPISnippet is DocSnippet for ejabberd's HTTP API as the harness runs
// it (Server.APIURL): a listener on loopback and the permission to call
// connected_users_info from there.
func DocAPISnippet() string {
	return docSnippet(Ejabberd, docData(), apiParts)
}

func docSnippet(kind Kind, d configData, set partSet) string {
	s, err := renderSnippet(kind, d, set)
	if err != nil {
		panic(err) // the template is embedded: a failure is a bug caught by tests
	}
	return s
}

// Privileged reports whether the server was started WithPrivilege: it
// grants the component privileged presence (XEP-0356).
func (s *Server) Privileged() bool { return s.opts.privilege == privilegeGranted }
