//go:build integration

package integration

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/component"
	"github.com/pubpresence/pubpresence/internal/c2s"
	"github.com/pubpresence/pubpresence/internal/testserver"
	"github.com/pubpresence/pubpresence/internal/xmpp"
	"github.com/pubpresence/pubpresence/pubsub"
)

const c2sPassword = "pw-Ünï"

// login dials user@Domain with an optional resource and mechanism.
func login(t *testing.T, s *testserver.Server, user, resource, mech string) *c2s.Client {
	t.Helper()
	c, err := c2s.Dial(context.Background(), c2s.Config{
		Addr: s.C2SAddr, JID: user + "@" + s.Domain, Password: c2sPassword,
		Resource: resource, Mechanism: mech, Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatalf("login %s/%s: %v", user, resource, err)
	}
	t.Cleanup(func() { c.Abort() })
	return c
}

// waitStanza reads c's stanzas until match holds, for at most 5 s.
func waitStanza(t *testing.T, c *c2s.Client, what string, match func(c2s.Stanza) bool) c2s.Stanza {
	t.Helper()
	timeout := time.After(5 * time.Second)
	var seen []string
	for {
		select {
		case st, ok := <-c.Stanzas():
			if !ok {
				t.Fatalf("%s: waiting for %s: stream ended: %v", c.JID(), what, c.Err())
			}
			if match(st) {
				return st
			}
			seen = append(seen, string(st.Raw))
		case <-timeout:
			t.Fatalf("%s: no %s within 5 s; saw:\n%s", c.JID(), what, strings.Join(seen, "\n"))
		}
	}
}

func presenceFrom(from, typ string) func(c2s.Stanza) bool {
	return func(st c2s.Stanza) bool { return st.Name == "presence" && st.From == from && st.Type == typ }
}

// sameXML reports whether a and b are the same XML up to attribute order
// and quoting.
func sameXML(a, b string) bool {
	canon := func(s string) string {
		var out strings.Builder
		dec := xml.NewDecoder(strings.NewReader(s))
		for {
			tok, err := dec.Token()
			if err == io.EOF {
				return out.String()
			}
			if err != nil {
				return "error: " + err.Error()
			}
			switch t := tok.(type) {
			case xml.StartElement:
				attrs := make([]string, 0, len(t.Attr))
				for _, a := range t.Attr {
					attrs = append(attrs, a.Name.Space+":"+a.Name.Local+"="+a.Value)
				}
				sort.Strings(attrs)
				fmt.Fprintf(&out, "<{%s}%s %v>", t.Name.Space, t.Name.Local, attrs)
			case xml.EndElement:
				out.WriteString("</>")
			case xml.CharData:
				fmt.Fprintf(&out, "%q", t)
			}
		}
	}
	return canon(a) == canon(b)
}

func startServer(t *testing.T, start startFunc, users ...string) *testserver.Server {
	t.Helper()
	s := start(t)
	if err := s.CreateUsers(users, c2sPassword); err != nil {
		t.Fatal(err)
	}
	return s
}

// befriend makes a and b mutual contacts ("both") with pre-approval, both
// having sent initial presence, and waits until each sees the other online.
func befriend(t *testing.T, a, b *c2s.Client) {
	t.Helper()
	for _, c := range []*c2s.Client{a, b} {
		if err := c.Presence("", "", 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.ApproveAndSubscribe(b.Bare()); err != nil {
		t.Fatal(err)
	}
	waitStanza(t, b, "subscribe from "+a.Bare(), presenceFrom(a.Bare(), "subscribe"))
	if err := b.ApproveAndSubscribe(a.Bare()); err != nil {
		t.Fatal(err)
	}
	waitStanza(t, a, "presence of "+b.JID(), presenceFrom(b.JID(), ""))
	waitStanza(t, b, "presence of "+a.JID(), presenceFrom(a.JID(), ""))
}

func TestIntegrationLogin(t *testing.T) {
	eachServer(t, func(t *testing.T, start startFunc) {
		s := startServer(t, start, "alice")
		// PLAIN is refused in the clear, and ejabberd alone offers
		// SCRAM-SHA-256: TestIntegrationSASL has them.
		for _, mech := range []string{c2s.MechSCRAMSHA1, ""} {
			t.Run("mech="+mech, func(t *testing.T) {
				c := login(t, s, "alice", "res-"+mech, mech)
				if want := "alice@" + s.Domain + "/res-" + mech; c.JID() != want {
					t.Fatalf("JID = %q, want %q", c.JID(), want)
				}
				if _, err := c.IQ(context.Background(), "get", s.Domain, []byte("<ping xmlns='urn:xmpp:ping'/>")); err != nil {
					t.Fatalf("ping the server: %v", err)
				}
				if err := c.Close(); err != nil {
					t.Fatal(err)
				}
				if err := c.Err(); err != nil {
					t.Fatalf("Err after Close = %v", err)
				}
			})
		}
		t.Run("server picks resource", func(t *testing.T) {
			c := login(t, s, "alice", "", "")
			if !strings.HasPrefix(c.JID(), "alice@"+s.Domain+"/") || len(c.JID()) <= len("alice@"+s.Domain+"/") {
				t.Fatalf("JID = %q", c.JID())
			}
		})
		for _, mech := range []string{c2s.MechSCRAMSHA1, ""} {
			t.Run("wrong password "+mech, func(t *testing.T) {
				_, err := c2s.Dial(context.Background(), c2s.Config{Addr: s.C2SAddr, JID: "alice@" + s.Domain, Password: "wrong", Mechanism: mech})
				var ae *c2s.AuthError
				if !errors.As(err, &ae) || ae.Condition != "not-authorized" {
					t.Fatalf("err = %v, want SASL not-authorized", err)
				}
			})
		}
	})
}

func TestIntegrationTwoResources(t *testing.T) {
	eachServer(t, func(t *testing.T, start startFunc) {
		s := startServer(t, start, "alice")
		r1 := login(t, s, "alice", "r1", "")
		r2 := login(t, s, "alice", "r2", c2s.MechSCRAMSHA1)
		if r1.JID() == r2.JID() {
			t.Fatalf("both sessions bound %q", r1.JID())
		}
		if err := r1.Presence("", "", 0); err != nil {
			t.Fatal(err)
		}
		if err := r2.Presence("dnd", "busy", 7); err != nil {
			t.Fatal(err)
		}
		st := waitStanza(t, r1, "presence of r2", presenceFrom(r2.JID(), ""))
		if show, status, prio := st.PresenceDetails(); show != "dnd" || status != "busy" || prio != 7 {
			t.Errorf("r1 saw r2 as %q %q %d", show, status, prio)
		}
		// One session answers pings and disco#info from the other, and refuses
		// what it does not implement.
		ctx := context.Background()
		if _, err := r2.IQ(ctx, "get", r1.JID(), []byte("<ping xmlns='urn:xmpp:ping'/>")); err != nil {
			t.Errorf("ping r1: %v", err)
		}
		inner, err := r2.IQ(ctx, "get", r1.JID(), []byte("<query xmlns='http://jabber.org/protocol/disco#info'/>"))
		if err != nil || !strings.Contains(string(inner), "urn:xmpp:ping") {
			t.Errorf("disco#info r1: %q %v", inner, err)
		}
		if _, err := r2.IQ(ctx, "get", r1.JID(), []byte("<query xmlns='jabber:iq:version'/>")); !errors.Is(err, xmpp.ErrServiceUnavailable) {
			t.Errorf("version r1: %v, want service-unavailable", err)
		}
	})
}

func TestIntegrationPresenceAfterMutualSubscription(t *testing.T) {
	eachServer(t, func(t *testing.T, start startFunc) {
		s := startServer(t, start, "alice", "bob")
		alice := login(t, s, "alice", "home", "")
		bob := login(t, s, "bob", "desk", "")
		befriend(t, alice, bob)
		if err := bob.Presence("away", "at lunch", -5); err != nil {
			t.Fatal(err)
		}
		st := waitStanza(t, alice, "bob's away", func(st c2s.Stanza) bool {
			show, _, _ := st.PresenceDetails()
			return presenceFrom(bob.JID(), "")(st) && show == "away"
		})
		if _, status, prio := st.PresenceDetails(); status != "at lunch" || prio != -5 {
			t.Errorf("alice saw status %q priority %d", status, prio)
		}
		// A second resource of bob's shows up as its own full JID.
		bob2 := login(t, s, "bob", "phone", "")
		if err := bob2.Presence("xa", "", 0); err != nil {
			t.Fatal(err)
		}
		waitStanza(t, alice, "bob's phone", presenceFrom(bob2.JID(), ""))
	})
}

func TestIntegrationIQErrors(t *testing.T) {
	eachServer(t, func(t *testing.T, start startFunc) {
		s := startServer(t, start, "alice")
		c := login(t, s, "alice", "r", "")
		ctx := context.Background()
		tests := []struct {
			name, typ, to, payload string
			errType                string
			condition              xmpp.Condition
		}{
			{"items of a missing node", "get", s.Pubsub, string(pubsub.ItemsRequest(nil, "no/such/node")), "cancel", xmpp.ErrItemNotFound},
			{"user runs an admin command", "set", s.Domain, "<command xmlns='http://jabber.org/protocol/commands' action='execute' node='http://jabber.org/protocol/admin#get-online-users-list'/>", "auth", xmpp.ErrForbidden},
			{"unknown namespace", "get", s.Domain, "<query xmlns='urn:example:nothing'/>", "cancel", xmpp.ErrServiceUnavailable},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := c.IQ(ctx, tt.typ, tt.to, []byte(tt.payload))
				var ie *xmpp.StanzaError
				if !errors.As(err, &ie) {
					t.Fatalf("err = %v, want an *xmpp.StanzaError", err)
				}
				if ie.Type != tt.errType || ie.Condition != tt.condition {
					t.Fatalf("error %s/%s, want %s/%s (%v)", ie.Type, ie.Condition, tt.errType, tt.condition, err)
				}
			})
		}
		expired, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
		defer cancel()
		if _, err := c.IQ(expired, "get", s.Domain, []byte("<ping xmlns='urn:xmpp:ping'/>")); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("expired ctx: %v", err)
		}
		if _, err := c.IQ(ctx, "get", s.Domain, []byte("<ping xmlns='urn:xmpp:ping'/>")); err != nil {
			t.Errorf("ping after an abandoned IQ: %v", err)
		}
	})
}

func TestIntegrationCloseAndAbortSeenAsUnavailable(t *testing.T) {
	eachServer(t, func(t *testing.T, start startFunc) {
		s := startServer(t, start, "alice", "bob")
		alice := login(t, s, "alice", "watch", "")
		bob1 := login(t, s, "bob", "polite", "")
		befriend(t, alice, bob1)
		bob2 := login(t, s, "bob", "crash", "")
		if err := bob2.Presence("", "", 0); err != nil {
			t.Fatal(err)
		}
		waitStanza(t, alice, "presence of "+bob2.JID(), presenceFrom(bob2.JID(), ""))

		if err := bob1.Close(); err != nil {
			t.Fatal(err)
		}
		waitStanza(t, alice, "unavailable of "+bob1.JID(), presenceFrom(bob1.JID(), "unavailable"))
		if err := bob2.Abort(); err != nil {
			t.Fatal(err)
		}
		waitStanza(t, alice, "unavailable of "+bob2.JID(), presenceFrom(bob2.JID(), "unavailable"))
		for _, b := range []*c2s.Client{bob1, bob2} {
			select {
			case <-b.Done():
			default:
				t.Errorf("%s: Done not closed", b.JID())
			}
		}
	})
}

// TestIntegrationPubsub has the component (an admin) create and fill nodes,
// and a user subscribe, fetch items and receive notifications.
func TestIntegrationPubsub(t *testing.T) {
	eachServer(t, func(t *testing.T, start startFunc) {
		s := startServer(t, start, "alice")
		ctx := context.Background()
		comp, err := component.Dial(ctx, component.Config{Address: s.ComponentAddr, Name: s.Component, Secret: s.Secret})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { comp.Close() })
		owner := func(payload string) {
			t.Helper()
			if _, err := comp.IQ(ctx, "set", s.Pubsub, []byte("<pubsub xmlns='http://jabber.org/protocol/pubsub'>"+payload+"</pubsub>")); err != nil {
				t.Fatalf("component: %s: %v", payload, err)
			}
		}
		config := func(fields map[string]string) string {
			f := "<configure><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>" +
				"<value>http://jabber.org/protocol/pubsub#node_config</value></field>"
			for k, v := range fields {
				f += "<field var='" + k + "'><value>" + v + "</value></field>"
			}
			return f + "</x></configure>"
		}
		// never: ejabberd's default sends the last item on subscription.
		owner("<create node='t/actual'/>" + config(map[string]string{"pubsub#access_model": "open", "pubsub#max_items": "max",
			"pubsub#send_last_published_item": "never"}))
		owner("<create node='t/status'/>" + config(map[string]string{"pubsub#access_model": "open", "pubsub#max_items": "1",
			"pubsub#send_last_published_item": "on_sub"}))
		user := func(id string) string {
			return "<user xmlns='urn:pubpresence:0' status='away' name='a@b' fulljid='" + id + "'><text>x &amp; y</text></user>"
		}
		status := "<x xmlns='jabber:x:data' type='result'><field var='pubpresence#status'><value>init</value></field></x>"
		for _, id := range []string{"a@b/1", "a@b/2", "a@b/3"} {
			owner("<publish node='t/actual'><item id='" + id + "'>" + user(id) + "</item></publish>")
		}
		owner("<publish node='t/actual'><item id='a@b/1'>" + user("a@b/1") + "</item></publish>") // moves to the end
		owner("<publish node='t/status'><item id='current'>" + status + "</item></publish>")

		alice := login(t, s, "alice", "sub", "")
		items, err := alice.Items(ctx, s.Pubsub, "t/actual")
		if err != nil {
			t.Fatal(err)
		}
		// The order differs: Prosody moves a republished item to the end,
		// ejabberd keeps it in place.
		var ids []string
		payloads := map[string]string{}
		for _, it := range items {
			ids = append(ids, it.ID)
			payloads[it.ID] = string(it.Payload)
		}
		sort.Strings(ids)
		if got := strings.Join(ids, " "); got != "a@b/1 a@b/2 a@b/3" {
			t.Fatalf("items = %q", got)
		}
		if got := payloads["a@b/1"]; !sameXML(got, user("a@b/1")) {
			t.Errorf("payload = %q, want %q", got, user("a@b/1"))
		}

		isEvent := func(node string) func(c2s.Stanza) bool {
			return func(st c2s.Stanza) bool {
				ev, ok := st.Event()
				return ok && ev.Node == node && st.From == s.Pubsub
			}
		}
		if err := alice.Subscribe(ctx, s.Pubsub, "t/status"); err != nil {
			t.Fatal(err)
		}
		st := waitStanza(t, alice, "the status item on subscription", isEvent("t/status"))
		if ev, _ := st.Event(); len(ev.Items) != 1 || !sameXML(string(ev.Items[0].Payload), status) {
			t.Errorf("on_sub event = %+v", ev)
		}
		if err := alice.Subscribe(ctx, s.Pubsub, "t/actual"); err != nil {
			t.Fatal(err)
		}
		owner("<publish node='t/actual'><item id='a@b/4'>" + user("a@b/4") + "</item></publish>")
		st = waitStanza(t, alice, "the publish notification", isEvent("t/actual"))
		if ev, _ := st.Event(); len(ev.Items) != 1 || ev.Items[0].ID != "a@b/4" || ev.Items[0].Retract || !sameXML(string(ev.Items[0].Payload), user("a@b/4")) {
			t.Errorf("publish event = %+v", ev)
		}
		owner("<retract node='t/actual' notify='true'><item id='a@b/2'/></retract>")
		st = waitStanza(t, alice, "the retract notification", isEvent("t/actual"))
		if ev, _ := st.Event(); len(ev.Items) != 1 || ev.Items[0].ID != "a@b/2" || !ev.Items[0].Retract {
			t.Errorf("retract event = %+v", ev)
		}
		if err := alice.Unsubscribe(ctx, s.Pubsub, "t/actual"); err != nil {
			t.Fatal(err)
		}
		if err := alice.Subscribe(ctx, s.Pubsub, "no/such/node"); !errors.Is(err, xmpp.ErrItemNotFound) {
			t.Errorf("subscribe to a missing node: %v", err)
		}
	})
}
