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
