//go:build integration

package integration

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/internal/c2s"
	"github.com/pubpresence/pubpresence/internal/testserver"
)

// saslprepPassword changes under SASLprep (RFC 4013): U+2168 (Roman
// numeral nine) becomes "IX" (NFKC), the no-break space a space, the soft
// hyphen nothing.
const (
	saslprepPassword = "pw-\u2168\u00a0Ünï\u00ad!"
	saslprepPrepared = "pw-IX Ünï!"
)

// TestIntegrationSASL logs in to each server in the clear and over TLS,
// and checks which SASL mechanism the client negotiates unforced, what
// each forced mechanism gives, that PLAIN in the clear is refused by the
// client, and that a password that SASLprep changes works with SCRAM
// (prepared by the client) and with PLAIN (sent as typed: ejabberd refuses
// it prepared).
func TestIntegrationSASL(t *testing.T) {
	type outcome struct {
		mech string // negotiated; "" when refused
		err  error  // errors.Is, when refused on the client's side
		cond string // the SASL <failure/> condition, when the server refuses
		text string // a part of the error otherwise
	}
	ok := func(m string) outcome { return outcome{mech: m} }
	notOffered := outcome{text: "does not offer SASL"}
	// What each server does, as this test found: Prosody 0.12 with
	// internal_hashed offers PLAIN and SCRAM-SHA-1, plus SCRAM-SHA-1-PLUS
	// on TLS 1.2 only; ejabberd 23.01 with plain password storage offers
	// SCRAM-SHA-1/-256/-512, PLAIN, DIGEST-MD5 and X-OAUTH2, and the -PLUS
	// variants on any TLS (it verifies tls-unique only: see
	// chooseMechanism in internal/c2s/sasl.go).
	want := map[string]map[bool]map[string]outcome{
		"prosody": {
			false: {
				"":                      ok(c2s.MechSCRAMSHA1),
				c2s.MechSCRAMSHA256:     notOffered,
				c2s.MechSCRAMSHA1:       ok(c2s.MechSCRAMSHA1),
				c2s.MechPlain:           {err: c2s.ErrPlainWithoutTLS},
				c2s.MechSCRAMSHA256Plus: {err: c2s.ErrChannelBinding},
				c2s.MechSCRAMSHA1Plus:   {err: c2s.ErrChannelBinding},
			},
			true: {
				"":                      ok(c2s.MechSCRAMSHA1),
				c2s.MechSCRAMSHA256:     notOffered,
				c2s.MechSCRAMSHA1:       ok(c2s.MechSCRAMSHA1),
				c2s.MechPlain:           ok(c2s.MechPlain),
				c2s.MechSCRAMSHA256Plus: notOffered,
				c2s.MechSCRAMSHA1Plus:   notOffered, // not on TLS 1.3
			},
		},
		"ejabberd": {
			false: {
				"":                      ok(c2s.MechSCRAMSHA256),
				c2s.MechSCRAMSHA256:     ok(c2s.MechSCRAMSHA256),
				c2s.MechSCRAMSHA1:       ok(c2s.MechSCRAMSHA1),
				c2s.MechPlain:           {err: c2s.ErrPlainWithoutTLS},
				c2s.MechSCRAMSHA256Plus: {err: c2s.ErrChannelBinding},
				c2s.MechSCRAMSHA1Plus:   {err: c2s.ErrChannelBinding},
			},
			true: {
				"":                  ok(c2s.MechSCRAMSHA256),
				c2s.MechSCRAMSHA256: ok(c2s.MechSCRAMSHA256),
				c2s.MechSCRAMSHA1:   ok(c2s.MechSCRAMSHA1),
				c2s.MechPlain:       ok(c2s.MechPlain),
				// Offered, but ejabberd 23.01 refuses our tls-exporter binding.
				c2s.MechSCRAMSHA256Plus: {cond: "not-authorized", text: "Invalid channel binding"},
				c2s.MechSCRAMSHA1Plus:   {cond: "not-authorized", text: "Invalid channel binding"},
			},
		},
	}
	order := []string{"", c2s.MechSCRAMSHA256, c2s.MechSCRAMSHA1, c2s.MechPlain, c2s.MechSCRAMSHA256Plus, c2s.MechSCRAMSHA1Plus}
	for _, srv := range servers {
		for _, withTLS := range []bool{false, true} {
			transport := "clear"
			var opts []testserver.Option
			if withTLS {
				transport = "tls"
				opts = append(opts, testserver.WithTLS())
			}
			t.Run(srv.name+"/"+transport, func(t *testing.T) {
				s := srv.start(t, opts...)
				if err := s.CreateUsers([]string{"alice"}, c2sPassword); err != nil {
					t.Fatal(err)
				}
				if err := s.CreateUsers([]string{"prep"}, saslprepPassword); err != nil {
					t.Fatal(err)
				}
				dial := func(user, password, mech string) (*c2s.Client, error) {
					c, err := c2s.Dial(context.Background(), c2s.Config{Addr: s.C2SAddr, JID: user + "@" + s.Domain,
						Password: password, Mechanism: mech, Timeout: 15 * time.Second, TLS: s.TLSConfig()})
					if err == nil {
						t.Cleanup(func() { c.Abort() })
					}
					return c, err
				}
				for _, mech := range order {
					w := want[srv.name][withTLS][mech]
					name := mech
					if name == "" {
						name = "unforced"
					}
					t.Run(name, func(t *testing.T) {
						c, err := dial("alice", c2sPassword, mech)
						if w.mech != "" {
							if err != nil {
								t.Fatalf("login: %v", err)
							}
							t.Logf("%s, %s, %s: negotiated %s", srv.name, transport, name, c.Mechanism())
							if c.Mechanism() != w.mech {
								t.Errorf("negotiated %s, want %s", c.Mechanism(), w.mech)
							}
							if _, err := c.IQ(context.Background(), "get", s.Domain, []byte("<ping xmlns='urn:xmpp:ping'/>")); err != nil {
								t.Errorf("ping after login: %v", err)
							}
							return
						}
						if err == nil {
							t.Fatalf("logged in with %s, want a refusal", c.Mechanism())
						}
						t.Logf("%s, %s, %s: refused as wanted: %v", srv.name, transport, name, err)
						var ae *c2s.AuthError
						if w.err != nil && !errors.Is(err, w.err) {
							t.Errorf("err = %v, want %v", err, w.err)
						}
						if w.cond != "" && (!errors.As(err, &ae) || ae.Condition != w.cond) {
							t.Errorf("err = %v, want a SASL failure %s", err, w.cond)
						}
						if !strings.Contains(err.Error(), w.text) {
							t.Errorf("err = %v, want %q", err, w.text)
						}
					})
				}

				if withTLS {
					// On TLS 1.2 both servers offer SCRAM-SHA-1-PLUS (with
					// tls-unique), which the client leaves out.
					t.Run("TLS 1.2", func(t *testing.T) {
						tc := s.TLSConfig()
						tc.MaxVersion = tls.VersionTLS12
						cfg := c2s.Config{Addr: s.C2SAddr, JID: "alice@" + s.Domain, Password: c2sPassword, Timeout: 15 * time.Second, TLS: tc}
						c, err := c2s.Dial(context.Background(), cfg)
						if err != nil {
							t.Fatalf("login: %v", err)
						}
						defer c.Abort()
						t.Logf("%s, TLS 1.2, unforced: negotiated %s", srv.name, c.Mechanism())
						if w := want[srv.name][true][""].mech; c.Mechanism() != w {
							t.Errorf("negotiated %s, want %s", c.Mechanism(), w)
						}
						cfg.Mechanism = c2s.MechSCRAMSHA1Plus
						_, err = c2s.Dial(context.Background(), cfg)
						if !errors.Is(err, c2s.ErrChannelBinding) {
							t.Fatalf("SCRAM-SHA-1-PLUS on TLS 1.2: err = %v, want ErrChannelBinding", err)
						}
						t.Logf("%s, TLS 1.2, SCRAM-SHA-1-PLUS: refused as wanted: %v", srv.name, err)
					})
				}

				t.Run("wrong password", func(t *testing.T) {
					_, err := dial("alice", "wrong", "")
					var ae *c2s.AuthError
					if !errors.As(err, &ae) || ae.Condition != "not-authorized" {
						t.Fatalf("err = %v, want SASL not-authorized", err)
					}
				})

				// SASLprep: SCRAM works only if the client prepares the
				// password as the server did (Prosody keeps only the hash of
				// the prepared password); PLAIN sends it as typed.
				mechs := []string{"unforced", c2s.MechSCRAMSHA1}
				if withTLS {
					mechs = append(mechs, c2s.MechPlain)
				}
				for _, mech := range mechs {
					t.Run("SASLprep password "+mech, func(t *testing.T) {
						mech := strings.TrimPrefix(mech, "unforced")
						c, err := dial("prep", saslprepPassword, mech)
						if err != nil {
							t.Fatalf("login with %+q: %v", saslprepPassword, err)
						}
						t.Logf("%s, %s: password %+q accepted with %s", srv.name, transport, saslprepPassword, c.Mechanism())
					})
				}
				if withTLS {
					// Why PLAIN sends the password unprepared: Prosody prepares
					// what it receives, ejabberd compares it with the password
					// it stores as given.
					t.Run("SASLprep password prepared by the user, PLAIN", func(t *testing.T) {
						_, err := dial("prep", saslprepPrepared, c2s.MechPlain)
						t.Logf("%s: PLAIN with %+q: %v", srv.name, saslprepPrepared, err)
						if wantOK := srv.name == "prosody"; (err == nil) != wantOK {
							t.Errorf("err = %v, want success %v", err, wantOK)
						}
					})
				}
			})
		}
	}
}
