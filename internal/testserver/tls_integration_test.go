//go:build integration

package testserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/internal/c2s"
)

// TestIntegrationTLS: a WithTLS server of each kind offers STARTTLS on c2s
// and requires it. A c2s client that trusts the harness's CA logs in (PLAIN
// and SCRAM-SHA-1, on the domain and on an extra host) and exchanges
// subscriptions, presence and a roster query over TLS; one without a TLS
// config is refused before SASL; one that trusts another CA fails the
// handshake with a certificate error. The harness's own component
// connection (users are created through it) still works.
func TestIntegrationTLS(t *testing.T) {
	const other = "other.localhost"
	for _, kind := range Kinds {
		t.Run(string(kind), func(t *testing.T) {
			s := Start(t, kind, WithTLS(), WithHost(other))
			if s.CAFile == "" || s.TLSConfig() == nil {
				t.Fatalf("CAFile = %q, TLSConfig = %v: want both set with WithTLS", s.CAFile, s.TLSConfig())
			}
			if err := s.CreateUsers([]string{"alice", "bob"}, "pw"); err != nil {
				t.Fatal(err)
			}
			if err := s.CreateUsersOn(other, []string{"carol"}, "pw"); err != nil {
				t.Fatal(err)
			}
			if got, cond := rawHandshake(t, s.ComponentAddr, s.Component, s.Secret); got != "handshake" {
				t.Errorf("component handshake on a WithTLS server: got %q (%s)", got, cond)
			}
			dial := func(jid, mech string, tc *tls.Config) (*c2s.Client, error) {
				c, err := c2s.Dial(context.Background(), c2s.Config{Addr: s.C2SAddr, JID: jid, Password: "pw",
					Resource: "tls", Mechanism: mech, Timeout: 15 * time.Second, TLS: tc})
				if err == nil {
					t.Cleanup(func() { c.Abort() })
				}
				return c, err
			}

			t.Run("login and round trip", func(t *testing.T) {
				a, err := dial("alice@"+s.Domain, c2s.MechSCRAMSHA1, s.TLSConfig())
				if err != nil {
					t.Fatalf("login over TLS: %v", err)
				}
				b, err := dial("bob@"+s.Domain, c2s.MechPlain, s.TLSConfig())
				if err != nil {
					t.Fatalf("login over TLS with PLAIN: %v", err)
				}
				for _, c := range []*c2s.Client{a, b} {
					if err := c.Presence("", "", 0); err != nil {
						t.Fatal(err)
					}
				}
				if err := a.ApproveAndSubscribe(b.Bare()); err != nil {
					t.Fatal(err)
				}
				waitFor(t, b, "subscribe from "+a.Bare(), func(st c2s.Stanza) bool {
					return st.Name == "presence" && st.Type == "subscribe" && st.From == a.Bare()
				})
				if err := b.ApproveAndSubscribe(a.Bare()); err != nil {
					t.Fatal(err)
				}
				waitFor(t, a, "presence of "+b.JID(), func(st c2s.Stanza) bool {
					return st.Name == "presence" && st.Type == "" && st.From == b.JID()
				})
				if err := b.Presence("away", "over TLS", 0); err != nil {
					t.Fatal(err)
				}
				waitFor(t, a, "away presence of "+b.JID(), func(st c2s.Stanza) bool {
					return st.Name == "presence" && st.From == b.JID() && strings.Contains(string(st.Inner), "<show>away</show>")
				})
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				roster, err := a.IQ(ctx, "get", "", []byte("<query xmlns='jabber:iq:roster'/>"))
				if err != nil {
					t.Fatalf("roster get over TLS: %v", err)
				}
				if !strings.Contains(string(roster), b.Bare()) || !strings.Contains(string(roster), "both") {
					t.Errorf("roster = %s, want %s with subscription both", roster, b.Bare())
				}
				if err := a.Close(); err != nil {
					t.Errorf("Close over TLS: %v", err)
				}
				if err := a.Err(); err != nil {
					t.Errorf("Err after Close = %v", err)
				}
			})

			t.Run("extra host", func(t *testing.T) {
				tc := s.TLSConfig()
				tc.ServerName = "" // c2s then asks for the JID's domain
				c, err := dial("carol@"+other, "", tc)
				if err != nil {
					t.Fatalf("login over TLS on %s: %v", other, err)
				}
				if !strings.HasPrefix(c.JID(), "carol@"+other+"/") {
					t.Errorf("JID = %q", c.JID())
				}
			})

			t.Run("no TLS config", func(t *testing.T) {
				_, err := dial("alice@"+s.Domain, "", nil)
				if !errors.Is(err, c2s.ErrTLSRequired) {
					t.Fatalf("login without TLS = %v, want c2s.ErrTLSRequired", err)
				}
				t.Logf("refused as wanted: %v", err)
			})

			t.Run("wrong CA", func(t *testing.T) {
				strange, err := writeTLSFiles(t.TempDir(), []string{s.Domain})
				if err != nil {
					t.Fatal(err)
				}
				_, err = dial("alice@"+s.Domain, "", &tls.Config{RootCAs: strange.pool})
				var ua x509.UnknownAuthorityError
				if !errors.As(err, &ua) {
					t.Fatalf("login trusting another CA = %v, want x509.UnknownAuthorityError", err)
				}
				t.Logf("refused as wanted: %v", err)
			})
		})
	}
}

// waitFor reads c's stanzas until match holds, for at most 10 s.
func waitFor(t *testing.T, c *c2s.Client, what string, match func(c2s.Stanza) bool) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	var seen []string
	for {
		select {
		case st, ok := <-c.Stanzas():
			if !ok {
				t.Fatalf("%s: waiting for %s: stream ended: %v", c.JID(), what, c.Err())
			}
			if match(st) {
				return
			}
			seen = append(seen, string(st.Raw))
		case <-timeout:
			t.Fatalf("%s: no %s within 10 s; saw:\n%s", c.JID(), what, strings.Join(seen, "\n"))
		}
	}
}
