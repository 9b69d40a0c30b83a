package c2s

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/internal/xmpp"
	"github.com/pubpresence/pubpresence/internal/xmpptest"
)

const (
	startTLSRequired = "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"
	startTLSOptional = "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
	proceed          = "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
)

// testCert returns a self-signed server certificate for names and a pool
// that trusts it.
func testCert(t *testing.T, names ...string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: names[0]},
		DNSNames:              names,
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

func TestDialStartTLS(t *testing.T) {
	cert, pool := testCert(t, "localhost")
	sni := make(chan string, 1)
	srvCfg := &tls.Config{GetCertificate: func(hi *tls.ClientHelloInfo) (*tls.Certificate, error) {
		sni <- hi.ServerName
		return &cert, nil
	}}
	answered := make(chan string, 1)
	addr := fakeServer(t, func(f *xmpptest.Conn) {
		// Optional on the server: the client uses it because it was asked to.
		if !f.StartTLS(startTLSOptional+plainOnly, srvCfg) || !login(f) {
			return
		}
		iq := f.Recv()
		answered <- string(iq.Inner)
		f.Send("<iq type='result' id='" + iq.Attr("id") + "'><pong xmlns='urn:x'/></iq>")
		f.Read()
	})
	clientCfg := &tls.Config{RootCAs: pool}
	c, err := Dial(context.Background(), Config{Addr: addr, JID: "alice@localhost", Password: "pw", Timeout: 5 * time.Second, TLS: clientCfg})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Abort()
	if got := <-sni; got != "localhost" {
		t.Errorf("SNI = %q, want the JID's domain", got)
	}
	if clientCfg.ServerName != "" {
		t.Errorf("Dial changed the caller's tls.Config: ServerName = %q", clientCfg.ServerName)
	}
	if c.JID() != "alice@localhost/r" {
		t.Errorf("JID = %q", c.JID())
	}
	in, err := c.IQ(context.Background(), "get", "", []byte("<ping xmlns='urn:xmpp:ping'/>"))
	if err != nil || string(in) != "<pong xmlns='urn:x'/>" {
		t.Fatalf("IQ over TLS = %q, %v", in, err)
	}
	if got := <-answered; got != "<ping xmlns='urn:xmpp:ping'/>" {
		t.Errorf("server read %q", got)
	}
}

func TestStartTLSCloseAndAbort(t *testing.T) {
	cert, pool := testCert(t, "localhost")
	srvCfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	dial := func(addr string) *Client {
		t.Helper()
		c, err := Dial(context.Background(), Config{Addr: addr, JID: "alice@localhost", Password: "pw", Timeout: 5 * time.Second,
			TLS: &tls.Config{RootCAs: pool}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Abort() })
		return c
	}
	t.Run("close", func(t *testing.T) {
		seen := make(chan string, 1)
		addr := fakeServer(t, func(f *xmpptest.Conn) {
			if !f.StartTLS(startTLSRequired, srvCfg) || !login(f) {
				return
			}
			el := f.Recv()
			_, err := f.Read()
			seen <- fmt.Sprint(el.Name().Local, " ", el.Attr("type"), " ", errors.Is(err, xmpptest.ErrStreamEnd))
			f.Send("</stream:stream>")
			f.Close() // close_notify
		})
		c := dial(addr)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if got := <-seen; got != "presence unavailable true" {
			t.Errorf("server saw %q over TLS", got)
		}
		assertEnded(t, c, nil)
	})
	t.Run("abort", func(t *testing.T) {
		seen := make(chan error, 1)
		addr := fakeServer(t, func(f *xmpptest.Conn) {
			if !f.StartTLS(startTLSRequired, srvCfg) || !login(f) {
				return
			}
			_, err := f.Read()
			seen <- err
		})
		c := dial(addr)
		c.Abort()
		if err := <-seen; err == nil || errors.Is(err, xmpptest.ErrStreamEnd) {
			t.Errorf("server read %v, want a bare connection close", err)
		}
		assertEnded(t, c, nil)
	})
}

func TestDialStartTLSFailures(t *testing.T) {
	cert, pool := testCert(t, "localhost")
	otherCert, otherPool := testCert(t, "other.example")
	srvCfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	tests := []struct {
		name     string
		tls      *tls.Config
		password string        // "" means "pw", the right one
		timeout  time.Duration // 0 means 5s
		script   func(f *xmpptest.Conn)
		check    func(t *testing.T, err error)
	}{
		{"required without Config.TLS", nil, "", 0, func(f *xmpptest.Conn) {
			f.Open(startTLSRequired + plainOnly)
			f.ExpectNothing()
		}, func(t *testing.T, err error) {
			if !errors.Is(err, ErrTLSRequired) || !strings.Contains(err.Error(), "STARTTLS") {
				t.Errorf("err = %v, want ErrTLSRequired", err)
			}
		}},
		{"not offered", &tls.Config{RootCAs: pool}, "", 0, func(f *xmpptest.Conn) {
			f.Open(plainOnly)
			f.ExpectNothing() // no <auth/> in the clear
		}, func(t *testing.T, err error) {
			if !errors.Is(err, ErrTLSNotOffered) {
				t.Errorf("err = %v, want ErrTLSNotOffered", err)
			}
		}},
		{"failure answer", &tls.Config{RootCAs: pool}, "", 0, func(f *xmpptest.Conn) {
			f.Open(startTLSRequired)
			f.Recv()
			f.Send("<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:stream>")
		}, func(t *testing.T, err error) {
			if !errors.Is(err, ErrTLSRefused) || !strings.Contains(err.Error(), "<failure/>") {
				t.Errorf("err = %v, want ErrTLSRefused", err)
			}
		}},
		{"stream error instead of proceed", &tls.Config{RootCAs: pool}, "", 0, func(f *xmpptest.Conn) {
			f.Open(startTLSRequired)
			f.Recv()
			f.Send("<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>")
		}, func(t *testing.T, err error) {
			if !errors.Is(err, xmpp.ErrStreamPolicyViolation) {
				t.Errorf("err = %v, want StreamError policy-violation", err)
			}
		}},
		{"unknown authority", &tls.Config{RootCAs: otherPool}, "", 0, func(f *xmpptest.Conn) {
			f.StartTLS(startTLSRequired, srvCfg)
		}, func(t *testing.T, err error) {
			var ua x509.UnknownAuthorityError
			if !errors.As(err, &ua) || !strings.Contains(err.Error(), "tls handshake with localhost") {
				t.Errorf("err = %v, want x509.UnknownAuthorityError", err)
			}
		}},
		{"certificate for another name", &tls.Config{RootCAs: otherPool}, "", 0, func(f *xmpptest.Conn) {
			f.StartTLS(startTLSRequired, &tls.Config{Certificates: []tls.Certificate{otherCert}})
		}, func(t *testing.T, err error) {
			var he x509.HostnameError
			if !errors.As(err, &he) || he.Host != "localhost" {
				t.Errorf("err = %v, want x509.HostnameError for localhost", err)
			}
		}},
		{"explicit ServerName kept", &tls.Config{RootCAs: otherPool, ServerName: "other.example"}, "wrong", 0, func(f *xmpptest.Conn) {
			if f.StartTLS(startTLSRequired, &tls.Config{Certificates: []tls.Certificate{otherCert}}) {
				login(f) // wrong password below: proves the TLS part passed
			}
		}, func(t *testing.T, err error) {
			var ae *AuthError
			if !errors.As(err, &ae) || ae.Condition != "not-authorized" {
				t.Errorf("err = %v, want the SASL failure after a good handshake", err)
			}
		}},
		{"plaintext after proceed", &tls.Config{RootCAs: pool}, "", 0, func(f *xmpptest.Conn) {
			f.Open(startTLSRequired)
			f.Recv()
			f.Send(proceed + "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>") // one write: buffered together
			_, _ = io.Copy(io.Discard, f.NetConn())
		}, func(t *testing.T, err error) {
			if err == nil || !strings.Contains(err.Error(), "unencrypted bytes after <proceed/>") {
				t.Errorf("err = %v, want the injection refused", err)
			}
		}},
		{"handshake stalls", &tls.Config{RootCAs: pool}, "", 200 * time.Millisecond, func(f *xmpptest.Conn) {
			f.Open(startTLSRequired)
			f.Recv()
			f.Send(proceed)
			_, _ = io.Copy(io.Discard, f.NetConn()) // never answers the ClientHello
		}, func(t *testing.T, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("err = %v, want deadline exceeded", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := fakeServer(t, tt.script)
			cfg := Config{Addr: addr, JID: "alice@localhost", Password: "pw", TLS: tt.tls, Timeout: 5 * time.Second}
			if tt.password != "" {
				cfg.Password = tt.password
			}
			if tt.timeout != 0 {
				cfg.Timeout = tt.timeout
			}
			c, err := Dial(context.Background(), cfg)
			if err == nil {
				c.Abort()
				t.Fatal("Dial succeeded")
			}
			tt.check(t, err)
		})
	}
}

// TestDialPlainIgnoresOptionalStartTLS: without Config.TLS the client logs
// in over plain TCP when the server offers STARTTLS as optional.
func TestDialPlainIgnoresOptionalStartTLS(t *testing.T) {
	first := make(chan string, 1)
	addr := fakeServer(t, func(f *xmpptest.Conn) {
		f.Open(startTLSOptional + saslOffer)
		auth := f.Recv()
		first <- auth.Name().Local
		if f.AnswerAuth(auth, alice("pw")) {
			f.Bind("alice@localhost/r")
		}
		f.Read()
	})
	c := dialFake(t, addr)
	if got := <-first; got != "auth" {
		t.Errorf("first element after features = <%s>, want <auth>", got)
	}
	if c.JID() != "alice@localhost/r" {
		t.Errorf("JID = %q", c.JID())
	}
}
