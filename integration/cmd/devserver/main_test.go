package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pubpresence/pubpresence/config"
	"github.com/pubpresence/pubpresence/internal/testserver"
	"github.com/pubpresence/pubpresence/web"
)

func TestLoadSecret(t *testing.T) {
	path := filepath.Join(t.TempDir(), secretFile)
	first, err := loadSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 32 {
		t.Errorf("new secret %q: want 32 hex digits", first)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("secret file: %v, mode %v, want 0600", err, fi.Mode())
	}
	again, err := loadSecret(path)
	if err != nil || again != first {
		t.Errorf("second loadSecret = %q, %v, want the kept %q", again, err, first)
	}
	if err := os.WriteFile(path, []byte("  mine \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := loadSecret(path); err != nil || got != "mine" {
		t.Errorf("loadSecret of an edited file = %q, %v, want \"mine\"", got, err)
	}
	if err := os.WriteFile(path, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := loadSecret(path); err != nil || len(got) != 32 || got == first {
		t.Errorf("loadSecret of an empty file = %q, %v, want a fresh secret", got, err)
	}
	if _, err := loadSecret(filepath.Join(t.TempDir(), "no", "such", "dir", secretFile)); err == nil {
		t.Errorf("loadSecret in a missing directory succeeded")
	}
}

func testServer() *testserver.Server {
	return &testserver.Server{
		Kind:          "prosody",
		Domain:        "localhost",
		Component:     component,
		Secret:        "0123abcd",
		Pubsub:        "pubsub.localhost",
		C2SAddr:       "127.0.0.1:15222",
		C2SAddr6:      "[::1]:15222",
		ComponentAddr: "127.0.0.1:15347",
		Dir:           "/tmp/x/.run/prosody",
	}
}

func TestServiceConfig(t *testing.T) {
	data, err := serviceConfig(testServer(), "127.0.0.1:9273", "/tmp/x/.run/tokens")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(data, nil)
	if err != nil {
		t.Fatalf("written config does not parse: %v\n%s", err, data)
	}
	want := config.Default()
	checks := []struct {
		name      string
		got, want any
	}{
		{"address", cfg.XMPP.Address, "127.0.0.1:15347"},
		{"component", cfg.XMPP.Component, "pubpresence.localhost"},
		{"secret", cfg.XMPP.Secret, "0123abcd"},
		{"domains", strings.Join(cfg.XMPP.Domains, ","), "localhost"},
		{"pubsub", cfg.XMPP.Pubsub, "pubsub.localhost"},
		{"readers", strings.Join(cfg.Nodes.Readers, ","), "monitor@localhost"},
		{"access model", cfg.Nodes.AccessModel, config.AccessWhitelist},
		{"http", cfg.HTTP.Listen, "127.0.0.1:9273"},
		{"tokens", cfg.HTTP.TokensFile, "/tmp/x/.run/tokens"},
		{"log", cfg.Log, config.Log{Level: "info", Format: "console"}},
		{"dial timeout", cfg.XMPP.DialTimeout, want.XMPP.DialTimeout},
		{"reconcile", cfg.Sync.ReconcileInterval, want.Sync.ReconcileInterval},
		{"nodes", cfg.Nodes.Actual, want.Nodes.Actual},
		{"purge_stale with Prosody", cfg.Sync.PurgeStale, true},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	ej := testServer()
	ej.Kind = testserver.Ejabberd
	if data, err := serviceConfig(ej, "127.0.0.1:9273", "/tmp/x/.run/tokens"); err != nil {
		t.Fatal(err)
	} else if c, err := config.Parse(data, nil); err != nil || c.Sync.PurgeStale {
		t.Errorf("with ejabberd: purge_stale %v (err %v), want off", c != nil && c.Sync.PurgeStale, err)
	}
	// Complete: every section is written out.
	for _, section := range []string{"[xmpp]", "[nodes]", "[sync]", "[http]", "[log]"} {
		if !bytes.Contains(data, []byte(section)) {
			t.Errorf("config lacks %s:\n%s", section, data)
		}
	}
}

func TestHowTo(t *testing.T) {
	got := howTo(testServer(), ".run/pubpresence.toml", "127.0.0.1:9273", "tok3n")
	for _, w := range []string{"http://127.0.0.1:9273/ (token tok3n, kept in .run/tokens)", "127.0.0.1:15222", "[::1]:15222", `alice@localhost password "alice"`,
		`bob@localhost password "bob"`, `monitor@localhost password "monitor"`,
		"privileged presence (XEP-0356): every user is tracked from login", ".run/pubpresence.toml"} {
		if !strings.Contains(got, w) {
			t.Errorf("how-to lacks %q:\n%s", w, got)
		}
	}
}

func TestLoadToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	first, err := loadToken(path)
	if err != nil {
		t.Fatal(err)
	}
	again, err := loadToken(path)
	if err != nil || again != first {
		t.Fatalf("second run: %q %v, want the kept %q", again, err, first)
	}
	tokens, err := web.ReadTokens(path)
	if err != nil {
		t.Fatalf("the service cannot read the file: %v", err)
	}
	if name, ok := tokens.Match(first); !ok || name != "dev" {
		t.Fatalf("the token is not the file's: %q %v", name, ok)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	for _, content := range []string{"one", "two"} {
		if err := writeFileAtomic(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(path); err != nil || string(b) != content {
			t.Errorf("read back %q, %v, want %q", b, err, content)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Errorf("dir has %d entries (%v), want only the file", len(entries), err)
	}
}

func TestRunFlags(t *testing.T) {
	var out, errOut bytes.Buffer
	if rc := run([]string{"-nosuchflag"}, &out, &errOut); rc != 2 {
		t.Errorf("unknown flag: exit %d, want 2", rc)
	}
	if rc := run([]string{"extra"}, &out, &errOut); rc != 2 {
		t.Errorf("extra argument: exit %d, want 2", rc)
	}
	if rc := run([]string{"-h"}, &out, &errOut); rc != 0 {
		t.Errorf("-h: exit %d, want 0", rc)
	}
}

func TestRunWithoutProsody(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	var out, errOut bytes.Buffer
	dir := t.TempDir()
	if rc := run([]string{"-dir", dir}, &out, &errOut); rc != 1 {
		t.Errorf("exit %d, want 1", rc)
	}
	if !strings.Contains(errOut.String(), "scripts/install-servers.sh") {
		t.Errorf("stderr does not point to install-servers.sh:\n%s", errOut.String())
	}
}
