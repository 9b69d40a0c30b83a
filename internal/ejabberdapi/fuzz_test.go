package ejabberdapi

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/pubpresence/pubpresence/internal/xmpp"
)

// FuzzParseConnectedUsersInfo: any body gives either an error and no
// sessions, or sessions with a normalised full JID, a known Show and a
// canonical IP. The seeds in testdata/fuzz are bodies ejabberd 23.01 sent.
func FuzzParseConnectedUsersInfo(f *testing.F) {
	for _, s := range []string{ejabberdStates, ejabberdEmpty, session(""), session(`"ip":"::ffff:192.0.2.7"`), ""} {
		f.Add([]byte(s))
	}
	known := map[string]bool{"": true, "online": true, "chat": true, "away": true, "xa": true, "dnd": true}
	f.Fuzz(func(t *testing.T, b []byte) {
		sessions, err := ParseConnectedUsersInfo(b)
		if err != nil {
			if sessions != nil {
				t.Fatalf("sessions %v with error %v", sessions, err)
			}
			return
		}
		for _, s := range sessions {
			full, err := xmpp.NormalFull(s.JID)
			if err != nil || full != s.JID || xmpp.BareOf(full) == full || !strings.Contains(xmpp.BareOf(full), "@") {
				t.Fatalf("JID %q: not a normal full JID of a user (%v)", s.JID, err)
			}
			if !known[s.Show] {
				t.Fatalf("%s: show %q", s.JID, s.Show)
			}
			if s.IP != "" {
				a, err := netip.ParseAddr(s.IP)
				if err != nil || a.String() != s.IP || a.Is4In6() || a.Zone() != "" {
					t.Fatalf("%s: IP %q is not canonical (%v)", s.JID, s.IP, err)
				}
			}
		}
	})
}
