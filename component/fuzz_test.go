package component_test

import (
	"context"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/component"
)

// FuzzParseError: any inner XML of an error stanza gives a usable
// *StanzaError, never a panic.
func FuzzParseError(f *testing.F) {
	const st = " xmlns='" + nsStanzas + "'"
	for _, s := range []string{
		"",
		"<error type='cancel'><conflict" + st + "/><text" + st + ">Field does not match: max_items</text><precondition-not-met xmlns='http://jabber.org/protocol/pubsub#errors'/></error>",
		"<pubsub xmlns='http://jabber.org/protocol/pubsub'/><error type='modify'><bad-request" + st + "/></error>",
		"<error><text" + st + ">only text</text></error>",
		"<error type='auth'><forbidden" + st + "/><text" + st + " xml:lang='en'>x</text></error><error type='cancel'/>",
		"<error",
		"text only & <b>",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, inner []byte) {
		e := component.ParseError(inner)
		if e == nil || e.Condition == "" {
			t.Fatalf("ParseError(%q) = %+v", inner, e)
		}
		_ = e.Error()
	})
}

// FuzzInbound feeds arbitrary bytes to an authenticated stream, then drops
// the connection: the Conn must not panic and must end.
func FuzzInbound(f *testing.F) {
	to := " to='" + compName + "'"
	for _, s := range []string{
		"<presence from='bob@localhost/r1'" + to + "><priority>999</priority><show>bogus</show></presence>",
		"  <message from='a@localhost'" + to + " type='chat'><body>hi &amp; bye</body></message>\n",
		"<iq type='get' id='1' from='localhost'" + to + "><ping xmlns='urn:xmpp:ping'/></iq>",
		"<iq type='get' id='2' from='localhost'" + to + "><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
		"<iq type='result' id='nope' from='localhost'" + to + "/>",
		"<iq type='set' id='3'" + to + "/>",
		streamError("conflict", "x"),
		"<stream:error><bogus/></stream:error>",
		"</stream:stream>",
		"<presence><unclosed></presence>",
		"<presence from='&bogus;'/>",
		"<a:b xmlns:a='urn:x'/><c/>",
		"<?pi x?><!-- c --><presence/>",
		"<!DOCTYPE x [<!ENTITY a 'b'>]><presence/>",
		"\x00\xff",
	} {
		f.Add([]byte(s))
	}
	srv := newFakeServer(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		c, err := component.Dial(ctx, srv.config())
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		defer c.Close()
		sc := srv.Conn(t)
		_ = sc.Write(string(data))
		sc.Close()
		timeout := time.After(wait)
		for {
			select {
			case <-c.Inbound():
				continue
			case <-c.Done():
			case <-timeout:
				t.Fatalf("the Conn did not end after EOF (input %q)", data)
			}
			break
		}
		if c.Err() == nil {
			t.Fatal("Done closed with a nil Err()")
		}
	})
}
