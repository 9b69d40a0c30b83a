package c2s

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"

	"github.com/pubpresence/pubpresence/internal/xmpptest"
)

// saslOffer is what the fake server offers by default, as Prosody and
// ejabberd do in the clear.
const saslOffer = "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism>" +
	"<mechanism>SCRAM-SHA-1</mechanism><mechanism>SCRAM-SHA-256</mechanism></mechanisms>"

func offer(mechs ...string) string {
	s := "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
	for _, m := range mechs {
		s += "<mechanism>" + m + "</mechanism>"
	}
	return s + "</mechanisms>"
}

// alice is the account the fake server knows, with password as it stores
// it.
func alice(password string) *xmpptest.SASL {
	return &xmpptest.SASL{User: "alice", Password: password}
}

// attrs splits a SCRAM message into its attributes.
func attrs(msg string) map[byte]string {
	m := map[byte]string{}
	for _, f := range strings.Split(msg, ",") {
		if len(f) >= 2 && f[1] == '=' {
			m[f[0]] = f[2:]
		}
	}
	return m
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func unb64(t *testing.T, el *xmpptest.Element) string {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(el.Inner)))
	if err != nil {
		t.Errorf("fake server: <%s> %q: %v", el.Name().Local, el.Inner, err)
	}
	return string(b)
}

const saslSuccess = "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"

func challenge(s string) string {
	return "<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" + b64(s) + "</challenge>"
}

func TestMechanismNames(t *testing.T) {
	want := []string{MechSCRAMSHA256Plus, MechSCRAMSHA256, MechSCRAMSHA1Plus, MechSCRAMSHA1, MechPlain}
	if len(mechanisms) != len(want) {
		t.Fatalf("%d mechanisms, want %d", len(mechanisms), len(want))
	}
	for i, m := range mechanisms {
		if m.Name != want[i] {
			t.Errorf("mechanisms[%d] = %s, want %s", i, m.Name, want[i])
		}
	}
}

func TestChooseMechanism(t *testing.T) {
	all := []string{"DIGEST-MD5", MechPlain, "SCRAM-SHA-512-PLUS", "SCRAM-SHA-512", MechSCRAMSHA256Plus, MechSCRAMSHA256,
		MechSCRAMSHA1Plus, MechSCRAMSHA1, "X-OAUTH2"} // ejabberd 23.01 over TLS
	prosody := []string{MechPlain, MechSCRAMSHA1}
	tls12 := &tls.ConnectionState{Version: tls.VersionTLS12}
	tls13 := &tls.ConnectionState{Version: tls.VersionTLS13}
	exporter := []string{"tls-server-end-point", "tls-exporter"}
	tests := []struct {
		name    string
		offered []string
		forced  string
		cs      *tls.ConnectionState
		cb      []string
		want    string
		wantErr error  // errors.Is
		errText string // or a part of the message
	}{
		{"plain TCP: strongest SCRAM", all, "", nil, nil, MechSCRAMSHA256, nil, ""},
		{"TLS 1.3, no channel-binding types said: no -PLUS", all, "", tls13, nil, MechSCRAMSHA256, nil, ""},
		{"TLS 1.3 with tls-exporter: -PLUS", all, "", tls13, exporter, MechSCRAMSHA256Plus, nil, ""},
		{"TLS 1.3 with tls-unique only", all, "", tls13, []string{"tls-unique"}, MechSCRAMSHA256, nil, ""},
		{"TLS 1.2: no tls-unique", all, "", tls12, []string{"tls-unique", "tls-exporter"}, MechSCRAMSHA256, nil, ""},
		{"SHA-1-PLUS above SHA-1", []string{MechPlain, MechSCRAMSHA1, MechSCRAMSHA1Plus}, "", tls13, exporter, MechSCRAMSHA1Plus, nil, ""},
		{"Prosody in the clear", prosody, "", nil, nil, MechSCRAMSHA1, nil, ""},
		{"Prosody over TLS", prosody, "", tls13, nil, MechSCRAMSHA1, nil, ""},
		{"only PLAIN, over TLS", []string{MechPlain}, "", tls12, nil, MechPlain, nil, ""},
		{"only PLAIN, in the clear", []string{MechPlain, "DIGEST-MD5"}, "", nil, nil, "", ErrPlainWithoutTLS, "offers PLAIN DIGEST-MD5"},
		{"nothing we speak", []string{"DIGEST-MD5", "X-OAUTH2"}, "", tls13, nil, "", nil, "no SASL mechanism this client speaks"},
		{"forced PLAIN in the clear", all, MechPlain, nil, nil, "", ErrPlainWithoutTLS, ""},
		{"forced PLAIN over TLS", all, MechPlain, tls13, nil, MechPlain, nil, ""},
		{"forced SHA-1", all, MechSCRAMSHA1, nil, nil, MechSCRAMSHA1, nil, ""},
		{"forced, not offered", prosody, MechSCRAMSHA256, nil, nil, "", nil, "server does not offer SASL SCRAM-SHA-256"},
		{"forced -PLUS in the clear", all, MechSCRAMSHA1Plus, nil, nil, "", ErrChannelBinding, ""},
		{"forced -PLUS on TLS 1.2", all, MechSCRAMSHA256Plus, tls12, nil, "", ErrChannelBinding, ""},
		{"forced -PLUS on TLS 1.3, types not said", all, MechSCRAMSHA256Plus, tls13, nil, MechSCRAMSHA256Plus, nil, ""},
		{"forced unknown", all, "DIGEST-MD5", tls13, nil, "", nil, `unsupported SASL mechanism "DIGEST-MD5"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := chooseMechanism(tt.offered, tt.forced, tt.cs, tt.cb)
			if tt.want != "" {
				if err != nil || m.Name != tt.want {
					t.Fatalf("chose %q, %v; want %s", m.Name, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("chose %s, want an error", m.Name)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.errText) {
				t.Errorf("err = %v, want it to say %q", err, tt.errText)
			}
		})
	}
}

// TestSASLprep: the examples of RFC 4013 §3, and the query-string rule of
// RFC 5802 (unassigned code points pass).
func TestSASLprep(t *testing.T) {
	good := []struct{ in, want string }{
		{"I\u00ADX", "IX"}, // soft hyphen mapped to nothing
		{"user", "user"},
		{"USER", "USER"},
		{"\u00AA", "a"},  // NFKC
		{"\u2168", "IX"}, // NFKC
		{"a\u00A0b\u3000c", "a b c"},
		{"x\u200By", "xy"},                 // B.1 before the space mapping
		{"pw-\U0001F600", "pw-\U0001F600"}, // unassigned in Unicode 3.2
		{"U\u0308ber", "Über"},
	}
	for _, tt := range good {
		got, err := saslprep("password", tt.in)
		if err != nil || got != tt.want {
			t.Errorf("saslprep(%+q) = %+q, %v; want %+q", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"a\u0007b", "\u0627\u0031", "\u00AD", "pw\U000E0001x"} {
		_, err := saslprep("password", in)
		if err == nil {
			t.Errorf("saslprep(%+q) passed", in)
			continue
		}
		if strings.Contains(err.Error(), in) || !strings.Contains(err.Error(), "password") {
			t.Errorf("saslprep(%+q): error %q must name the password and not show it", in, err)
		}
	}
}

func TestCheckServerFirst(t *testing.T) {
	const cn = "abc"
	bad := []struct{ name, msg string }{
		{"trailing comma", "r=abc1,s=QSXCR+Q6sek8bf92,i=4096,"},
		{"short last attribute", "r=abc1,s=QSXCR+Q6sek8bf92,i=4096,x"},
		{"empty salt", "r=abc1,s=,i=4096"},
		{"bad salt", "r=abc1,s=!!!,i=4096"},
		{"nonce not extended", "r=abc,s=QSXCR+Q6sek8bf92,i=4096"},
		{"nonce foreign", "r=xyzabc123,s=QSXCR+Q6sek8bf92,i=4096"},
		{"no nonce", "s=QSXCR+Q6sek8bf92,i=4096"},
		{"zero iterations", "r=abc1,s=QSXCR+Q6sek8bf92,i=0"},
		{"few iterations", "r=abc1,s=QSXCR+Q6sek8bf92,i=4095"},
		{"huge iterations", "r=abc1,s=QSXCR+Q6sek8bf92,i=99999999"},
		{"no iterations", "r=abc1,s=QSXCR+Q6sek8bf92"},
		{"repeated iterations", "r=abc1,s=QSXCR+Q6sek8bf92,i=4096,i=1"},
		{"mandatory extension", "m=ext,r=abc1,s=QSXCR+Q6sek8bf92,i=4096"},
		{"empty", ""},
	}
	for _, tt := range bad {
		if err := checkServerFirst([]byte(tt.msg), []byte(cn)); err == nil {
			t.Errorf("%s: %q accepted", tt.name, tt.msg)
		}
	}
	for _, msg := range []string{"r=abc1,s=QSXCR+Q6sek8bf92,i=4096", "r=abc1,s=QSXCR+Q6sek8bf92,i=1048576,x=ext"} {
		if err := checkServerFirst([]byte(msg), []byte(cn)); err != nil {
			t.Errorf("%q refused: %v", msg, err)
		}
	}
}

// FuzzServerFirst feeds arbitrary server-first-messages to a SCRAM-SHA-1
// client behind checkServerFirst ("NONCE" in the input stands for the
// client's nonce). It must never panic nor hang (mellium.im/sasl v0.3.2
// loops forever on some inputs that checkServerFirst refuses), and what it
// accepts it must answer with a client-final-message for that nonce.
func FuzzServerFirst(f *testing.F) {
	f.Add("r=NONCEx,s=QSXCR+Q6sek8bf92,i=4096")
	f.Add("r=NONCEx,s=QSXCR+Q6sek8bf92,i=4096,")
	f.Add("r=NONCEx,s=QSXCR+Q6sek8bf92,i=4096,x")
	f.Add("r=NONCEx,s=,i=4096")
	f.Add("r=NONCE,s=QSXCR+Q6sek8bf92,i=4096")
	f.Add("m=x,r=NONCEx,s=QSXCR+Q6sek8bf92,i=4096")
	f.Add("r=NONCEx,s=QSXCR+Q6sek8bf92,i=0")
	f.Add("s=QSXCR+Q6sek8bf92,i=4096,r=NONCEx,e=1")
	f.Fuzz(func(t *testing.T, serverFirst string) {
		neg, err := newNegotiator(sasl.ScramSha1, "user", "pencil", []string{MechSCRAMSHA1}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := neg.Step(nil); err != nil {
			t.Fatal(err)
		}
		msg := strings.ReplaceAll(serverFirst, "NONCE", string(neg.Nonce()))
		if n, err := strconv.Atoi(attrs(msg)['i']); err == nil && n > 8192 {
			t.Skip("iteration count too slow for fuzzing")
		}
		done := make(chan struct{})
		var more bool
		var resp []byte
		go func() {
			defer close(done)
			more, resp, err = step(neg, MechSCRAMSHA1, []byte(msg))
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("step(%q) still runs after 5 s", msg)
		}
		if err != nil {
			return
		}
		if !more || !strings.HasPrefix(string(resp), "c=biws,r="+attrs(msg)['r']+",p=") {
			t.Fatalf("step(%q) = %v, %q", msg, more, resp)
		}
	})
}

// dialSASL dials the fake server at addr as alice (or cfg.JID) with cfg's
// mechanism, password and TLS.
func dialSASL(addr string, cfg Config) (*Client, error) {
	cfg.Addr = addr
	if cfg.JID == "" {
		cfg.JID = "alice@localhost"
	}
	if cfg.Password == "" {
		cfg.Password = "pw"
	}
	cfg.Timeout = 5 * time.Second
	c, err := Dial(context.Background(), cfg)
	if err == nil {
		c.Abort()
	}
	return c, err
}

// TestSASLExchange runs the client's exchange loop against scripted
// servers: what the server sees, what the client accepts and what it
// refuses.
func TestSASLExchange(t *testing.T) {
	cert, pool := testCert(t, "localhost")
	srvTLS := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
	tls13 := &tls.Config{RootCAs: pool}
	saw := make(chan string, 1)

	t.Run("SCRAM-SHA-256 is preferred", func(t *testing.T) {
		srv := alice("pw")
		addr := fakeServer(t, func(f *xmpptest.Conn) {
			f.Open(saslOffer)
			if f.Auth(srv) {
				f.Bind("alice@localhost/r")
				f.Read()
			}
		})
		c, err := dialSASL(addr, Config{})
		if err != nil {
			t.Fatal(err)
		}
		if c.Mechanism() != MechSCRAMSHA256 || srv.GS2 != "n,," || srv.Authcid != "alice" {
			t.Errorf("mechanism %q, gs2 header %q, user %q", c.Mechanism(), srv.GS2, srv.Authcid)
		}
	})

	t.Run("SCRAM-SHA-1 forced", func(t *testing.T) {
		addr := fakeServer(t, func(f *xmpptest.Conn) {
			f.Open(saslOffer)
			el := f.Recv()
			saw <- el.Attr("mechanism")
			if f.AnswerAuth(el, alice("pw")) {
				f.Bind("alice@localhost/r")
				f.Read()
			}
		})
		c, err := dialSASL(addr, Config{Mechanism: MechSCRAMSHA1})
		if err != nil || c.Mechanism() != MechSCRAMSHA1 || <-saw != MechSCRAMSHA1 {
			t.Fatalf("forced SCRAM-SHA-1: %v", err)
		}
	})

	t.Run("SASLprep and user name escaping", func(t *testing.T) {
		// The server stores the prepared password; "=" and "," in the user
		// name travel escaped (RFC 5802 §5.1).
		srv := alice("IX pw")
		addr := fakeServer(t, func(f *xmpptest.Conn) {
			f.Open(saslOffer)
			if f.Auth(srv) {
				f.Bind("alice@localhost/r")
				f.Read()
			}
		})
		if _, err := dialSASL(addr, Config{JID: "a=b,c@localhost", Password: "\u2168\u00A0p\u00ADw"}); err != nil {
			t.Fatal(err)
		}
		if srv.Authcid != "a=b,c" {
			t.Errorf("server saw user %q", srv.Authcid)
		}
	})

	t.Run("password failing SASLprep", func(t *testing.T) {
		addr := fakeServer(t, func(f *xmpptest.Conn) {
			f.Open(saslOffer)
			f.ExpectNothing()
		})
		_, err := dialSASL(addr, Config{Password: "p\u0007w"})
		if err == nil || !strings.Contains(err.Error(), "password fails SASLprep") {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("server-final in a challenge", func(t *testing.T) {
		addr := fakeServer(t, func(f *xmpptest.Conn) {
			f.Open(saslOffer)
			srv := alice("pw")
			auth := f.Recv()
			sf, _ := srv.SCRAMFirst(auth.Attr("mechanism"), unb64(t, auth))
			f.Send(challenge(sf))
			final, err := srv.SCRAMFinal(unb64(t, f.Recv()))
			if err != nil {
				t.Error(err)
				return
			}
			f.Send(challenge(final))
			if el := f.Recv(); el.Name().Local != "response" || len(el.Inner) != 0 {
				t.Errorf("after server-final: %q, want an empty <response/>", el.Raw)
			}
			f.Send(saslSuccess)
			f.Bind("alice@localhost/r")
			f.Read()
		})
		if _, err := dialSASL(addr, Config{}); err != nil {
			t.Fatal(err)
		}
	})

	// A server that does not know the password: its exchanges end in ways
	// the client must refuse.
	impostor := func(end func(f *xmpptest.Conn, srv *xmpptest.SASL)) func(f *xmpptest.Conn) {
		return func(f *xmpptest.Conn) {
			f.Open(saslOffer)
			srv := alice("not the password")
			auth := f.Recv()
			sf, _ := srv.SCRAMFirst(auth.Attr("mechanism"), unb64(t, auth))
			f.Send(challenge(sf))
			f.Recv() // client-final
			end(f, srv)
			f.ExpectNothing()
		}
	}
	badSig := "v=" + b64(strings.Repeat("x", 32))
	for _, tt := range []struct {
		name string
		end  func(f *xmpptest.Conn, srv *xmpptest.SASL)
		want string
	}{
		{"wrong server signature with success", func(f *xmpptest.Conn, _ *xmpptest.SASL) {
			f.Send("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" + b64(badSig) + "</success>")
		}, ErrServerSignature.Error()},
		{"success without server-final", func(f *xmpptest.Conn, _ *xmpptest.SASL) { f.Send(saslSuccess) }, ErrServerSignature.Error()},
		{"wrong server signature in a challenge", func(f *xmpptest.Conn, _ *xmpptest.SASL) {
			f.Send(challenge(badSig))
			if el := f.Recv(); el.Name().Local != "abort" {
				t.Errorf("client answered %q, want <abort/>", el.Raw)
			}
		}, ErrServerSignature.Error()},
		{"server error in a challenge", func(f *xmpptest.Conn, _ *xmpptest.SASL) {
			f.Send(challenge("e=invalid-proof"))
			f.Recv() // <abort/>
		}, `server error "invalid-proof"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := dialSASL(fakeServer(t, impostor(tt.end)), Config{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			var ae *AuthError
			if errors.As(err, &ae) {
				t.Errorf("err = %v: an *AuthError, though the server said success", err)
			}
		})
	}

	t.Run("failure is an AuthError", func(t *testing.T) {
		addr := fakeServer(t, func(f *xmpptest.Conn) { f.Open(saslOffer); f.Auth(alice("pw")) })
		_, err := dialSASL(addr, Config{Password: "wrong"})
		var ae *AuthError
		if !errors.As(err, &ae) || ae.Condition != "not-authorized" || ae.Mechanism != MechSCRAMSHA256 || ae.Text != "bad" {
			t.Fatalf("err = %v, want a SCRAM-SHA-256 AuthError not-authorized", err)
		}
	})

	// Server-first-messages the client refuses, with <abort/>, and quickly:
	// mellium.im/sasl alone would loop forever on the first ones.
	for _, sf := range []string{
		"r=%sx,s=QSXCR+Q6sek8bf92,i=4096,",
		"r=%sx,s=QSXCR+Q6sek8bf92,i=4096,s=",
		"r=%sx,s=QSXCR+Q6sek8bf92,i=1",
		"r=%sx,s=QSXCR+Q6sek8bf92,i=2000000000",
		"r=%s,s=QSXCR+Q6sek8bf92,i=4096",
	} {
		t.Run("refuses "+sf, func(t *testing.T) {
			aborted := make(chan bool, 1)
			addr := fakeServer(t, func(f *xmpptest.Conn) {
				f.Open(saslOffer)
				cf := attrs(unb64(t, f.Recv()))
				f.Send(challenge(fmt.Sprintf(sf, cf['r'])))
				aborted <- f.Recv().Name().Local == "abort"
			})
			start := time.Now()
			_, err := dialSASL(addr, Config{})
			if err == nil || !strings.Contains(err.Error(), "scram: ") {
				t.Fatalf("err = %v", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("refused after %v", d)
			}
			if !<-aborted {
				t.Error("the client did not send <abort/>")
			}
		})
	}

	t.Run("PLAIN over TLS, unprepared", func(t *testing.T) {
		addr := fakeServer(t, func(f *xmpptest.Conn) {
			if !f.StartTLS(startTLSRequired, srvTLS) {
				return
			}
			f.Open(offer(MechPlain, "DIGEST-MD5"))
			auth := f.Recv()
			saw <- auth.Attr("mechanism") + " " + unb64(t, auth)
			f.Send(saslSuccess)
			f.Bind("alice@localhost/r")
			f.Read()
		})
		c, err := dialSASL(addr, Config{TLS: tls13, Password: "\u2168 pw"})
		if err != nil {
			t.Fatal(err)
		}
		if got := <-saw; got != "PLAIN \x00alice\x00\u2168 pw" || c.Mechanism() != MechPlain {
			t.Errorf("server saw %+q, client says %s", got, c.Mechanism())
		}
	})

	t.Run("PLAIN forced in the clear", func(t *testing.T) {
		// Refused before connecting: nothing listens on port 1.
		_, err := dialSASL("127.0.0.1:1", Config{Mechanism: MechPlain})
		if !errors.Is(err, ErrPlainWithoutTLS) {
			t.Fatalf("err = %v, want ErrPlainWithoutTLS", err)
		}
	})

	t.Run("only PLAIN offered in the clear", func(t *testing.T) {
		addr := fakeServer(t, func(f *xmpptest.Conn) {
			f.Open(plainOnly)
			f.ExpectNothing()
		})
		if _, err := dialSASL(addr, Config{}); !errors.Is(err, ErrPlainWithoutTLS) {
			t.Fatalf("err = %v, want ErrPlainWithoutTLS", err)
		}
	})

	all := offer(MechPlain, MechSCRAMSHA1, MechSCRAMSHA1Plus, MechSCRAMSHA256, MechSCRAMSHA256Plus)
	plusServer := func(features string, srv *xmpptest.SASL) func(f *xmpptest.Conn) {
		return func(f *xmpptest.Conn) {
			if !f.StartTLS(startTLSRequired, srvTLS) {
				return
			}
			cs := f.NetConn().(*tls.Conn).ConnectionState()
			ekm, err := cs.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
			if err != nil {
				t.Error(err)
				return
			}
			srv.ChannelBinding = ekm
			f.Open(features)
			if f.Auth(srv) {
				f.Bind("alice@localhost/r")
				f.Read()
			}
		}
	}

	t.Run("-PLUS with tls-exporter advertised", func(t *testing.T) {
		srv := alice("pw")
		cb := "<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'><channel-binding type='tls-server-end-point'/>" +
			"<channel-binding type='tls-exporter'/></sasl-channel-binding>"
		c, err := dialSASL(fakeServer(t, plusServer(all+cb, srv)), Config{TLS: tls13})
		if err != nil {
			t.Fatal(err)
		}
		if c.Mechanism() != MechSCRAMSHA256Plus || srv.GS2 != "p=tls-exporter,," {
			t.Errorf("mechanism %s, gs2 header %q", c.Mechanism(), srv.GS2)
		}
	})

	t.Run("-PLUS offered, type not advertised", func(t *testing.T) {
		srv := alice("pw")
		c, err := dialSASL(fakeServer(t, plusServer(all, srv)), Config{TLS: tls13})
		if err != nil {
			t.Fatal(err)
		}
		if c.Mechanism() != MechSCRAMSHA256 || srv.GS2 != "n,," {
			t.Errorf("mechanism %s, gs2 header %q", c.Mechanism(), srv.GS2)
		}
	})

	t.Run("-PLUS forced, binding checked", func(t *testing.T) {
		srv := alice("pw")
		c, err := dialSASL(fakeServer(t, plusServer(all, srv)), Config{TLS: tls13, Mechanism: MechSCRAMSHA1Plus})
		if err != nil {
			t.Fatal(err)
		}
		if c.Mechanism() != MechSCRAMSHA1Plus || srv.GS2 != "p=tls-exporter,," {
			t.Errorf("mechanism %s, gs2 header %q", c.Mechanism(), srv.GS2)
		}
	})
}
