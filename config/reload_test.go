package config

import (
	"slices"
	"testing"
	"time"
)

func TestReload(t *testing.T) {
	base := func() *Config {
		c := Default()
		c.XMPP.Addresses = []string{c.XMPP.Address}
		c.XMPP.Component = "pubpresence.example.org"
		c.XMPP.Secret = "s"
		c.XMPP.Domains = []string{"example.org"}
		c.XMPP.Pubsub = "pubsub.example.org"
		c.Nodes.Readers = []string{"a@example.org"}
		return &c
	}
	tests := []struct {
		name             string
		edit             func(*Config)
		applied, restart []string
		check            func(t *testing.T, m *Config)
	}{
		{name: "nothing", edit: func(*Config) {}},
		{
			name: "reloadable",
			edit: func(c *Config) {
				c.Log.Level = "debug"
				c.Nodes.Readers = []string{"a@example.org", "b@example.org"}
				c.Sync.ReconcileInterval = Duration{time.Minute}
			},
			applied: []string{"nodes.readers", "sync.reconcile_interval", "log.level"},
			check: func(t *testing.T, m *Config) {
				if m.Log.Level != "debug" || len(m.Nodes.Readers) != 2 || m.Sync.ReconcileInterval.Duration != time.Minute {
					t.Errorf("not applied: %+v", m)
				}
			},
		},
		{
			name:    "restart only",
			edit:    func(c *Config) { c.XMPP.Secret = "t"; c.HTTP.Listen = ":1"; c.Nodes.AccessModel = AccessOpen },
			restart: []string{"xmpp.secret", "nodes.access_model", "http.listen"},
			check: func(t *testing.T, m *Config) {
				if m.XMPP.Secret != "s" || m.HTTP.Listen != "127.0.0.1:9273" || m.Nodes.AccessModel != AccessWhitelist {
					t.Errorf("a restart-only key was applied: %+v", m)
				}
			},
		},
		{
			name:    "one more address",
			edit:    func(c *Config) { c.XMPP.Addresses = []string{c.XMPP.Address, "node2.example.org:5347"} },
			restart: []string{"xmpp.address"},
			check: func(t *testing.T, m *Config) {
				if len(m.XMPP.Addresses) != 1 {
					t.Errorf("addresses applied: %q", m.XMPP.Addresses)
				}
			},
		},
		{
			name: "another address",
			edit: func(c *Config) {
				c.XMPP.Address = "node1.example.org:5347"
				c.XMPP.Addresses = []string{"node1.example.org:5347"}
			},
			restart: []string{"xmpp.address"}, // once, for both fields
		},
		{
			name:    "both",
			edit:    func(c *Config) { c.Sync.ProbeGrace = Duration{time.Second}; c.XMPP.Domains = []string{"example.net"} },
			applied: []string{"sync.probe_grace"},
			restart: []string{"xmpp.domains"},
			check: func(t *testing.T, m *Config) {
				if m.Sync.ProbeGrace.Duration != time.Second || m.XMPP.Domains[0] != "example.org" {
					t.Errorf("merged wrongly: %+v", m)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cur, next := base(), base()
			tt.edit(next)
			m, applied, restart := Reload(cur, next)
			if !slices.Equal(applied, tt.applied) || !slices.Equal(restart, tt.restart) {
				t.Errorf("applied %q restart %q, want %q and %q", applied, restart, tt.applied, tt.restart)
			}
			if tt.check != nil {
				tt.check(t, m)
			}
			if cur.Log.Level != "info" || len(cur.Nodes.Readers) != 1 {
				t.Errorf("cur was modified: %+v", cur)
			}
		})
	}
}

// TestReloadKnowsEveryKey: every key of the file is either reloadable or
// reported as needing a restart; a new key cannot slip through unnoticed.
func TestReloadKnowsEveryKey(t *testing.T) {
	a := Default()
	keys := changedKeys(&a, &Config{})
	for _, k := range reloadable {
		if !slices.Contains(keys, k) && k != "nodes.readers" {
			t.Errorf("reloadable key %q is not a key of Config (or its default is its zero value)", k)
		}
	}
	if len(keys) < 15 {
		t.Errorf("found %d keys with non-zero defaults, want the whole file: %q", len(keys), keys)
	}
}
