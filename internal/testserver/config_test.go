package testserver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLuaString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `""`},
		{"localhost", `"localhost"`},
		{`a"b`, `"a\"b"`},
		{`C:\dir`, `"C:\\dir"`},
		{"line\nbreak", `"line\010break"`},
		{"tab\tnul\x00", `"tab\009nul\000"`},
		{"é", `"\195\169"`},
		{"]]--", `"]]--"`},
	}
	for _, tt := range tests {
		if got := luaString(tt.in); got != tt.want {
			t.Errorf("luaString(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestLuaList(t *testing.T) {
	tests := []struct {
		in   []string
		want string
	}{
		{nil, "{ }"},
		{[]string{"127.0.0.1"}, `{ "127.0.0.1" }`},
		{[]string{"127.0.0.1", "::1"}, `{ "127.0.0.1", "::1" }`},
	}
	for _, tt := range tests {
		if got := luaList(tt.in); got != tt.want {
			t.Errorf("luaList(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name    string
		opts    []Option
		wantErr string // "" for valid
	}{
		{"defaults", nil, ""},
		{"internal storage", []Option{WithStorage("internal")}, ""},
		{"memory storage", []Option{WithStorage("memory")}, `storage "memory"`},
		{"zero max items", []Option{WithMaxItems(0)}, "max items 0"},
		{"kick_old", []Option{WithConflictResolve("kick_old")}, ""},
		{"bad conflict", []Option{WithConflictResolve("kick_all")}, "kick_all"},
		{"component with localpart", []Option{WithComponent("a@b", "x")}, `"a@b"`},
		{"empty secret", []Option{WithComponent("c.localhost", "")}, "empty secret"},
		{"extra hosts", []Option{WithHost("other.localhost"), WithHost("third.localhost")}, ""},
		{"extra host is the domain", []Option{WithHost("LocalHost")}, "already used as the domain"},
		{"extra host is the pubsub service", []Option{WithHost("pubsub.localhost")}, "the pubsub service"},
		{"extra host is the harness", []Option{WithHost("harness.localhost")}, "the harness component"},
		{"extra host is the component", []Option{WithHost("pubpresence.localhost")}, "already used as the component"},
		{"extra host twice", []Option{WithHost("o.localhost"), WithHost("o.localhost")}, "already used as an extra host"},
		{"extra host with localpart", []Option{WithHost("a@b")}, `extra host "a@b"`},
		{"empty extra host", []Option{WithHost("")}, `extra host ""`},
		{"fixed ports", []Option{WithPorts(15222, 15347)}, ""},
		{"same port twice", []Option{WithPorts(15222, 15222)}, "two different ports"},
		{"one port zero", []Option{WithPorts(0, 15347)}, "1..65535"},
		{"port too high", []Option{WithPorts(15222, 70000)}, "1..65535"},
		{"privilege", []Option{WithPrivilege()}, ""},
		{"privilege misconfigured", []Option{WithPrivilegeMisconfigured()}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := defaultOptions()
			for _, opt := range tt.opts {
				opt(&o)
			}
			err := o.validate(Prosody)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("validate() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("validate() = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestOptionsValidateEjabberd(t *testing.T) {
	tests := []struct {
		name    string
		opts    []Option
		wantErr string // "" for valid
	}{
		{"defaults", nil, ""},
		{"max items", []Option{WithMaxItems(2)}, ""},
		{"internal storage", []Option{WithStorage("internal")}, "Mnesia"},
		{"kick_old", []Option{WithConflictResolve("kick_old")}, "Prosody option"},
		{"extra host", []Option{WithHost("other.localhost")}, ""},
		{"privilege", []Option{WithPrivilege()}, ""},
		{"privilege misconfigured", []Option{WithPrivilegeMisconfigured()}, "not supported on ejabberd"},
		{"shared roster", []Option{WithSharedRoster()}, "not supported on ejabberd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := buildOptions(Ejabberd, tt.opts)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("buildOptions(ejabberd) = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("buildOptions(ejabberd) = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
	if _, err := buildOptions("openfire", nil); err == nil || !strings.Contains(err.Error(), "unknown server kind") {
		t.Errorf("buildOptions(openfire) = %v, want unknown server kind", err)
	}
}

// testServer builds a Server as StartProsody would, without running anything.
func testServer(t *testing.T, opts ...Option) *Server {
	t.Helper()
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	s, err := newFiles(Prosody, t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	s.c2sPort, s.componentPort = 15222, 15347
	s.C2SAddr6 = "[::1]:15222"
	return s
}

func TestRenderConfig(t *testing.T) {
	tests := []struct {
		name          string
		opts          []Option
		want, notWant []string
	}{
		{
			name: "defaults",
			want: []string{
				`admins = { "pubpresence.localhost", "harness.localhost" }`,
				`storage = "sql"`,
				`sql = { driver = "SQLite3", database = "prosody.sqlite" }`,
				"pubsub_max_items = 10000 ",
				"storage_archive_item_limit = 100000 ",
				"c2s_ports = { 15222 }",
				"component_ports = { 15347 }",
				`c2s_interfaces = { "127.0.0.1", "::1" }`,
				`modules_disabled = { "s2s" }`,
				`"ping";`,
				"c2s_require_encryption = false",
				"allow_unencrypted_plain_auth = true",
				"run_as_root = true",
				`{ levels = { min = "info" }, to = "file"`,
				`Component "pubsub.localhost" "pubsub"`,
				"Component \"pubpresence.localhost\"\n\tcomponent_secret = \"s3cret\"",
				`Component "harness.localhost"`,
			},
			notWant: []string{"component_conflict_resolve", "http", "*", "gc ="},
		},
		{
			name:    "without admin",
			opts:    []Option{WithoutAdmin(), WithStorage("internal"), WithMaxItems(50000)},
			want:    []string{`admins = { "harness.localhost" }`, `storage = "internal"`, "pubsub_max_items = 50000 ", "storage_archive_item_limit = 500000 "},
			notWant: []string{`"pubpresence.localhost", "harness`, "SQLite3", "The component is a global admin"},
		},
		{
			name: "extra hosts",
			opts: []Option{WithHost("other.localhost"), WithHost("third.localhost")},
			want: []string{"\nVirtualHost \"other.localhost\"\n", "\nVirtualHost \"third.localhost\"\n", "\nVirtualHost \"localhost\"\n"},
		},
		{
			name: "generational gc",
			opts: []Option{WithGenerationalGC()},
			want: []string{"\ngc = { mode = \"generational\" }\n\nVirtualHost \"localhost\""},
		},
		{
			name:    "shared roster",
			opts:    []Option{WithSharedRoster()},
			want:    []string{"VirtualHost \"localhost\"\n\tmodules_enabled = { \"groups\" }\n", "groups_file = "},
			notWant: []string{"privilege"},
		},
		{
			name: "privilege",
			opts: []Option{WithPrivilege()},
			want: []string{
				"VirtualHost \"localhost\"\n\tmodules_enabled = { \"privilege\" }\n",
				"\tprivileged_entities = {\n\t\t[\"pubpresence.localhost\"] = { presence = \"managed_entity\"; roster = \"get\"; };\n\t}\n",
				"Component \"pubpresence.localhost\"\n\tcomponent_secret = \"s3cret\"\n",
			},
			notWant: []string{"groups", "WithPrivilegeMisconfigured"},
		},
		{
			// One modules_enabled per section: a second would replace the first.
			name: "privilege and shared roster",
			opts: []Option{WithPrivilege(), WithSharedRoster()},
			want: []string{"VirtualHost \"localhost\"\n\tmodules_enabled = { \"groups\", \"privilege\" }\n", "groups_file = ", "privileged_entities"},
		},
		{
			name: "privilege misconfigured",
			opts: []Option{WithPrivilegeMisconfigured()},
			want: []string{
				"VirtualHost \"localhost\"\n\tmodules_enabled = { \"privilege\" }\n\nComponent \"pubsub.localhost\"",
				"WithPrivilegeMisconfigured, on purpose",
			},
		},
		{
			name: "component and conflict",
			opts: []Option{WithComponent("pp.localhost", `se"cret`), WithConflictResolve("kick_old")},
			want: []string{"Component \"pp.localhost\"\n\tcomponent_secret = \"se\\\"cret\"\n\tcomponent_conflict_resolve = \"kick_old\""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testServer(t, tt.opts...)
			cfg, err := renderConfig(Prosody, s.configData())
			if err != nil {
				t.Fatal(err)
			}
			checkConfig(t, cfg, tt.want, tt.notWant)
			if !strings.Contains(cfg, luaString(s.harnessSecret)) {
				t.Errorf("config lacks the harness secret")
			}
		})
	}
}

func TestConfigSnippet(t *testing.T) {
	s := testServer(t)
	got := s.ConfigSnippet()
	for _, w := range []string{`admins = { "pubpresence.localhost" }`, "component_ports = { 15347 }",
		`storage = "sql"`, "pubsub_max_items = 10000", `Component "pubsub.localhost" "pubsub"`,
		`component_secret = "s3cret"`} {
		if !strings.Contains(got, w) {
			t.Errorf("snippet lacks %q:\n%s", w, got)
		}
	}
	for _, w := range []string{"harness", s.harnessSecret, "run_as_root", "c2s_require_encryption", "\nVirtualHost", s.Dir} {
		if strings.Contains(got, w) {
			t.Errorf("snippet has harness-only %q:\n%s", w, got)
		}
	}
	if got := testServer(t, WithoutAdmin()).ConfigSnippet(); strings.Contains(got, "admins") {
		t.Errorf("snippet without admin has admins:\n%s", got)
	}
	if got := testServer(t, WithHost("other.localhost")).ConfigSnippet(); strings.Contains(got, "other.localhost") {
		t.Errorf("snippet has the extra host:\n%s", got)
	}
}

// TestRenderConfigPrivilege: the component's section holds what WithPrivilege
// and WithPrivilegeMisconfigured put there, and privileged_entities is
// where each option says.
func TestRenderConfigPrivilege(t *testing.T) {
	sections := func(cfg string) (host, component string) {
		host = cfg[strings.Index(cfg, "\nVirtualHost \"localhost\""):]
		host = host[:strings.Index(host, "\nComponent ")]
		component = cfg[strings.Index(cfg, "\nComponent \"pubpresence.localhost\""):]
		component = component[:strings.Index(component, "\n-- The harness")]
		return host, component
	}
	cfg, err := renderConfig(Prosody, testServer(t, WithPrivilege()).configData())
	if err != nil {
		t.Fatal(err)
	}
	host, component := sections(cfg)
	if !strings.Contains(host, "privileged_entities") || strings.Contains(component, "privileged_entities") ||
		!strings.Contains(component, `modules_enabled = { "privilege" }`) {
		t.Errorf("WithPrivilege: VirtualHost section\n%s\ncomponent section\n%s", host, component)
	}
	cfg, err = renderConfig(Prosody, testServer(t, WithPrivilegeMisconfigured()).configData())
	if err != nil {
		t.Fatal(err)
	}
	host, component = sections(cfg)
	if strings.Contains(host, "privileged_entities") || !strings.Contains(component, "privileged_entities") ||
		!strings.Contains(host, `modules_enabled = { "privilege" }`) || !strings.Contains(component, `modules_enabled = { "privilege" }`) {
		t.Errorf("WithPrivilegeMisconfigured: VirtualHost section\n%s\ncomponent section\n%s", host, component)
	}
}

func TestRenderConfigEjabberd(t *testing.T) {
	for _, tt := range []struct {
		name          string
		opts          []Option
		want, notWant []string
	}{
		{
			name: "defaults",
			want: []string{
				"    port: 15349\n    ip: \"127.0.0.1\"\n    module: ejabberd_http\n    request_handlers:\n      /api: mod_http_api\n",
				"api_permissions:\n",
				"    from:\n      - mod_http_api\n    who:\n      ip: 127.0.0.1/8\n    what:\n      - connected_users_info\n",
				"  mod_admin_extra: {}",
			},
			notWant: []string{"mod_privilege", "pubpresence_privileged", "\"*\""},
		},
		{
			name: "privilege",
			opts: []Option{WithPrivilege()},
			want: []string{
				"  pubpresence_privileged:\n    - allow: pubpresence\n",
				"  mod_privilege:\n    roster:\n      get: pubpresence_privileged\n    presence:\n      managed_entity: pubpresence_privileged\n",
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o, err := buildOptions(Ejabberd, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			s, err := newFiles(Ejabberd, t.TempDir(), o)
			if err != nil {
				t.Fatal(err)
			}
			s.setAddrs(15222, 15347, 15348, 15349, true)
			if s.APIURL != "http://127.0.0.1:15349/api" {
				t.Errorf("APIURL = %q", s.APIURL)
			}
			cfg, err := renderConfig(Ejabberd, s.configData())
			if err != nil {
				t.Fatal(err)
			}
			checkConfig(t, cfg, tt.want, tt.notWant)
			snippet := s.ConfigSnippet()
			for _, w := range append([]string{"/api: mod_http_api", "connected_users_info"}, tt.want...) {
				if w != "api_permissions:\n" && !strings.Contains(snippet, w) { // the key is the snippet's heading
					t.Errorf("ConfigSnippet lacks %q:\n%s", w, snippet)
				}
			}
		})
	}
}

func TestSetPorts(t *testing.T) {
	o := defaultOptions()
	WithPorts(15222, 15347)(&o)
	s, err := newFiles(Prosody, t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.setPorts(); err != nil {
		t.Fatal(err)
	}
	if s.C2SAddr != "127.0.0.1:15222" || s.ComponentAddr != "127.0.0.1:15347" {
		t.Errorf("fixed ports: addresses %s %s, want 127.0.0.1:15222 127.0.0.1:15347", s.C2SAddr, s.ComponentAddr)
	}
	if s.C2SAddr6 != "" && (s.C2SAddr6 != "[::1]:15222" || s.ComponentAddr6 != "[::1]:15347") {
		t.Errorf("fixed ports: IPv6 addresses %s %s", s.C2SAddr6, s.ComponentAddr6)
	}

	free, err := newFiles(Prosody, t.TempDir(), defaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if err := free.setPorts(); err != nil {
		t.Fatal(err)
	}
	if free.c2sPort == 0 || free.componentPort == 0 || free.c2sPort == free.componentPort {
		t.Errorf("free ports: got %d and %d, want two distinct non-zero ports", free.c2sPort, free.componentPort)
	}
	if free.APIURL != "" || free.apiPort != 0 {
		t.Errorf("Prosody: APIURL %q, API port %d; want none", free.APIURL, free.apiPort)
	}

	ej, err := newFiles(Ejabberd, t.TempDir(), defaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if err := ej.setPorts(); err != nil {
		t.Fatal(err)
	}
	ports := map[int]bool{ej.c2sPort: true, ej.componentPort: true, ej.harnessPort: true, ej.apiPort: true}
	if len(ports) != 4 || ports[0] {
		t.Errorf("ejabberd free ports: %d %d %d %d, want four distinct non-zero ones", ej.c2sPort, ej.componentPort, ej.harnessPort, ej.apiPort)
	}
	if want := fmt.Sprintf("http://127.0.0.1:%d/api", ej.apiPort); ej.APIURL != want {
		t.Errorf("APIURL = %q, want %q", ej.APIURL, want)
	}
	o = defaultOptions()
	WithPorts(15222, 15347)(&o)
	if ej, err = newFiles(Ejabberd, t.TempDir(), o); err != nil {
		t.Fatal(err)
	}
	if err := ej.setPorts(); err != nil {
		t.Fatal(err)
	}
	if ej.harnessAddr != "127.0.0.1:15348" || ej.APIURL != "http://127.0.0.1:15349/api" {
		t.Errorf("ejabberd with fixed ports: harness %s, API %s; want component+1 and +2", ej.harnessAddr, ej.APIURL)
	}
}

func TestNewKeepsDir(t *testing.T) {
	dir := t.TempDir()
	o := defaultOptions()
	WithHost("other.localhost")(&o)
	s, err := newServer(Prosody, dir, o)
	if err != nil {
		t.Fatal(err)
	}
	keep := filepath.Join(s.Dir, "data", "keep")
	if err := os.WriteFile(keep, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := newServer(Prosody, dir, o); err != nil {
		t.Fatalf("newServer on an existing dir: %v", err)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("data in dir lost: %v", err)
	}
	cfg, err := os.ReadFile(s.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cfg), `VirtualHost "other.localhost"`) {
		t.Errorf("written config lacks the extra host:\n%s", cfg)
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New(Prosody, ""); err == nil || !strings.Contains(err.Error(), "empty dir") {
		t.Errorf("New(\"\") = %v, want an empty dir error", err)
	}
	if _, err := New(Prosody, t.TempDir(), WithPorts(1, 1)); err == nil {
		t.Errorf("New with the same port twice succeeded")
	}
	if _, err := New(Ejabberd, t.TempDir(), WithStorage("internal")); err == nil {
		t.Errorf("New(ejabberd) with Prosody's storage option succeeded")
	}
	t.Setenv("PATH", t.TempDir())
	if _, err := New(Prosody, t.TempDir()); !errors.Is(err, ErrNotInstalled) {
		t.Errorf("New without prosody on PATH = %v, want %v", err, ErrNotInstalled)
	}
	if _, err := New(Ejabberd, t.TempDir()); !errors.Is(err, ErrNotInstalled) {
		t.Errorf("New without erl on PATH = %v, want %v", err, ErrNotInstalled)
	}
}

// checkConfig fails t unless cfg holds every string of want and none of
// notWant.
func checkConfig(t *testing.T, cfg string, want, notWant []string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(cfg, w) {
			t.Errorf("config lacks %q:\n%s", w, cfg)
		}
	}
	for _, w := range notWant {
		if strings.Contains(cfg, w) {
			t.Errorf("config has %q:\n%s", w, cfg)
		}
	}
}
