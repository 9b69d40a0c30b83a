package config

import (
	"reflect"
	"slices"
)

// reloadable are the keys a running service takes from a new file on
// SIGHUP, without reconnecting. Every other key needs a restart.
var reloadable = []string{
	"log.level",
	"nodes.readers",
	"sync.reconcile_interval",
	"sync.probe_grace",
	"sync.init_timeout",
	"tracking.sessions_poll",
	"tracking.exclude",
	"http.cors_origins",
}

// ReloadableKeys returns the dotted keys that Reload takes from a new file.
func ReloadableKeys() []string { return slices.Clone(reloadable) }

// Reload compares a new configuration with the running one. It returns
// the configuration to run with — cur with the reloadable keys taken from
// next — and the dotted keys that changed, split into those applied and
// those that need a restart to take effect (their new values are ignored).
func Reload(cur, next *Config) (merged *Config, applied, restart []string) {
	m := *cur
	for _, key := range changedKeys(cur, next) {
		if !slices.Contains(reloadable, key) {
			restart = append(restart, key)
			continue
		}
		applied = append(applied, key)
		switch key {
		case "log.level":
			m.Log.Level = next.Log.Level
		case "nodes.readers":
			m.Nodes.Readers = slices.Clone(next.Nodes.Readers)
		case "sync.reconcile_interval":
			m.Sync.ReconcileInterval = next.Sync.ReconcileInterval
		case "sync.probe_grace":
			m.Sync.ProbeGrace = next.Sync.ProbeGrace
		case "sync.init_timeout":
			m.Sync.InitTimeout = next.Sync.InitTimeout
		case "tracking.sessions_poll":
			m.Tracking.SessionsPoll = next.Tracking.SessionsPoll
		case "tracking.exclude":
			m.Tracking.Exclude = slices.Clone(next.Tracking.Exclude)
		case "http.cors_origins":
			m.HTTP.CORSOrigins = slices.Clone(next.HTTP.CORSOrigins)
		}
	}
	return &m, applied, restart
}

// changedKeys lists the dotted keys ("section.key") whose values differ,
// each once: a field derived from a key (xmpp.address's Addresses) counts
// as that key.
func changedKeys(a, b *Config) []string {
	var keys []string
	va, vb := reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem()
	t := va.Type()
	for i := range t.NumField() {
		section := tomlName(t.Field(i))
		sa, sb := va.Field(i), vb.Field(i)
		st := sa.Type()
		for j := range st.NumField() {
			name := keyName(st.Field(j))
			if name == "" || reflect.DeepEqual(sa.Field(j).Interface(), sb.Field(j).Interface()) {
				continue
			}
			if key := section + "." + name; !slices.Contains(keys, key) {
				keys = append(keys, key)
			}
		}
	}
	return keys
}
