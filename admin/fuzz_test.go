package admin

import (
	"net/netip"
	"strings"
	"testing"
)

func FuzzParseOnlineUsers(f *testing.F) {
	for _, s := range []string{prosodyOnlineDetails, prosodyOnlineNoDetails, prosodyOnlineMixed,
		prosodyOnlineEmpty, ejabberdOnline, prosodyForbidden, ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		users, sessions, details, err := ParseOnlineUsers(b)
		if err != nil {
			if users != nil || sessions != nil || details {
				t.Fatalf("results with error %v", err)
			}
			return
		}
		known := make(map[string]bool)
		for _, u := range users {
			if u == "" || u != strings.ToLower(u) || strings.ContainsAny(u, " \t\r\n/") || known[u] {
				t.Fatalf("bad or duplicate user %q", u)
			}
			known[u] = true
		}
		if len(sessions) > 0 && !details {
			t.Fatal("sessions without details")
		}
		for _, s := range sessions {
			checkSession(t, s)
			bare, res, _ := strings.Cut(s.JID, "/")
			if !known[bare] || res == "" {
				t.Fatalf("session %q: unknown user or empty resource", s.JID)
			}
		}
	})
}

func FuzzParseUserStats(f *testing.F) {
	for _, s := range []string{prosodyUserStats, prosodyUserStatsV6, prosodyUserStatsOffline,
		prosodyUserStatsNoUser, ejabberdUserStats, ejabberdUserStatsShort, ejabberdUserStatsOffline,
		ejabberdUserStatsMapped} {
		f.Add([]byte(s), "alice@localhost")
	}
	f.Add([]byte(ejabberdUserStats), "")
	f.Fuzz(func(t *testing.T, b []byte, bare string) {
		sessions, err := ParseUserStats(b, bare)
		if err != nil {
			if sessions != nil {
				t.Fatalf("sessions %v with error %v", sessions, err)
			}
			return
		}
		want, ok := normalizeBare(bare)
		if !ok {
			t.Fatalf("no error for bad JID %q", bare)
		}
		for _, s := range sessions {
			checkSession(t, s)
			if !strings.HasPrefix(s.JID, want+"/") || len(s.JID) == len(want)+1 {
				t.Fatalf("session %q not a resource of %q", s.JID, want)
			}
			if s.Show != "" || s.HasPriority {
				t.Fatalf("user-stats gave show/priority: %+v", s)
			}
		}
	})
}

func FuzzParseAddr(f *testing.F) {
	for _, s := range []string{"1.2.3.4", "::1", "[::1]", "[::1]:5222", "1.2.3.4:5222", "::1:5222",
		"::ffff:1.2.3.4:5222", "fe80::1%eth0", "2001:db8::1:2", "", "garbage", "1.2.3.4:99999", "<unknown>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddr(s)
		if err != nil {
			if a.IsValid() {
				t.Fatalf("valid address %v with error %v", a, err)
			}
			return
		}
		if !a.IsValid() || a.Is4In6() || a.Zone() != "" {
			t.Fatalf("ParseAddr(%q) = %v: not canonical", s, a)
		}
		// The canonical text reads back to the same address.
		if b, err := ParseAddr(a.String()); err != nil || b != a {
			// "::1:2" style text is read as ip:port on the way back; that is
			// the documented ambiguity, so compare with the plain parser.
			if c, err := netip.ParseAddr(a.String()); err != nil || c != a {
				t.Fatalf("%v does not read back: %v, %v", a, b, err)
			}
		}
	})
}

// ejabberdOnlineResources is ejabberd's answer to disco#items of the node
// "online users", as ejabberd 23.01 sends them.
const ejabberdOnlineResources = `<query xmlns="http://jabber.org/protocol/disco#items" node="online users">` +
	`<item name="alice@localhost" jid="alice@localhost/home"/>` +
	`<item name="alice@localhost" jid="alice@localhost/phone"/>` +
	`<item name="bob@localhost" jid="bob@localhost/laptop"/></query>`

// FuzzParseOnlineResources checks that ParseOnlineResources never panics,
// fails with no JIDs, and returns distinct full JIDs with a lower-cased bare
// part and a resource.
func FuzzParseOnlineResources(f *testing.F) {
	for _, s := range []string{
		ejabberdOnlineResources,
		`<query xmlns='http://jabber.org/protocol/disco#items' node='online users'/>`,
		`<query xmlns='http://jabber.org/protocol/disco#items' node='online users'><item jid='Alice@LocalHost/Home'/><item jid='alice@localhost/Home'/><item jid='bob@localhost'/><item jid='bob@localhost/'/><item jid=' @x/r'/><item jid='c@d/a/b'/></query>`,
		`<query xmlns='http://jabber.org/protocol/disco#info'/><query xmlns='http://jabber.org/protocol/disco#items'><item jid='a@b/c'/></query>`,
		`<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>`,
		"",
		`<query xmlns='http://jabber.org/protocol/disco#items'><item jid='a@b/c'>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		jids, err := ParseOnlineResources(b)
		if err != nil {
			if jids != nil {
				t.Fatalf("JIDs %v with error %v", jids, err)
			}
			return
		}
		seen := make(map[string]bool)
		for _, j := range jids {
			bare, res, ok := strings.Cut(j, "/")
			if !ok || res == "" || seen[j] {
				t.Fatalf("%q: no resource, or a duplicate", j)
			}
			if nb, ok := normalizeBare(bare); !ok || nb != bare {
				t.Fatalf("%q: bare part not normalised (%q, %v)", j, nb, ok)
			}
			seen[j] = true
		}
	})
}

// checkSession checks the invariants every parsed Session keeps.
func checkSession(t *testing.T, s Session) {
	t.Helper()
	bare, _, ok := strings.Cut(s.JID, "/")
	if !ok || bare == "" || bare != strings.ToLower(bare) {
		t.Fatalf("bad session JID %q", s.JID)
	}
	if s.Show != "" && !isKnownShow(s.Show) {
		t.Fatalf("unknown show %q", s.Show)
	}
	if !s.HasPriority && s.Priority != 0 {
		t.Fatalf("priority %d without HasPriority", s.Priority)
	}
	if s.IP != "" {
		a, err := netip.ParseAddr(s.IP)
		if err != nil || a.String() != s.IP || a.Is4In6() || a.Zone() != "" {
			t.Fatalf("IP %q not canonical", s.IP)
		}
	}
}
