package presence

import (
	"errors"
	"testing"

	"github.com/pubpresence/pubpresence/internal/xmpp"
)

// The JID rules are tested in internal/xmpp; presence adds the
// MalformedError that its callers count by reason.
func TestParseJIDMalformed(t *testing.T) {
	j, err := ParseJID("Alice@Example.org/r")
	if err != nil || j != (JID{Local: "alice", Domain: "example.org", Resource: "r"}) {
		t.Fatalf("ParseJID = %+v, %v", j, err)
	}
	_, err = ParseJID("alice@")
	var me *MalformedError
	var je *xmpp.JIDError
	if !errors.As(err, &me) || me.Reason != "jid" || !errors.As(err, &je) {
		t.Fatalf("ParseJID(alice@): %v, want a *MalformedError jid wrapping a *xmpp.JIDError", err)
	}
	if got := err.Error(); got != `malformed jid: "alice@": empty domain` {
		t.Errorf("message %q", got)
	}
}
