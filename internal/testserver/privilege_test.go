//go:build integration

package testserver

import (
	"context"
	"encoding/xml"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/internal/c2s"
)

// componentStanza is what the privilege tests read of a stanza the server
// sends the component.
type componentStanza struct {
	XMLName   xml.Name
	From      string `xml:"from,attr"`
	Type      string `xml:"type,attr"`
	Show      string `xml:"show"`
	Status    string `xml:"status"`
	Privilege *struct {
		XMLName xml.Name
		Perms   []struct {
			Access string `xml:"access,attr"`
			Type   string `xml:"type,attr"`
		} `xml:"perm"`
	} `xml:"privilege"`
}

// next reads the next stanza within d; ok is false when none came in time.
// After that, c's decoder keeps the timeout: read nothing more from it.
func next(t *testing.T, c *componentConn, d time.Duration) (st componentStanza, ok bool) {
	t.Helper()
	if err := c.conn.SetReadDeadline(time.Now().Add(d)); err != nil {
		t.Fatal(err)
	}
	start, err := c.nextElement()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return st, false
	}
	if err != nil {
		t.Fatalf("component stream: %v", err)
	}
	if err := c.dec.DecodeElement(&st, &start); err != nil {
		t.Fatalf("component stream: %v", err)
	}
	return st, true
}

// waitStanza reads stanzas for up to d until match accepts one, and fails
// the test when none does.
func waitStanza(t *testing.T, c *componentConn, d time.Duration, what string, match func(componentStanza) bool) componentStanza {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		st, ok := next(t, c, time.Until(deadline))
		if !ok {
			t.Fatalf("no %s within %v", what, d)
		}
		if match(st) {
			return st
		}
		t.Logf("also got <%s from='%s' type='%s'/>", st.XMLName.Local, st.From, st.Type)
	}
}

// loginUser logs local@Domain in (with an empty roster) and drains what
// the session receives.
func loginUser(t *testing.T, s *Server, local, resource string) *c2s.Client {
	t.Helper()
	cl, err := c2s.Dial(context.Background(), c2s.Config{Addr: s.C2SAddr, JID: local + "@" + s.Domain, Password: "pw", Resource: resource})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range cl.Stanzas() {
		}
	}()
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// TestIntegrationPrivilege: with WithPrivilege the server tells the
// component, after its handshake, that it holds the presence permission
// managed_entity (and roster get), and forwards the presence of a user
// whose roster is empty.
func TestIntegrationPrivilege(t *testing.T) {
	cases := []struct {
		name string
		kind Kind
		opts []Option
	}{
		{"prosody", Prosody, []Option{WithPrivilege()}},
		// One modules_enabled in the VirtualHost for both modules.
		{"prosody with shared roster", Prosody, []Option{WithPrivilege(), WithSharedRoster()}},
		{"ejabberd", Ejabberd, []Option{WithPrivilege()}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := Start(t, tc.kind, tc.opts...)
			if err := s.CreateUsers([]string{"alice"}, "pw"); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"managed_entity", "privilege"} {
				if !strings.Contains(s.ConfigSnippet(), want) {
					t.Errorf("ConfigSnippet lacks %q", want)
				}
			}
			c, err := dialComponent(s.ComponentAddr, s.Component, s.Secret, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.close()
			began := time.Now()
			priv := waitStanza(t, c, 5*time.Second, "<privilege/> message", func(st componentStanza) bool {
				return st.XMLName.Local == "message" && st.Privilege != nil
			})
			ns := priv.Privilege.XMLName.Space
			t.Logf("<privilege xmlns='%s'/> from %s, %v after the handshake", ns, priv.From, time.Since(began).Round(time.Microsecond))
			if !strings.HasPrefix(ns, "urn:xmpp:privilege:") || priv.From != s.Domain {
				t.Errorf("privilege message from %q in %q, want from %s in urn:xmpp:privilege:N", priv.From, ns, s.Domain)
			}
			perms := make(map[string]string)
			for _, p := range priv.Privilege.Perms {
				perms[p.Access] = p.Type
			}
			if perms["presence"] != "managed_entity" || perms["roster"] != "get" {
				t.Errorf("perms %v, want presence managed_entity and roster get", perms)
			}

			alice := loginUser(t, s, "alice", "desk")
			if s.opts.sharedRoster {
				roster, err := alice.IQ(context.Background(), "get", "", []byte("<query xmlns='jabber:iq:roster'/>"))
				if err != nil || !strings.Contains(string(roster), s.Component) {
					t.Errorf("alice's roster lacks the component of the shared roster: %s, %v", roster, err)
				}
			}
			if err := alice.Presence("away", "privileged", 2); err != nil {
				t.Fatal(err)
			}
			p := waitStanza(t, c, 5*time.Second, "presence of alice", func(st componentStanza) bool {
				return st.XMLName.Local == "presence" && st.From == "alice@localhost/desk"
			})
			if p.Type != "" || p.Show != "away" || p.Status != "privileged" {
				t.Errorf("forwarded presence: type %q show %q status %q, want available, away, privileged", p.Type, p.Show, p.Status)
			}
		})
	}
}

// TestIntegrationProsodyPrivilegeMisconfigured: privileged_entities in the
// Component section, the module loaded on both: Prosody sends the component
// nothing at all, and logs nothing about it above info.
func TestIntegrationProsodyPrivilegeMisconfigured(t *testing.T) {
	s := StartProsody(t, WithPrivilegeMisconfigured())
	if err := s.CreateUsers([]string{"alice"}, "pw"); err != nil {
		t.Fatal(err)
	}
	c, err := dialComponent(s.ComponentAddr, s.Component, s.Secret, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	// One wait covers both: the decoder is spent after a read times out.
	// With the module configured right, the privilege message comes
	// within a millisecond of the handshake and the presence within a few.
	alice := loginUser(t, s, "alice", "desk")
	if err := alice.Presence("", "", 0); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if st, ok := next(t, c, 2*time.Second); ok {
		t.Errorf("got <%s from='%s'/>, want nothing: neither a privilege message nor alice's presence", st.XMLName.Local, st.From)
	} else if waited := time.Since(began); waited < 2*time.Second {
		t.Fatalf("the read ended after %v, not the 2 s it was given", waited)
	}
	b, err := os.ReadFile(s.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "privilege") && (strings.Contains(line, "\twarn\t") || strings.Contains(line, "\terror\t")) {
			t.Errorf("Prosody logged: %s", line)
		}
	}
}
