package xmpp

import (
	"strings"
	"testing"
)

func TestParsePrivilege(t *testing.T) {
	tests := []struct {
		name    string
		inner   string
		want    Privilege
		found   bool
		granted bool
	}{
		{
			name:    "Prosody mod_privilege",
			inner:   "<privilege xmlns='urn:xmpp:privilege:2'><perm access='roster' type='get'/><perm access='presence' type='managed_entity'/></privilege>",
			want:    Privilege{NS: NSPrivilege2, Roster: "get", Presence: "managed_entity"},
			found:   true,
			granted: true,
		},
		{
			name:    "ejabberd 23.01",
			inner:   "<privilege xmlns='urn:xmpp:privilege:1'><perm type='none' access='message'/><perm type='get' access='roster'/><perm type='managed_entity' access='presence'/></privilege>",
			want:    Privilege{NS: NSPrivilege1, Roster: "get", Message: "none", Presence: "managed_entity"},
			found:   true,
			granted: true,
		},
		{
			name:  "Prosody's empty one sent to users",
			inner: "<privilege xmlns='urn:xmpp:privilege:2'/>",
			want:  Privilege{NS: NSPrivilege2},
			found: true,
		},
		{
			name:    "presence roster, every access, iq with namespaces",
			inner:   "<privilege xmlns='urn:xmpp:privilege:2'><perm access='roster' type='both'/><perm access='message' type='outgoing'/><perm access='presence' type='roster'/><perm access='iq'><namespace ns='jabber:iq:roster' type='get'/></perm></privilege>",
			want:    Privilege{NS: NSPrivilege2, Roster: "both", Message: "outgoing", Presence: "roster", IQ: true},
			found:   true,
			granted: true,
		},
		{
			name:  "presence none",
			inner: "<privilege xmlns='urn:xmpp:privilege:1'><perm access='presence' type='none'/></privilege>",
			want:  Privilege{NS: NSPrivilege1, Presence: "none"},
			found: true,
		},
		{
			name:  "unknown type kept, unknown access ignored, first perm of an access counts",
			inner: "<privilege xmlns='urn:xmpp:privilege:2'><perm access='presence' type='everything'/><perm access='presence' type='roster'/><perm access='files' type='all'/></privilege>",
			want:  Privilege{NS: NSPrivilege2, Presence: "everything"},
			found: true,
		},
		{
			name:  "perms of another namespace and nested ones ignored",
			inner: "<privilege xmlns='urn:xmpp:privilege:2'><perm xmlns='urn:other' access='presence' type='roster'/><x><perm access='roster' type='get'/></x></privilege>",
			want:  Privilege{NS: NSPrivilege2},
			found: true,
		},
		{
			name:    "after other children, double quotes, a prefix",
			inner:   "<body>hi</body><p:privilege xmlns:p=\"urn:xmpp:privilege:2\"><p:perm access=\"presence\" type=\"managed_entity\"/></p:privilege>",
			want:    Privilege{NS: NSPrivilege2, Presence: "managed_entity"},
			found:   true,
			granted: true,
		},
		{
			name:  "the first of two counts",
			inner: "<privilege xmlns='urn:xmpp:privilege:1'/><privilege xmlns='urn:xmpp:privilege:2'><perm access='presence' type='roster'/></privilege>",
			want:  Privilege{NS: NSPrivilege1},
			found: true,
		},
		{
			name:  "what follows it does not matter",
			inner: "<privilege xmlns='urn:xmpp:privilege:2'><perm access='roster' type='set'/></privilege><unclosed>",
			want:  Privilege{NS: NSPrivilege2, Roster: "set"},
			found: true,
		},
		{name: "another namespace", inner: "<privilege xmlns='urn:xmpp:privilege:3'><perm access='presence' type='roster'/></privilege>"},
		{name: "no namespace", inner: "<privilege><perm access='presence' type='roster'/></privilege>"},
		{name: "nested", inner: "<forwarded xmlns='urn:xmpp:forward:0'><privilege xmlns='urn:xmpp:privilege:2'/></forwarded>"},
		{name: "other children only", inner: "<body>privilege</body>"},
		{name: "empty", inner: ""},
		{name: "garbage", inner: "<<<privilege xmlns='urn:xmpp:privilege:2'/>"},
		{name: "unclosed", inner: "<privilege xmlns='urn:xmpp:privilege:2'><perm access='presence' type='roster'/>"},
		{name: "broken inside", inner: "<privilege xmlns='urn:xmpp:privilege:2'><perm access='presence' type='roster'></privilege>"},
		{name: "broken before", inner: "<x></y><privilege xmlns='urn:xmpp:privilege:2'/>"},
	}
	for _, tt := range tests {
		got, found := ParsePrivilege([]byte(tt.inner))
		if found != tt.found || got != tt.want {
			t.Errorf("%s: ParsePrivilege = %+v, %v; want %+v, %v", tt.name, got, found, tt.want, tt.found)
		}
		if got.PresenceGranted() != tt.granted {
			t.Errorf("%s: PresenceGranted = %v", tt.name, got.PresenceGranted())
		}
	}
}

func TestPresenceGranted(t *testing.T) {
	for presence, want := range map[string]bool{
		"managed_entity": true, "roster": true, "none": false, "": false, "Roster": false, " roster": false,
	} {
		if got := (Privilege{NS: NSPrivilege2, Presence: presence}).PresenceGranted(); got != want {
			t.Errorf("PresenceGranted with %q = %v, want %v", presence, got, want)
		}
	}
}

func TestParsePrivilegeDeep(t *testing.T) {
	const depth = 100000
	inner := strings.Repeat("<a>", depth) + strings.Repeat("</a>", depth) + "<privilege xmlns='urn:xmpp:privilege:2'><perm access='presence' type='roster'/></privilege>"
	if p, ok := ParsePrivilege([]byte(inner)); !ok || p.Presence != "roster" {
		t.Errorf("after deep nesting: %+v, %v", p, ok)
	}
	if p, ok := ParsePrivilege([]byte(strings.Repeat("<privilege xmlns='urn:xmpp:privilege:2'><perm>", depth))); ok {
		t.Errorf("unclosed deep nesting: %+v, found", p)
	}
}
