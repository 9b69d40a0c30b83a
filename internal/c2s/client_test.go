package c2s

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/internal/xmpp"
	"github.com/pubpresence/pubpresence/internal/xmpptest"
)

const plainOnly = "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms>"

// login plays a server accepting alice/pw with SCRAM and binding res "r".
func login(f *xmpptest.Conn) bool {
	f.Open(saslOffer)
	if !f.Auth(alice("pw")) {
		return false
	}
	f.Bind("alice@localhost/r")
	return true
}

// fakeServer starts a fake client server (internal/xmpptest) that runs
// script on each connection, and returns its address.
func fakeServer(t *testing.T, script func(f *xmpptest.Conn)) string {
	t.Helper()
	return xmpptest.NewServer(t, xmpptest.Config{Script: script}).Addr()
}

func dialFake(t *testing.T, addr string) *Client {
	t.Helper()
	c, err := Dial(context.Background(), Config{Addr: addr, JID: "alice@localhost", Password: "pw", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Abort() })
	return c
}

func TestDialLoginAndBind(t *testing.T) {
	addr := fakeServer(t, func(f *xmpptest.Conn) {
		if !login(f) {
			return
		}
		f.Read() // until the client closes
	})
	c := dialFake(t, addr)
	if c.JID() != "alice@localhost/r" {
		t.Fatalf("JID = %q", c.JID())
	}
	if c.Bare() != "alice@localhost" {
		t.Fatalf("Bare = %q", c.Bare())
	}
}

func TestDialFailures(t *testing.T) {
	tests := []struct {
		name   string
		cfg    Config
		script func(f *xmpptest.Conn)
		check  func(t *testing.T, err error)
	}{
		{"wrong password", Config{Password: "nope"}, func(f *xmpptest.Conn) { login(f) },
			func(t *testing.T, err error) {
				var ae *AuthError
				if !errors.As(err, &ae) || ae.Condition != "not-authorized" || ae.Text != "bad" {
					t.Fatalf("err = %v, want AuthError not-authorized", err)
				}
			}},
		{"tls required", Config{}, func(f *xmpptest.Conn) {
			f.Open("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>" + plainOnly)
			f.Read()
		}, func(t *testing.T, err error) {
			if !errors.Is(err, ErrTLSRequired) || !strings.Contains(err.Error(), "STARTTLS") {
				t.Fatalf("err = %v, want ErrTLSRequired", err)
			}
		}},
		{"mechanism not offered", Config{Mechanism: MechSCRAMSHA1}, func(f *xmpptest.Conn) { f.Open(plainOnly); f.Read() },
			func(t *testing.T, err error) {
				if err == nil || !strings.Contains(err.Error(), "does not offer SASL SCRAM-SHA-1") {
					t.Fatalf("err = %v", err)
				}
			}},
		{"stream error", Config{}, func(f *xmpptest.Conn) {
			f.ReadHeader()
			f.Send(f.Header() + "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>")
		}, func(t *testing.T, err error) {
			if !errors.Is(err, xmpp.ErrStreamHostUnknown) {
				t.Fatalf("err = %v, want StreamError host-unknown", err)
			}
		}},
		{"bind refused", Config{}, func(f *xmpptest.Conn) {
			f.Open(saslOffer)
			f.Auth(alice("pw"))
			f.Open("<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>")
			b := f.Recv()
			f.Send("<iq type='error' id='" + b.Attr("id") + "'><error type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
			f.Read()
		}, func(t *testing.T, err error) {
			if !errors.Is(err, xmpp.ErrConflict) {
				t.Fatalf("err = %v, want conflict", err)
			}
		}},
		{"server silent", Config{Timeout: 200 * time.Millisecond}, func(f *xmpptest.Conn) { f.ReadHeader(); f.Read() },
			func(t *testing.T, err error) {
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("err = %v, want deadline exceeded", err)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := fakeServer(t, tt.script)
			cfg := tt.cfg
			cfg.Addr, cfg.JID = addr, "alice@localhost"
			if cfg.Password == "" {
				cfg.Password = "pw"
			}
			c, err := Dial(context.Background(), cfg)
			if err == nil {
				c.Abort()
				t.Fatal("Dial succeeded")
			}
			tt.check(t, err)
		})
	}
	if _, err := Dial(context.Background(), Config{Addr: "127.0.0.1:1", JID: "nodomain"}); err == nil {
		t.Error("Dial accepted a JID without domain")
	}
}

func TestIQCorrelationAndErrors(t *testing.T) {
	addr := fakeServer(t, func(f *xmpptest.Conn) {
		if !login(f) {
			return
		}
		a, b := f.Recv(), f.Recv()
		// Answer in reverse order, plus an answer nobody asked for and one
		// from the wrong address.
		f.Send("<iq type='result' id='nobody' from='pubsub.localhost'/>")
		f.Send("<iq type='result' id='" + b.Attr("id") + "' from='evil.localhost'/>")
		f.Send("<iq type='error' id='" + b.Attr("id") + "' from='pubsub.localhost'><error type='cancel'>" +
			"<feature-not-implemented xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>" +
			"<persistent-items xmlns='http://jabber.org/protocol/pubsub#errors'/>" +
			"<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>no</text></error></iq>")
		f.Send("<iq type='result' id='" + a.Attr("id") + "'><x xmlns='urn:x'>1</x></iq>")
		f.Read()
	})
	c := dialFake(t, addr)
	ctx := context.Background()
	type answer struct {
		inner []byte
		err   error
	}
	ca, cb := make(chan answer), make(chan answer)
	go func() { in, err := c.IQ(ctx, "get", "", []byte("<a/>")); ca <- answer{in, err} }()
	time.Sleep(50 * time.Millisecond) // a before b
	go func() { in, err := c.IQ(ctx, "get", "pubsub.localhost", []byte("<b/>")); cb <- answer{in, err} }()
	b := <-cb
	var ie *xmpp.StanzaError
	if !errors.As(b.err, &ie) || ie.Type != "cancel" || ie.Condition != xmpp.ErrFeatureNotImplemented ||
		ie.App != "persistent-items" || ie.Text != "no" {
		t.Fatalf("b: err = %#v", b.err)
	}
	a := <-ca
	if a.err != nil || string(a.inner) != "<x xmlns='urn:x'>1</x>" {
		t.Fatalf("a: %q %v", a.inner, a.err)
	}
}

func TestInboundStanzasAndAutoAnswers(t *testing.T) {
	answers := make(chan string, 4)
	addr := fakeServer(t, func(f *xmpptest.Conn) {
		if !login(f) {
			return
		}
		f.Send("<iq type='get' id='p1' from='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
		f.Send("<message from='bob@localhost/x' type='chat'><body>hi</body></message>")
		f.Send("<iq type='get' id='d1' from='bob@localhost/x'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
		f.Send("<iq type='set' id='r1'><query xmlns='jabber:iq:roster'><item jid='bob@localhost'/></query></iq>")
		f.Send("<iq type='get' id='v1' from='bob@localhost/x'><query xmlns='jabber:iq:version'/></iq>")
		f.Send("<presence from='bob@localhost/x'><show>away</show><status>lunch</status><priority>-3</priority></presence>")
		got := map[string]string{}
		for len(got) < 4 {
			el := f.Recv()
			if el.Name().Local == "" {
				return
			}
			got[el.Attr("id")] = el.Attr("type") + " " + string(el.Inner)
		}
		for _, id := range []string{"p1", "d1", "r1", "v1"} {
			answers <- id + ": " + got[id]
		}
		f.Read()
	})
	c := dialFake(t, addr)
	var names []string
	var last Stanza
	for range 6 {
		select {
		case st := <-c.Stanzas():
			names = append(names, st.Name+"/"+st.Type)
			if st.Seq != uint64(len(names)) {
				t.Errorf("stanza %d has Seq %d", len(names), st.Seq)
			}
			last = st
		case <-time.After(5 * time.Second):
			t.Fatalf("stanzas so far: %v", names)
		}
	}
	if got, want := strings.Join(names, " "), "iq/get message/chat iq/get iq/set iq/get presence/"; got != want {
		t.Errorf("stanzas = %q, want %q", got, want)
	}
	if show, status, prio := last.PresenceDetails(); show != "away" || status != "lunch" || prio != -3 {
		t.Errorf("presence details = %q %q %d", show, status, prio)
	}
	want := []string{
		"p1: result ",
		"d1: result <query xmlns='http://jabber.org/protocol/disco#info'><identity category='client' type='bot' name='pubpresence'/>" +
			"<feature var='http://jabber.org/protocol/disco#info'/><feature var='urn:xmpp:ping'/></query>",
		"r1: result ",
		"v1: error <error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>",
	}
	for _, w := range want {
		select {
		case got := <-answers:
			if got != w {
				t.Errorf("answer %q, want %q", got, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no answer from the client")
		}
	}
}

func TestCloseAndAbort(t *testing.T) {
	t.Run("close", func(t *testing.T) {
		seen := make(chan string, 1)
		addr := fakeServer(t, func(f *xmpptest.Conn) {
			if !login(f) {
				return
			}
			el := f.Recv()
			_, err := f.Read()
			seen <- fmt.Sprint(el.Name().Local, " ", el.Attr("type"), " ", errors.Is(err, xmpptest.ErrStreamEnd))
			f.Send("</stream:stream>")
		})
		c := dialFake(t, addr)
		start := time.Now()
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("Close took %v although the server closed at once", d)
		}
		if got := <-seen; got != "presence unavailable true" {
			t.Errorf("server saw %q", got)
		}
		assertEnded(t, c, nil)
		if err := c.Send("<presence/>"); !errors.Is(err, ErrClosed) {
			t.Errorf("Send after Close = %v", err)
		}
		if _, err := c.IQ(context.Background(), "get", "", []byte("<x/>")); !errors.Is(err, ErrClosed) {
			t.Errorf("IQ after Close = %v", err)
		}
	})
	t.Run("abort", func(t *testing.T) {
		seen := make(chan error, 1)
		addr := fakeServer(t, func(f *xmpptest.Conn) {
			if !login(f) {
				return
			}
			_, err := f.Read()
			seen <- err
		})
		c := dialFake(t, addr)
		c.Abort()
		if err := <-seen; err == nil || errors.Is(err, xmpptest.ErrStreamEnd) {
			t.Errorf("server read %v, want a bare connection close", err)
		}
		assertEnded(t, c, nil)
	})
	t.Run("server stream error", func(t *testing.T) {
		addr := fakeServer(t, func(f *xmpptest.Conn) {
			if !login(f) {
				return
			}
			f.Send("<stream:error><system-shutdown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>")
		})
		c := dialFake(t, addr)
		<-c.Done()
		if err := c.Err(); !errors.Is(err, xmpp.ErrStreamSystemShutdown) {
			t.Fatalf("Err = %v, want system-shutdown", err)
		}
	})
	t.Run("pending iq fails on close", func(t *testing.T) {
		addr := fakeServer(t, func(f *xmpptest.Conn) {
			if !login(f) {
				return
			}
			f.Recv()
			f.Close()
		})
		c := dialFake(t, addr)
		_, err := c.IQ(context.Background(), "get", "", []byte("<x/>"))
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("IQ = %v, want ErrClosed", err)
		}
		<-c.Done()
		if c.Err() == nil {
			t.Fatal("Err is nil after the server dropped the connection")
		}
	})
}

func assertEnded(t *testing.T, c *Client, want error) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(3 * time.Second):
		t.Fatal("Done not closed")
	}
	if err := c.Err(); err != want {
		t.Errorf("Err = %v, want %v", err, want)
	}
	if _, ok := <-c.Stanzas(); ok {
		t.Error("Stanzas still open")
	}
}

// TestEventParsing checks which stanzas Event reads; pubsub.ParseEvent,
// which reads them, has its own tests.
func TestEventParsing(t *testing.T) {
	st := Stanza{Name: "message", Inner: []byte(`<event xmlns='http://jabber.org/protocol/pubsub#event'><items node='presence/actual'>` +
		`<item id='a@b/c'><user xmlns='urn:pubpresence:0' status='away'/></item><retract id='a@b/d'/></items></event>`)}
	ev, ok := st.Event()
	if !ok || ev.Node != "presence/actual" || len(ev.Items) != 2 {
		t.Fatalf("event = %+v %v", ev, ok)
	}
	for _, bad := range []Stanza{
		{Name: "message", Inner: []byte("<body>hi</body>")},
		{Name: "presence", Inner: st.Inner},
		{Name: "message", Type: "error", Inner: st.Inner},
		{Name: "message", Inner: []byte("<event xmlns='other'><items node='n'/></event>")},
	} {
		if _, ok := bad.Event(); ok {
			t.Errorf("Event accepted %+v", bad)
		}
	}
}
